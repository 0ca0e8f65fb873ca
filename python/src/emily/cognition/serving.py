"""The ``cognition/observe`` queryable: reflex answers inline, everything else on workers.

A cycle whose n-gram reflex fires needs neither memory nor the LLM, and it finishes in
well under a millisecond. It is answered on the Zenoh thread that delivered the query:
no hand-off to a worker thread, no wait behind slow cycles (deliberations can take
seconds). Whether a cycle is that kind is known only once the reflex has run, so the
reflex is :class:`~emily.bus.rpc.Server`'s ``first`` step; a cycle that needs more
continues on the server's bounded worker pool. The episode goes to the writer after the
reply is out, wherever the cycle finished.
"""

from __future__ import annotations

import zenoh

from emily.bus.endpoints import OBSERVE
from emily.bus.keys import Keys
from emily.bus.rpc import Continuation, Server
from emily.bus.schemas.cognition import ObserveRequest
from emily.cognition.cycle import Cognition


def serve_observe(
    session: zenoh.Session, keys: Keys, cognition: Cognition, *, workers: int = 4
) -> Server:
    """Serve ``cognition``'s cycle on ``cognition/observe`` (see the module docstring).

    Parameters
    ----------
    session : open Zenoh session. keys : the node's keys. cognition : the cycle.
    workers : threads for the cycles the reflex does not answer.
    """

    def first(request: ObserveRequest) -> Continuation:
        cyc = cognition.start(request)
        return Continuation(
            reply=lambda: cognition.complete(cyc),
            inline=cyc.result.fired,
            after=lambda: cognition.finish(cyc),
        )

    return OBSERVE.serve(session, keys, first=first, workers=workers)
