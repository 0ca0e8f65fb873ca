"""The recall stage: what memory holds for this turn, over the bus, within its deadline.

A question is answered from the user's statements (the assistant's answers for "what
did you tell me") and the user's current facts, looked up at the same time; for any
other turn the recalled statements are context for the workspace and the LLM. Questions
recalled from memory are never used as answers.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from emily.bus.schemas.facts import Fact
from emily.cognition.clients import MemoryClient, PeerUnavailable
from emily.cognition.config import CognitionConfig
from emily.cognition.dialogue import answer, turns
from emily.cognition.dialogue.acts import LazyActs
from emily.cognition.record import Cycle


class Recall:
    """Recall for a cycle from ``memory`` (``None``: memory is missing).

    Parameters
    ----------
    memory : the memory client, or ``None`` without a bus.
    config : ``recall_k``, ``facts_k``, ``recall_search`` and ``recall_timeout_s``.
    acts : the dialogue-act classifier (a recalled turn that asks is not an answer).
    """

    def __init__(
        self, memory: MemoryClient | None, config: CognitionConfig, acts: LazyActs
    ) -> None:
        self.memory = memory
        self.config = config
        self.acts = acts
        self._lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="facts")

    def __call__(self, cyc: Cycle) -> None:
        """Fill ``cyc.hits`` and, for a question, ``cyc.facts``; a missing memory is
        noted in ``cyc.missing``."""
        memory = self.memory
        if memory is None:
            cyc.missing.append("memory")
            return
        t = time.perf_counter()
        req, cfg = cyc.request, self.config
        facts: Future[list[Fact]] | None = None
        if cyc.act == "question" and not cyc.told and memory.available():
            args = (req.text, req.user, cfg.facts_k, cfg.recall_timeout_s)
            facts = self._lookups.submit(memory.facts, *args)
        try:
            hits = memory.recall(
                req.text,
                cyc.embedding,
                cfg.recall_k,
                cfg.recall_timeout_s,
                user=req.user,
                filters=turns.recall_filters(cyc.told, cyc.act),
                search=cfg.recall_search,
            )
            if cyc.act == "question":  # hits it may be answered from
                cyc.hits = answer.usable(hits, self._asking, "assistant" if cyc.told else "user")
            else:  # context for the workspace and the LLM
                cyc.hits = [h for h in hits if h.episode.act != "question"]
        except PeerUnavailable as exc:
            cyc.missing.append("memory")
            cyc.notes.append(str(exc))
        if facts is not None:
            try:
                cyc.facts = answer.current(facts.result())
            except PeerUnavailable as exc:
                cyc.notes.append(str(exc))
        cyc.timed("recall", t)

    def _asking(self, text: str) -> bool:
        """Whether ``text`` is a question or command by its words (a stored turn's check)."""
        return self.acts.get().classify(text).act != "statement"

    def close(self) -> None:
        """Wait for the fact lookups in flight and stop their threads."""
        self._lookups.shutdown(wait=True)
