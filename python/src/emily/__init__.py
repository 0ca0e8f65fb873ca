"""Emily Sovereign: a self-hosted cognitive agent.

Layers, bottom to top (imports only go downwards):

- ``emily.bus`` (Zenoh wiring, message schemas) and ``emily.observe`` (metrics, logging)
- ``emily.memory``, ``emily.inference``, ``emily.cognition``
- ``emily.cli``
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("emily")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
