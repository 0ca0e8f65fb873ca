"""The real cognition service in its own process, with a fault injected on purpose.

Every observation is served and its reply sent as usual, but the serving thread then
blocks in :meth:`~emily.cognition.cycle.Cognition.finish`, the first step after a reply,
so nothing that runs after a reply ever does: the process stands still in the window
between the reply and its background work. The test then kills it with SIGKILL, which
is a cognition crash that lands there every time instead of by chance.

    python -m tests.cognition.stalled_after_reply REFLEX_CACHE_DIR

Bus and state settings come from the environment (``EMILY_BUS__*``,
``EMILY_STATE_DIR``), as for ``emily serve cognition``. It prints ``ready`` once it
serves.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from emily.bus import BusConfig
from emily.cognition.config import CognitionConfig
from emily.cognition.cycle import Cognition
from emily.cognition.record import Cycle
from emily.cognition.reflex import MiniLMFeatures, Reflex, ReflexModel
from emily.cognition.reflex.cascade import DEEP_CONFIG
from emily.cognition.reflex.features import HashedNgrams
from emily.cognition.reflex.train import TrainConfig
from emily.cognition.service import CognitionService


def stall(_self: Cognition, _cyc: Cycle) -> None:
    """Never return: the thread that sent the reply stops before any after-reply step."""
    threading.Event().wait()


def main(cache: Path) -> None:
    # the same models as the session's ``cascade`` fixture, loaded from its cache
    fast = ReflexModel.load_or_build(cache, TrainConfig(), HashedNgrams(), "ngrams")
    embedder = MiniLMFeatures()
    deep = ReflexModel.load_or_build(cache, DEEP_CONFIG, embedder, "minilm")
    Cognition.finish = stall  # type: ignore[method-assign]
    service = CognitionService(
        CognitionConfig.load(), BusConfig.load(), Reflex(fast, deep, embedder), http=False
    )
    service.cognition.warm_up()
    print("ready", flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main(Path(sys.argv[1]))
