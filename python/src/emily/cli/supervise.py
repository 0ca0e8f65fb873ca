"""The service processes of ``emily up``: started, watched, restarted, and never orphaned.

- **Restarts.** A service that exits is started again after an exponential backoff
  (``backoff_s``, doubled per consecutive failure up to ``max_backoff_s``). A service
  that exits ``restart_limit`` times within ``window_s`` is in a crash loop: it is left
  stopped and reported, and the others keep running.
- **No orphans.** Each service is told its supervisor's pid (``EMILY_SUPERVISOR_PID``)
  and asks the kernel for SIGTERM when that process dies (:func:`emily.runtime.
  die_with_supervisor`), so even ``kill -9`` of ``emily up`` stops them. A pidfile
  (``<state dir>/run/up.json``) names ``emily up`` and its services; the next
  ``emily up`` refuses to start beside a live one, and stops services that an earlier
  one left behind instead of mistaking them for its own.
- **Logs.** Each service's output comes back through a pipe and goes to
  ``<logs>/<service>.log``, rotated by size (:class:`emily.observe.log.LogFile`).
- **Restarts on request.** :meth:`Supervisor.restart` stops one service gracefully and
  starts it again at once (``emily model use`` asks for this through ``emily up``);
  such a restart is not counted as a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emily.errors import EmilyError
from emily.observe.log import LogConfig, LogFile


def serve_command(name: str) -> list[str]:
    """The command line of service ``name``: ``python -m emily serve <name>``."""
    return [sys.executable, "-m", "emily", "serve", name]


@dataclass(frozen=True)
class RestartPolicy:
    """When a service that exited is started again.

    Attributes
    ----------
    backoff_s : wait before the first restart (s); doubled for each further one in a row.
    max_backoff_s : longest wait between restarts (s).
    restart_limit : restarts within ``window_s`` after which the service is given up.
    window_s : the crash-loop window (s).
    """

    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    restart_limit: int = 5
    window_s: float = 120.0

    def delay(self, failures: int) -> float:
        """Backoff before restart number ``failures`` (1, 2, ...) in a row (s)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(failures - 1, 0)))


@dataclass
class Service:
    """One supervised service: its process, exits and restart schedule."""

    name: str
    proc: subprocess.Popen[bytes] | None = None
    exits: list[float] = field(default_factory=list)
    restart_at: float | None = None
    given_up: bool = False


class Supervisor:
    """Starts ``emily serve <name>`` processes and keeps them running.

    Parameters
    ----------
    names : the services, in start order.
    env : environment of every service (bus settings included).
    logs : directory of ``<service>.log``.
    policy : the restart policy.
    say : where progress lines go (the terminal).
    log_config : rotation of the log files (size and count).
    command : the command line that runs a service (:func:`serve_command`).
    """

    def __init__(
        self,
        names: list[str],
        env: Mapping[str, str],
        logs: Path,
        policy: RestartPolicy,
        say: Callable[[str], None],
        log_config: LogConfig | None = None,
        command: Callable[[str], list[str]] = serve_command,
    ) -> None:
        self.services = {n: Service(n) for n in names}
        self.env = {**env, "EMILY_SUPERVISOR_PID": str(os.getpid())}
        self.logs = logs
        self.policy = policy
        self.say = say
        self.command = command
        self.readers: dict[str, threading.Thread] = {}
        cfg = log_config or LogConfig()
        self.files = {n: LogFile(logs / f"{n}.log", cfg.max_bytes, cfg.backup_count) for n in names}

    def start(self, name: str) -> None:
        """Start (or restart) ``name``; its output is appended to its log."""
        proc = subprocess.Popen(
            self.command(name),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert proc.stdout is not None
        self.readers[name] = self.files[name].follow(proc.stdout, f"log-{name}")
        self.services[name].proc = proc
        self.services[name].restart_at = None

    def restart(self, name: str, grace_s: float = 20.0) -> None:
        """Stop ``name`` (SIGTERM, SIGKILL after ``grace_s`` s) and start it again now.

        Not counted as a crash. Raises :class:`EmilyError` for a service not supervised.
        """
        svc = self.services.get(name)
        if svc is None:
            raise EmilyError(
                f"{name} is not one of the supervised services {sorted(self.services)}"
            )
        if svc.proc is not None and svc.proc.poll() is None:
            svc.proc.send_signal(signal.SIGTERM)
            try:
                svc.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                svc.proc.wait()
        svc.given_up = False
        svc.exits.clear()
        self.start(name)

    def pids(self) -> dict[str, int]:
        """Pid of every running service."""
        return {n: s.proc.pid for n, s in self.services.items() if s.proc and s.proc.poll() is None}

    def running(self) -> list[str]:
        """Services that are running or waiting for a restart."""
        return [n for n, s in self.services.items() if not s.given_up]

    def check(self, now: float | None = None) -> list[str]:
        """Notice exits, schedule and perform restarts; returns the services restarted."""
        now = time.monotonic() if now is None else now
        restarted = []
        for svc in self.services.values():
            if svc.given_up or svc.proc is None:
                continue
            code = svc.proc.poll()
            if code is not None and svc.restart_at is None:
                svc.exits = [t for t in svc.exits if now - t < self.policy.window_s] + [now]
                log = self.logs / f"{svc.name}.log"
                if len(svc.exits) > self.policy.restart_limit:
                    svc.given_up = True
                    self.say(
                        f"{svc.name} exited {len(svc.exits)} times within "
                        f"{self.policy.window_s:g} s (last code {code}); not restarting it: "
                        f"see {log}"
                    )
                    continue
                wait = self.policy.delay(len(svc.exits))
                svc.restart_at = now + wait
                self.say(
                    f"{svc.name} exited with code {code}; restarting in {wait:g} s "
                    f"(restart {len(svc.exits)} of at most {self.policy.restart_limit}; "
                    f"log: {log})"
                )
            if svc.restart_at is not None and now >= svc.restart_at:
                self.start(svc.name)
                restarted.append(svc.name)
        return restarted

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every service, wait up to ``grace_s`` seconds, then SIGKILL."""
        procs = [s.proc for s in self.services.values() if s.proc is not None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for reader in self.readers.values():  # the last lines a service wrote, then EOF
            reader.join(timeout=5)
        for f in self.files.values():
            f.close()


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_service(pid: int, name: str) -> bool:
    """Whether ``pid`` runs ``emily serve <name>`` (a reused pid is left alone)."""
    args = cmdline(pid)
    return any(args[i : i + 3] == ["emily", "serve", name] for i in range(max(len(args) - 2, 0)))


class PidFile:
    """``<state dir>/run/up.json``: the running ``emily up`` and its services' pids."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, object]:
        """What the file says, or ``{}`` when there is none or it is unreadable."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def claim(self, say: Callable[[str], None], grace_s: float = 10.0) -> None:
        """Make this process the stack's owner: refuse beside a live ``emily up``, stop
        the services an earlier one left behind.

        Raises
        ------
        EmilyError
            When another ``emily up`` is running.
        """
        data = self.read()
        owner = data.get("up")
        if isinstance(owner, int) and owner != os.getpid() and alive(owner):
            raise EmilyError(
                f"emily up is already running (pid {owner}); stop it with Ctrl-C in its "
                f"terminal or `kill {owner}`"
            )
        services = data.get("services")
        left = {
            n: p
            for n, p in (services.items() if isinstance(services, dict) else [])
            if isinstance(p, int) and alive(p) and is_service(p, str(n))
        }
        for name, pid in left.items():
            say(f"stopping {name} (pid {pid}), left running by an earlier emily up")
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for pid in left.values():
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.write({})

    def write(self, services: Mapping[str, int]) -> None:
        """Record this process and ``services`` (atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"up": os.getpid(), "services": dict(services)}))
        tmp.replace(self.path)

    def remove(self) -> None:
        """Delete the file (the stack is stopped)."""
        self.path.unlink(missing_ok=True)
