"""Emily Sovereign: a self-hosted cognitive agent.

Layers, bottom to top (imports only go downwards):

- ``emily.bus`` (Zenoh wiring, message schemas) and ``emily.observe`` (metrics, logging)
- ``emily.memory``, ``emily.inference``, ``emily.cognition``
- ``emily.cli``
"""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _source_tree_version() -> str:
    """Version from python/pyproject.toml when running uninstalled from a checkout
    (``nix develop`` puts python/src on PYTHONPATH instead of installing)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0.0.0+unknown"


try:
    __version__: str = version("emily")
except PackageNotFoundError:
    __version__ = _source_tree_version()

__all__ = ["__version__"]
