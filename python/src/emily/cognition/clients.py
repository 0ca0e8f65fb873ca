"""Memory and inference, reached only over the bus through their schemas.

:class:`~emily.bus.health.Peers` follows the liveliness tokens ``health/<service>``, so
a cycle knows at once that a service is absent instead of waiting for a timeout. Every
call carries a deadline; a missing or failing service raises :class:`PeerUnavailable`,
which the cycle turns into a degraded answer and a trace entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import zenoh

from emily.bus import Keys
from emily.bus.endpoints import CANCEL, CHAT, FACTS, RECALL, STORE
from emily.bus.health import Peers
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.dialogue import DEFAULT_USER
from emily.bus.schemas.facts import Fact, FactsRequest
from emily.bus.schemas.inference import CancelRequest, ChatMessage, ChatRequest
from emily.bus.schemas.memory import (
    EpisodeIn,
    Hit,
    RecallFilters,
    RecallRequest,
    StoreReply,
    StoreRequest,
)
from emily.cognition.errors import CognitionError
from emily.errors import BusError
from emily.ids import uuid7

log = logging.getLogger(__name__)


class PeerUnavailable(CognitionError):
    """A service needed by a stage is absent, failed, or missed its deadline."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service


class EpisodeRefused(CognitionError):
    """Memory refused a store as malformed; the message names the episode and field."""


@dataclass
class MemoryClient:
    """``memory/recall``, ``memory/facts`` and ``memory/store`` with deadlines."""

    session: zenoh.Session
    keys: Keys
    peers: Peers

    def available(self) -> bool:
        """Whether a memory service is on the bus."""
        return self.peers.alive("memory")

    def recall(
        self,
        text: str,
        vector: Sequence[float] | None,
        k: int,
        timeout_s: float,
        *,
        user: str = DEFAULT_USER,
        filters: RecallFilters | None = None,
        search: Literal["vector", "hybrid"] = "vector",
    ) -> list[Hit]:
        """``user``'s ``k`` nearest episodes that pass ``filters``, by ``vector`` (and,
        with ``search="hybrid"``, the full text too), else by ``text`` alone."""
        if not self.peers.alive("memory"):
            raise PeerUnavailable("memory", "no memory service on the bus")
        fields: dict[str, object] = {"k": k, "user": user, "search": search}
        if filters is not None:
            fields["filters"] = filters
        if vector is not None:
            fields["vector"] = [float(v) for v in vector]
        if vector is None or search == "hybrid":
            fields["text"] = text
        req = RecallRequest.model_validate(fields)
        try:
            return RECALL.call(self.session, self.keys, req, timeout_s=timeout_s).hits
        except BusError as exc:
            raise PeerUnavailable(
                "memory", f"recall failed or missed its {timeout_s:g} s deadline ({exc})"
            ) from exc

    def facts(self, text: str, user: str, k: int, timeout_s: float) -> list[Fact]:
        """``user``'s current facts that match ``text``, best first.

        A memory that does not serve ``memory/facts`` (no fact store) counts as absent:
        :class:`PeerUnavailable`, as for a missing memory.
        """
        if not self.peers.alive("memory"):
            raise PeerUnavailable("memory", "no memory service on the bus")
        req = FactsRequest(user=user, text=text, k=k)
        try:
            return FACTS.call(self.session, self.keys, req, timeout_s=timeout_s).facts
        except BusError as exc:
            raise PeerUnavailable(
                "facts", f"memory/facts failed or missed its {timeout_s:g} s deadline ({exc})"
            ) from exc

    def store(self, episodes: list[EpisodeIn], timeout_s: float) -> StoreReply:
        """Store ``episodes``.

        Raises
        ------
        EpisodeRefused
            Memory answered ``bad_request``: sending the same batch again cannot help.
        PeerUnavailable
            Memory is absent, failed or missed the deadline: try again later.
        """
        if not self.peers.alive("memory"):
            raise PeerUnavailable("memory", "no memory service on the bus")
        try:
            req = StoreRequest(episodes=episodes)
            return STORE.call(self.session, self.keys, req, timeout_s=timeout_s)
        except RequestFailed as exc:
            if exc.reply.code == "bad_request":
                raise EpisodeRefused(exc.reply.message) from exc
            raise PeerUnavailable("memory", str(exc)) from exc
        except BusError as exc:
            raise PeerUnavailable("memory", str(exc)) from exc


@dataclass(frozen=True)
class Answer:
    """Generated text, time to first token (ms) and the number of chunks received."""

    text: str
    ttft_ms: float
    chunks: int


@dataclass
class InferenceClient:
    """``inference/chat``, streamed, with a deadline."""

    session: zenoh.Session
    keys: Keys
    peers: Peers

    def available(self) -> bool:
        """Whether an inference service is on the bus."""
        return self.peers.alive("inference")

    def chat(self, messages: list[ChatMessage], max_tokens: int, timeout_s: float) -> Answer:
        """Stream a chat completion and return it whole, with its time to first token.

        An answer that misses ``timeout_s`` is cancelled on the service (in the
        background), so its slot is free again instead of generating to ``max_tokens``
        for nobody.
        """
        if not self.available():
            raise PeerUnavailable("inference", "no inference service on the bus")
        request_id = f"cognition-{uuid7().hex}"
        req = ChatRequest(
            messages=tuple(messages),
            max_tokens=max_tokens,
            stream=True,
            temperature=0.0,
            request_id=request_id,
        )
        t0 = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        done = False
        try:
            for chunk in CHAT.stream(self.session, self.keys, req, timeout_s=timeout_s):
                if ttft is None:
                    ttft = (time.perf_counter() - t0) * 1e3
                parts.append(chunk.text)
                done = done or chunk.done
        except BusError as exc:
            self._cancel(request_id)
            raise PeerUnavailable(
                "inference", f"chat failed or missed its {timeout_s:g} s deadline ({exc})"
            ) from exc
        if not done:
            self._cancel(request_id)
            raise PeerUnavailable("inference", f"the answer did not finish within {timeout_s:g} s")
        return Answer(text="".join(parts).strip(), ttft_ms=ttft or 0.0, chunks=len(parts))

    def _cancel(self, request_id: str) -> None:
        """Ask inference to stop ``request_id``, on a thread of its own (best effort)."""

        def send() -> None:
            try:
                CANCEL.call(
                    self.session, self.keys, CancelRequest(request_id=request_id), timeout_s=5
                )
            except BusError as exc:  # gone or busy: its own deadline ends the generation
                log.info("cancel of %s not delivered: %s", request_id, exc)

        threading.Thread(target=send, name="cancel", daemon=True).start()
