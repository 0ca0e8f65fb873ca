"""What the tests of bench/ share: importing a benchmark script as a module."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` imported as ``name``; bench/ is a folder of scripts that import
    each other by bare name, so it goes on ``sys.path`` first."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)
