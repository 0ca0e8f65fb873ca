from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.conftest import REPO


def test_uninstalled_source_tree_reads_pyproject() -> None:
    """As under `nix develop`: python/src on PYTHONPATH, metadata of an installed copy hidden."""
    code = (
        "import importlib.metadata as m\n"
        "def missing(name):\n"
        "    raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import emily; print(emily.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "python" / "src")},
        timeout=60,
    )
    expected = tomllib.loads((REPO / "python" / "pyproject.toml").read_text())["project"]
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected["version"]
