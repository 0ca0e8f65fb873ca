"""Every queryable and published stream of the bus, declared once with its types.

An :class:`Endpoint` names a queryable (``<service>/<verb>`` under ``emily/<node>/``),
the :class:`~emily.bus.messages.Message` its requests validate against, the message its
replies carry, and whether it streams (several replies per request). Services serve
with :meth:`Endpoint.serve`; clients call with :meth:`Endpoint.call` or
:meth:`Endpoint.stream`. A :class:`Topic` does the same for a published stream
(``events/<name>``). Nothing else in the tree spells a key, so a contract changes in
one place and its request and reply types cannot drift apart between the two ends.

Example::

    hits = RECALL.call(session, keys, RecallRequest(text="gulls"), timeout_s=5).hits
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import zenoh

from emily.bus.keys import Keys
from emily.bus.messages import Message
from emily.bus.rpc import DEFAULT_MAX_BYTES, Server, call, stream
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest, WorkspaceBroadcast
from emily.bus.schemas.facts import (
    ConsolidateReply,
    ConsolidateRequest,
    FactsReply,
    FactsRequest,
)
from emily.bus.schemas.inference import (
    CancelReply,
    CancelRequest,
    ChatRequest,
    GenerateRequest,
    GenerationChunk,
    InferenceInfo,
    InfoRequest,
)
from emily.bus.schemas.lifecycle import (
    CorrectReply,
    CorrectRequest,
    EventsReply,
    EventsRequest,
    ExportReply,
    ExportRequest,
    ForgetReply,
    ForgetRequest,
    RebuildReply,
    RebuildRequest,
)
from emily.bus.schemas.memory import (
    MemoryOperations,
    RecallReply,
    RecallRequest,
    StatsReply,
    StatsRequest,
    StoreReply,
    StoreRequest,
)
from emily.bus.schemas.neural import SpikeEvent
from emily.bus.schemas.perception import (
    MAX_MEDIA_B64,
    CaptionReply,
    CaptionRequest,
    ReadReply,
    ReadRequest,
    TranscribeReply,
    TranscribeRequest,
)

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Msg = TypeVar("Msg", bound=Message)


@dataclass(frozen=True)
class Endpoint(Generic[Req, Resp]):
    """One queryable: ``emily/<node>/<service>/<verb>``.

    Attributes
    ----------
    service, verb : the key's two chunks under the node (``memory``, ``recall``).
    request : the message type requests validate against.
    reply : the message type of each reply.
    streams : whether one request gets several replies (use :meth:`stream`).
    max_bytes : largest request payload the server accepts (bytes); larger ones get
        ``bad_request`` unread.
    """

    service: str
    verb: str
    request: type[Req]
    reply: type[Resp]
    streams: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def name(self) -> str:
        """``<service>/<verb>``, as the README and error messages spell it."""
        return f"{self.service}/{self.verb}"

    def key(self, keys: Keys) -> str:
        """The key expression on ``keys``' node."""
        return keys.query(self.service, self.verb)

    def call(self, session: zenoh.Session, keys: Keys, request: Req, *, timeout_s: float) -> Resp:
        """Send ``request`` and return its single validated reply (see :func:`call`)."""
        return call(session, self.key(keys), request, self.reply, timeout_s=timeout_s)

    def stream(
        self, session: zenoh.Session, keys: Keys, request: Req, *, timeout_s: float
    ) -> Iterator[Resp]:
        """Send ``request`` and yield every validated reply (see :func:`stream`)."""
        return stream(session, self.key(keys), request, self.reply, timeout_s=timeout_s)

    def serve(
        self,
        session: zenoh.Session,
        keys: Keys,
        handler: Callable[[Req], Resp | Iterable[Resp]] | None = None,
        **options: Any,
    ) -> Server:
        """Declare this queryable on ``session`` and serve it with ``handler``.

        ``options`` are :class:`~emily.bus.rpc.Server`'s keyword arguments (``workers``,
        ``inline``, ``batch``, ``max_batch``, ``first`` in place of ``handler``); the
        payload limit is this endpoint's :attr:`max_bytes`.
        """
        options.setdefault("max_bytes", self.max_bytes)
        return Server(session, self.key(keys), self.request, handler, **options)


@dataclass(frozen=True)
class Topic(Generic[Msg]):
    """One published stream: ``emily/<node>/events/<name>``, carrying ``message``."""

    name: str
    message: type[Msg]

    def key(self, keys: Keys) -> str:
        """The key expression on ``keys``' node."""
        return keys.events(self.name)


# base64 media of MAX_MEDIA_BYTES plus the JSON around it
_MEDIA_BYTES = MAX_MEDIA_B64 + 4096
OBSERVE = Endpoint("cognition", "observe", ObserveRequest, ObserveReply, max_bytes=_MEDIA_BYTES)
# a prompt of MAX_PROMPT_CHARS characters, each escaped in JSON at worst
_PROMPT_BYTES = 8 << 20
GENERATE = Endpoint(
    "inference", "generate", GenerateRequest, GenerationChunk, streams=True, max_bytes=_PROMPT_BYTES
)
CHAT = Endpoint(
    "inference", "chat", ChatRequest, GenerationChunk, streams=True, max_bytes=_PROMPT_BYTES
)
CANCEL = Endpoint("inference", "cancel", CancelRequest, CancelReply)
INFO = Endpoint("inference", "info", InfoRequest, InferenceInfo)
# a full batch of MAX_BATCH episodes with embeddings and long texts
STORE = Endpoint("memory", "store", StoreRequest, StoreReply, max_bytes=32 << 20)
RECALL = Endpoint("memory", "recall", RecallRequest, RecallReply)
STATS = Endpoint("memory", "stats", StatsRequest, StatsReply)
FACTS = Endpoint("memory", "facts", FactsRequest, FactsReply)
CONSOLIDATE = Endpoint("memory", "consolidate", ConsolidateRequest, ConsolidateReply)
FORGET = Endpoint("memory", "forget", ForgetRequest, ForgetReply)
CORRECT = Endpoint("memory", "correct", CorrectRequest, CorrectReply)
EXPORT = Endpoint("memory", "export", ExportRequest, ExportReply)
EVENTS = Endpoint("memory", "events", EventsRequest, EventsReply)
REBUILD = Endpoint("memory", "rebuild", RebuildRequest, RebuildReply)
TRANSCRIBE = Endpoint(
    "perception", "transcribe", TranscribeRequest, TranscribeReply, max_bytes=_MEDIA_BYTES
)
READ = Endpoint("perception", "read", ReadRequest, ReadReply, max_bytes=_MEDIA_BYTES)
CAPTION = Endpoint("perception", "caption", CaptionRequest, CaptionReply, max_bytes=_MEDIA_BYTES)

#: Every queryable, in the order the README lists them.
ENDPOINTS: tuple[Endpoint[Any, Any], ...] = (
    OBSERVE,
    GENERATE,
    CHAT,
    CANCEL,
    INFO,
    STORE,
    RECALL,
    STATS,
    FACTS,
    CONSOLIDATE,
    FORGET,
    CORRECT,
    EXPORT,
    EVENTS,
    REBUILD,
    TRANSCRIBE,
    READ,
    CAPTION,
)

MEMORY_OPERATIONS = Topic("memory.operations", MemoryOperations)
NEURAL_SPIKES = Topic("neural.spikes", SpikeEvent)
WORKSPACE_BROADCAST = Topic("workspace.broadcast", WorkspaceBroadcast)

#: Every published stream.
TOPICS: tuple[Topic[Any], ...] = (MEMORY_OPERATIONS, NEURAL_SPIKES, WORKSPACE_BROADCAST)

#: The services that declare queryables and liveliness tokens.
SERVICES: tuple[str, ...] = tuple(dict.fromkeys(e.service for e in ENDPOINTS))


def served_by(service: str) -> tuple[Endpoint[Any, Any], ...]:
    """The endpoints ``service`` declares (``memory`` -> store, recall, stats)."""
    return tuple(e for e in ENDPOINTS if e.service == service)
