# The two commands of the README: `make run` and `make test`.
# On a fresh Debian 12/Ubuntu machine they install everything they need (apt and pip);
# inside `nix develop` they use the shell's Python and tools instead.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
# Programs `make test` validates host files with (nix, promtool, amtool, blackbox
# exporter, restic, kea, unbound, shellcheck, age), and what a source build of
# llama-cpp-python needs; installed only when missing. services/test-env.nix is the
# same list for `nix develop`.
APT_PACKAGES := nix-bin prometheus prometheus-alertmanager prometheus-blackbox-exporter \
                age restic kea-dhcp4-server unbound iproute2 shellcheck \
                python3-venv python3-dev \
                build-essential cmake git ca-certificates
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export NIX_CONFIG := build-users-group =
export PIP_DISABLE_PIP_VERSION_CHECK := 1

ifdef EMILY_NIX_SHELL
# nix develop: the shell's Python already has every dependency, and its shellHook puts
# python/src on PYTHONPATH; nothing is installed.
PY := python
STAMP :=
RUFF := ruff
else
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUFF := $(VENV)/bin/ruff
endif

PYTEST_ARGS ?=
LINT_PATHS := python/src tests $(wildcard bench)

.PHONY: help setup apt run test lint typecheck pytest clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

apt:  ## install the Debian packages that are missing (nix-bin, prometheus, alertmanager, build tools)
ifndef EMILY_NIX_SHELL
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install $$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endif

$(VENV)/.installed: python/pyproject.toml python/constraints.txt | apt
	@$(PYTHON) -c 'import sys; v=sys.version_info[:2]; sys.exit(0 if (3,11)<=v<=(3,13) else "Python 3.11-3.13 is required, found %d.%d" % v)'
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and alone: the CPU wheel of exactly this version (see constraints.txt)
	$(PY) -m pip install -q -c python/constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c python/constraints.txt -e 'python[embedded,test,bench]'
	$(PY) -m pip check
	touch $@

setup: apt $(STAMP)  ## create .venv and install everything

run: setup  ## set up, show what is installed, start the stack on embedded defaults and run the demo
	$(PY) -m emily status
	$(PY) -m emily up --demo

lint: setup  ## ruff (lint and format) and mypy
	$(RUFF) check --config python/pyproject.toml $(LINT_PATHS)
	$(RUFF) format --check --config python/pyproject.toml $(LINT_PATHS)
	cd python && $(if $(EMILY_NIX_SHELL),,../)$(PY) -m mypy

pytest: setup  ## the test suite with coverage (includes the Nix parse/eval checks)
	$(PY) -m pytest -c python/pyproject.toml --rootdir . \
	  --cov=emily --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

test: lint pytest  ## every check that can run on this machine

clean:  ## remove the venv and caches (keeps ~/.cache/pip, so a rebuild is quick)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
