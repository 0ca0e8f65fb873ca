"""Supervision of the embedded Postgres: a thread that restarts a dead postmaster.

While the server is down the store raises
:class:`~emily.memory.errors.StoreUnavailable`, so the service answers ``unavailable``
and keeps stores in its outbox until the watch has the server back.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from emily.memory.errors import StoreUnavailable

log = logging.getLogger(__name__)


class Restartable(Protocol):
    """What the watch needs of a server (:class:`~emily.memory.embedded.EmbeddedPostgres`)."""

    @property
    def datadir(self) -> Path:
        """Its data directory (for the log)."""
        ...

    def alive(self) -> bool:
        """Whether its postmaster runs."""
        ...

    def start(self) -> None:
        """Start it; a no-op while it runs."""
        ...


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: exists and, where ``/proc`` tells, is no zombie."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat_line.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class PostgresWatch:
    """Restarts a server whose postmaster died.

    Checked every ``period_s`` seconds; a failed restart (old backends still hold the
    shared memory, say) is retried with a backoff doubling up to ``max_backoff_s``.
    :attr:`restarts` counts successful restarts.
    """

    def __init__(self, server: Restartable, period_s: float, max_backoff_s: float) -> None:
        self.server = server
        self.period_s = period_s
        self.max_backoff_s = max_backoff_s
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="postgres-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        wait = self.period_s
        backoff = min(self.period_s, 0.25)  # the first retry comes soon
        down = False
        while not self._stop.wait(wait):
            if self.server.alive():
                wait, down = self.period_s, False
                continue
            if not down:
                log.error("the embedded Postgres on %s is down; restarting it", self.server.datadir)
                down = True
            try:
                self.server.start()
                if not self.server.alive():  # pgserver trusts a pid that is not reaped yet
                    raise StoreUnavailable("its old postmaster is not gone yet")
            except Exception as exc:  # keep watching: the next try may succeed
                wait = backoff
                backoff = min(self.max_backoff_s, backoff * 2)
                log.warning("restarting the embedded Postgres failed (%s); again in %gs", exc, wait)
                continue
            self.restarts += 1
            wait, backoff, down = self.period_s, min(self.period_s, 0.25), False
            log.info("the embedded Postgres is back (restart %d)", self.restarts)

    def stop(self) -> None:
        """Stop watching (the server keeps running)."""
        self._stop.set()
        self._thread.join(timeout=30)
