"""The ``cognition/observe`` queryable: reflex answers inline, everything else on workers.

A cycle whose n-gram reflex fires needs neither memory nor the LLM, and it finishes in
well under a millisecond. It is answered on the Zenoh thread that delivered the query:
no hand-off to a worker thread, no wait behind slow cycles (deliberations can take
seconds). Whether a cycle is that kind is known only once the reflex has run, so the
reflex is :class:`~emily.bus.rpc.Server`'s ``first`` step; a cycle that needs more
continues on the server's bounded worker pool. Wherever the cycle ran, its episodes are
in the durable outbox before the reply is sent, and go to memory after it is out.

An observation of audio or an image is never answered inline: its first step is a call
to the perception service (:mod:`emily.cognition.perceive`), which can take seconds, so
the whole cycle runs on a worker.
"""

from __future__ import annotations

from collections.abc import Callable

import zenoh

from emily.bus.endpoints import OBSERVE
from emily.bus.keys import Keys
from emily.bus.messages import ErrorReply
from emily.bus.rpc import Continuation, RequestFailed, Server
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.cognition.cycle import Cognition
from emily.cognition.dialogue.turns import feedback_only
from emily.cognition.record import Cycle

Perceive = Callable[[ObserveRequest], ObserveRequest]


def serve_observe(
    session: zenoh.Session,
    keys: Keys,
    cognition: Cognition,
    *,
    workers: int = 4,
    perceive: Perceive | None = None,
) -> Server:
    """Serve ``cognition``'s cycle on ``cognition/observe`` (see the module docstring).

    Parameters
    ----------
    session : open Zenoh session. keys : the node's keys. cognition : the cycle.
    workers : threads for the cycles the reflex does not answer.
    perceive : turns an audio or image observation into a text one
        (:meth:`~emily.cognition.perceive.Perceiver.to_text`); ``None`` refuses media.
    """

    def perceived(request: ObserveRequest) -> Continuation:
        started: list[Cycle] = []

        def reply() -> ObserveReply:
            if perceive is None:
                raise RequestFailed(
                    ErrorReply(code="unavailable", message="this server takes text only")
                )
            started.append(cognition.start(perceive(request)))
            return cognition.complete(started[0])

        def after() -> None:
            if started:
                cognition.finish(started[0])

        return Continuation(reply=reply, inline=False, after=after)

    def first(request: ObserveRequest) -> Continuation:
        if feedback_only(request):  # learning only: no cycle runs
            return Continuation(reply=lambda: cognition.feedback(request))
        if request.modality != "text":
            return perceived(request)
        cyc = cognition.start(request)
        return Continuation(
            reply=lambda: cognition.complete(cyc),
            inline=cyc.result.fired,
            after=lambda: cognition.finish(cyc),
        )

    return OBSERVE.serve(session, keys, first=first, workers=workers)
