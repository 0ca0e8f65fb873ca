"""``nix eval`` tests of the pure Nix helpers, cross-checked against Python's ``packaging``."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO
from tests.nix.nixeval import nix_eval

HELPER = "import ./services/lib/pyproject.nix"


def test_all_nix_helper_cases_pass() -> None:
    assert nix_eval("import ./tests/nix/run.nix") == []


def test_runner_reports_a_failing_case(tmp_path: Path) -> None:
    (tmp_path / "nix").mkdir()
    shutil.copy(REPO / "tests" / "nix" / "run.nix", tmp_path / "nix" / "run.nix")
    (tmp_path / "nix" / "broken_test.nix").write_text(
        '[ { name = "wrong on purpose"; expr = 1 + 1; expected = 3; } ]'
    )
    failures = nix_eval(f"import {tmp_path}/nix/run.nix")
    assert failures == [
        {"file": "broken_test.nix", "name": "wrong on purpose", "expected": 3, "got": 2}
    ]


def pyproject_requirements() -> list[str]:
    project = tomllib.loads((REPO / "python" / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return reqs


TRICKY = [
    "Foo.Bar_baz==1.0",
    "zope.interface [ Security , docs ] >= 5 ; python_version >= '3.8'",
    "A",
    "a-b-c[x]",
    "Django__Rest.framework",
]


def test_parse_matches_packaging_for_every_requirement() -> None:
    reqs = pyproject_requirements() + TRICKY
    got = nix_eval(f"map ({HELPER}).parseRequirement (builtins.fromJSON {_nix_str(reqs)})")
    expected = [
        {
            "name": canonicalize_name(Requirement(r).name),
            "extras": [canonicalize_name(e) for e in _ordered_extras(r)],
        }
        for r in reqs
    ]
    assert got == expected


def test_project_info_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "python" / "pyproject.toml").read_text())["project"]
    info = nix_eval(f"({HELPER}).projectInfo ./python/pyproject.toml")
    assert info["name"] == project["name"] and info["version"] == project["version"]
    assert [d["name"] for d in info["dependencies"]] == [
        canonicalize_name(Requirement(r).name) for r in project["dependencies"]
    ]
    assert set(info["optional"]) == set(project["optional-dependencies"])


def test_invalid_requirement_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not a PEP 508 requirement"):
        nix_eval(f'({HELPER}).parseRequirement "[nope]"')


def _ordered_extras(req: str) -> list[str]:
    """Extras in written order (``Requirement.extras`` is a set)."""
    if "[" not in req:
        return []
    inside = req.split("[", 1)[1].split("]", 1)[0]
    return [e.strip() for e in inside.split(",") if e.strip()]


def _nix_str(value: object) -> str:
    import json

    return json.dumps(json.dumps(value)).replace("${", "\\${")
