# The two commands of the README: `make run` and `make test`.
# On a fresh Debian 12/Ubuntu machine they install everything they need (apt and pip);
# inside `nix develop` they use the shell's Python and tools instead.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
# Debian packages, installed only when missing. `make run` needs only RUN_APT: a venv and
# the compilers for the packages that build from source (llama-cpp-python, hnswlib), and
# Tesseract with its English model (perception reads text in images with it).
# `make test` adds TEST_APT, the programs the host checks validate files with (nix,
# promtool, amtool, blackbox exporter, restic, kea, unbound, shellcheck, age) and
# espeak-ng, which speaks the perception tests' sentences;
# services/test-env.nix is the same list for `nix develop`.
RUN_APT := python3-venv python3-dev build-essential cmake ca-certificates \
           tesseract-ocr tesseract-ocr-eng
TEST_APT := nix-bin prometheus prometheus-alertmanager prometheus-blackbox-exporter \
            age restic kea-dhcp4-server unbound iproute2 shellcheck git espeak-ng
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
# pytest's worker processes (pytest-xdist): each has its own session fixtures (an
# embedded Postgres, MiniLM, the llama.cpp service); 0 runs every test in
# pytest's own process.
PYTEST_WORKERS ?= 2
LINT_PATHS := python/src tests $(wildcard bench)

.PHONY: help setup setup-test apt-run apt-test run test lint typecheck pytest clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Installs the missing packages of $(1). Daemons that a package would start (unbound,
# kea, prometheus, alertmanager...) are kept from starting by a policy-rc.d that
# refuses every start (exit 101, read by invoke-rc.d and deb-systemd-invoke) for the
# length of the install, and the systemd units of the packages this install added are
# left disabled, so they do not start at the next boot either. A policy-rc.d the machine already has is kept as it is, and nothing that
# was installed or running before is touched.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install" $$missing; \
	  $(SUDO) apt-get update -qq; \
	  policy=/usr/sbin/policy-rc.d; ours=; \
	  if [ ! -e $$policy ]; then \
	    printf '#!/bin/sh\n# written by emily'"'"'s Makefile for one apt-get install: start nothing\nexit 101\n' | $(SUDO) tee $$policy >/dev/null; \
	    $(SUDO) chmod 755 $$policy; ours=1; \
	  fi; \
	  trap '[ -z "$$ours" ] || $(SUDO) rm -f '$$policy EXIT; \
	  before=$$(dpkg-query -W -f='$${Package}\n' | sort); \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  new=$$(dpkg-query -W -f='$${Package}\n' | sort | comm -13 <(echo "$$before") -); \
	  units=$$(dpkg -L $$new 2>/dev/null | grep -E '^(/usr)?/lib/systemd/system/[^/]+\.(service|socket|timer)$$' | xargs -r -n1 basename | sort -u || true); \
	  if [ -n "$$units" ] && [ -d /run/systemd/system ]; then \
	    $(SUDO) systemctl disable --quiet $$units 2>/dev/null || true; \
	  fi; \
	fi
endef

apt-run:  ## install the Debian packages that running needs (venv, compilers), if missing
ifndef EMILY_NIX_SHELL
	$(call apt_install,$(RUN_APT))
endif

apt-test: apt-run  ## add the programs the host checks need (nix, promtool, amtool, kea, ...)
ifndef EMILY_NIX_SHELL
	$(call apt_install,$(TEST_APT))
endif

$(VENV)/.installed: python/pyproject.toml python/constraints.txt | apt-run
	@$(PYTHON) -c 'import sys; v=sys.version_info[:2]; sys.exit(0 if (3,11)<=v<=(3,13) else "Python 3.11-3.13 is required, found %d.%d" % v)'
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and alone: the CPU wheel of exactly this version (see constraints.txt)
	$(PY) -m pip install -q -c python/constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c python/constraints.txt -e 'python[embedded]'
	$(PY) -m pip check
	# the wheel's pgvector is built for AVX-512: where it cannot run, build one that can
	$(PY) -m emily.memory.pgvector_build
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed | apt-test
	$(PY) -m pip install -q -c python/constraints.txt -e 'python[embedded,test,bench]'
	$(PY) -m pip check
	touch $@

setup: apt-run $(STAMP)  ## create .venv with what running needs

setup-test: apt-test $(STAMP) $(if $(STAMP),$(VENV)/.installed-test)  ## add the test and benchmark tools

run: setup  ## set up, show what is installed, start the stack on embedded defaults and run the demo
	$(PY) -m emily status --expect ""
	$(PY) -m emily up --demo

lint: setup-test  ## ruff (lint and format) and mypy
	$(RUFF) check --config python/pyproject.toml $(LINT_PATHS)
	$(RUFF) format --check --config python/pyproject.toml $(LINT_PATHS)
	cd python && $(if $(EMILY_NIX_SHELL),,../)$(PY) -m mypy

pytest: setup-test  ## the test suite with coverage (includes the Nix parse/eval checks)
	$(PY) -m pytest -c python/pyproject.toml --rootdir . -n $(PYTEST_WORKERS) \
	  --cov=emily --cov-report=term --cov-fail-under=80 $(PYTEST_ARGS)

test: lint pytest  ## every check that can run on this machine

clean:  ## remove the venv and caches (keeps ~/.cache/pip, so a rebuild is quick)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
