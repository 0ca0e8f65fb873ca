"""The import layers: no service package imports another, the bottom imports no service.

Read from the source with :mod:`ast` (every ``import`` and ``from ... import``, also
inside functions), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import emily

ROOT = Path(emily.__file__).parent
SERVICES = ("memory", "inference", "cognition", "perception")
# what every layer may build on: nothing here imports a service or the CLI
BOTTOM = (
    "bus",
    "observe",
    "config",
    "cpu",
    "runtime",
    "embed",
    "errors",
    "ids",
    "llamacpp",
    "sqlite_wal",
)
# on top: may use every service (the CLI, the configuration reference, the MCP server)
TOP = ("cli", "configref", "mcp")


def imported(path: Path) -> set[str]:
    """Every ``emily.*`` module ``path`` imports (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n == "emily" or n.startswith("emily.")}


def top(module: str) -> str | None:
    """``emily.memory.store`` -> ``memory``; ``emily`` -> ``None``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_of(path: Path) -> str:
    """The first package under ``emily/`` that ``path`` belongs to (``embed`` for embed.py)."""
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def violations(allowed: dict[str, set[str]]) -> list[str]:
    """``file imports module`` lines where a file's package may not import that layer."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        pkg = package_of(path)
        if pkg not in allowed:
            continue
        for module in sorted(imported(path)):
            target = top(module)
            if target is not None and target != pkg and target not in allowed[pkg]:
                bad.append(f"{path.relative_to(ROOT.parent)} imports {module}")
    return bad


def rules() -> dict[str, set[str]]:
    """Which top-level parts of ``emily`` each layer may import."""
    bottom = set(BOTTOM)
    layers = {b: bottom for b in BOTTOM}
    layers.update({s: bottom for s in SERVICES})
    return layers


def test_no_service_imports_another_and_the_bottom_imports_no_service() -> None:
    assert violations(rules()) == []


def test_the_import_reader_sees_a_service_importing_another(tmp_path: Path) -> None:
    """The check can fail: a file that imports across services is reported."""
    bad = tmp_path / "x.py"
    bad.write_text(
        "def f():\n    from emily.memory.core import Memory\n    import emily.inference.engine\n"
    )
    assert imported(bad) == {
        "emily.memory.core",
        "emily.memory.core.Memory",
        "emily.inference.engine",
    }
    assert {top(m) for m in imported(bad)} == {"memory", "inference"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_package_is_checked(service: str) -> None:
    """A service package that exists is covered by the rules (a new one must be added)."""
    if (ROOT / service).is_dir():
        assert service in rules()


def test_every_package_under_emily_has_a_layer() -> None:
    """Each top-level module is a bottom part, a service, the CLI or the package root."""
    known = set(BOTTOM) | set(SERVICES) | set(TOP) | {"__init__", "__main__"}
    found = {package_of(p) for p in ROOT.rglob("*.py")}
    assert found <= known, f"put {sorted(found - known)} in a layer of tests/test_layers.py"
