"""The embedded Postgres's ``path`` backend: ``initdb``/``pg_ctl`` from a bin dir.

The bin dir is a configured one or the one on ``PATH``; under Nix, nixpkgs'
``postgresql.withPackages (p: [ p.pgvector ])``. Starts and stops are serialised by a
lock file beside the data dir, so several processes may share one server. What is on
disk (initdb, ownership, the socket's place, ``postmaster.pid``) is
:mod:`emily.memory.pgdata`'s.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from emily.memory import pgconf, pgdata
from emily.memory.errors import StoreUnavailable
from emily.memory.pgtools import BIN_ENV, pg_ctl_stop, run_tool, server_user


class PathPostgres:
    """A Postgres run with ``initdb``/``pg_ctl`` from ``bindir`` on ``datadir``.

    Parameters
    ----------
    datadir : data directory; ``initdb`` runs when it holds no ``PG_VERSION``.
    bindir : directory holding ``initdb``, ``pg_ctl`` and ``postgres``.
    stop_on_exit : stop the server at exit if this object started it.

    Raises
    ------
    StoreUnavailable
        A tool is missing, the server does not start, or it lacks pgvector.
    """

    def __init__(self, datadir: Path, bindir: Path, *, stop_on_exit: bool = True) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not os.access(bindir / tool, os.X_OK):
                raise StoreUnavailable(
                    f"{bindir / tool} is missing or not executable; point {BIN_ENV} at the "
                    "bin directory of a Postgres with pgvector, or unset it"
                )
        self.bindir = bindir.resolve()
        self.datadir = datadir.parent.resolve() / datadir.name
        self.user = server_user() if os.geteuid() == 0 else None
        self._lockfile = self.datadir.parent / f".{self.datadir.name}.lock"
        self._started = False
        if stop_on_exit:
            atexit.register(self._stop_if_started)
        self.start()
        try:
            pgdata.require_pgvector(self.dsn, bindir)
        except StoreUnavailable:
            self._stop_if_started()
            raise

    @property
    def socket_dir(self) -> Path:
        """The data dir, or a private dir under the temp dir when its path is too long."""
        return pgdata.socket_dir(self.datadir)

    @property
    def dsn(self) -> str:
        """libpq URI of the unix socket (user and database ``postgres``)."""
        host = quote(str(self.socket_dir))
        return f"postgresql://postgres@/postgres?host={host}&port={pgdata.PORT}"

    @property
    def pid(self) -> int:
        """Process id of the running postmaster.

        Raises
        ------
        StoreUnavailable
            If the server is not running; call :meth:`start`.
        """
        pid = pgdata.running_pid(self.datadir)
        if pid is None:
            raise StoreUnavailable(f"the Postgres on {self.datadir} is not running; start() it")
        return pid

    def start(self) -> None:
        """initdb when needed, then ``pg_ctl start`` and wait until it accepts connections."""
        with self._locked():
            if pgdata.running_pid(self.datadir) is not None:
                return
            if not (self.datadir / "PG_VERSION").exists():
                pgdata.initdb(self.bindir, self.datadir, self.user)
                pgconf.install(self.datadir, self.user)  # in force from the first start
            sock = self.socket_dir
            pgdata.own_dir(sock, self.user)
            options = f"-h '' -p {pgdata.PORT} -k {shlex.quote(str(sock))}"
            logfile = self.datadir / "log"
            ctl = [self.bindir / "pg_ctl", "-D", self.datadir]
            out = run_tool([*ctl, "-l", logfile, "-w", "-o", options, "start"], self.user)
            if out.returncode != 0:
                tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                raise StoreUnavailable(
                    f"pg_ctl could not start Postgres on {self.datadir}:\n{out.stdout}\n{tail}\n"
                    f"Read {logfile}; a data dir from another Postgres major version needs "
                    "that version's bin dir"
                )
            self._started = True

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (a clean shutdown); no-op when not running."""
        with self._locked():
            if pgdata.running_pid(self.datadir) is not None:
                pg_ctl_stop(self.bindir, self.datadir, self.user)
            self._started = False

    def _stop_if_started(self) -> None:
        """At exit: stop the server this object started, if it still runs."""
        if self._started and pgdata.running_pid(self.datadir) is not None:
            self.stop()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop across processes sharing the data dir."""
        with self._lockfile.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
