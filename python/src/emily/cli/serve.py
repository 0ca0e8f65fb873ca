"""``emily serve <service>``: run one service process in the foreground.

Each service registers a ``"module:function"`` entry point in :data:`SERVICES`; the
module is imported only when that service is started, so ``emily --help`` stays fast.
The function takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import cast

# service name -> "module:function" taking argparse.Namespace and returning an exit code
SERVICES: dict[str, str] = {
    "cognition": "emily.cognition.service:main",
    "inference": "emily.inference.service:main",
    "memory": "emily.memory.service:main",
    "perception": "emily.perception.service:main",
}


def resolve(target: str) -> Callable[[argparse.Namespace], int]:
    """Import ``"module:function"`` and return the function."""
    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(Callable[[argparse.Namespace], int], getattr(module, func_name))


def run(args: argparse.Namespace) -> int:
    """Start the chosen service."""
    return resolve(SERVICES[args.service])(args)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily serve``."""
    p = sub.add_parser("serve", help="run one service (memory, inference, cognition, perception)")
    p.add_argument("service", choices=sorted(SERVICES), help="which service to run")
    p.add_argument("--config", default=None, help="TOML config file (else $EMILY_CONFIG)")
    p.set_defaults(func=run)
