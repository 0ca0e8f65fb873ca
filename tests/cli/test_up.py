"""``emily up`` supervises: restarts, crash loops, ``kill -9`` of itself, orphans."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emily.bus import BusConfig
from emily.bus.client import Client
from emily.bus.endpoints import OBSERVE
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.cli.status import services
from emily.cli.supervise import PidFile, RestartPolicy, alive
from emily.errors import EmilyError
from tests.conftest import free_port

pytestmark = pytest.mark.slow


class Up:
    """``python -m emily up`` in a child process, its output read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.endpoint = f"tcp/127.0.0.1:{free_port()}"
        full = {**os.environ, **(env or {})}
        full.setdefault("EMILY_INFERENCE__HTTP_PORT", str(free_port()))
        full.setdefault("EMILY_PERCEPTION__METRICS_PORT", str(free_port()))
        cmd = [sys.executable, "-m", "emily", "up", "--endpoint", self.endpoint, *args]
        self.proc = subprocess.Popen(
            cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, wait_s: float = 300.0) -> str:
        """The first line (from now on) that contains ``text``."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1.0)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output so far:\n" + "\n".join(self.seen))

    def services(self) -> dict[str, int]:
        data = json.loads((Path(os.environ["EMILY_STATE_DIR"]) / "run" / "up.json").read_text())
        return {str(k): int(v) for k, v in data["services"].items()}

    def stop(self) -> int:
        """SIGTERM, then the exit code; the output so far is printed for a failing test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        time.sleep(0.2)  # let the reader thread take the last lines
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        print("emily up said:\n" + "\n".join(self.seen))
        return code


def gone(pid: int, wait_s: float = 60.0) -> bool:
    deadline = time.monotonic() + wait_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def up_stack() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()


def test_a_service_killed_with_sigkill_is_restarted_and_the_other_keeps_running(
    up_stack: list[Up],
) -> None:
    up = Up("--services", "inference,perception", "--backoff", "0.2")
    up_stack.append(up)
    up.expect("all services are up")
    before = up.services()
    os.kill(before["perception"], signal.SIGKILL)  # the fault: a service dies
    assert "restarting in 0.2 s" in up.expect("perception exited with code -9")
    up.expect("perception up again")
    # and `emily status` (a new session, as the command opens) sees it up again too
    bus = BusConfig(node="local", connect=(up.endpoint,), listen=())
    seen = services(bus, timeout_s=10.0, expected=("inference", "perception"))
    assert seen["down"] == [] and {"inference", "perception"} <= set(seen["alive"]), seen
    after = up.services()
    assert after["inference"] == before["inference"] and alive(after["inference"])
    assert after["perception"] != before["perception"] and alive(after["perception"])
    assert up.stop() == 130
    assert gone(after["inference"]) and gone(after["perception"])
    assert not (Path(os.environ["EMILY_STATE_DIR"]) / "run" / "up.json").exists()


def test_a_crash_looping_service_is_given_up_while_the_other_runs(up_stack: list[Up]) -> None:
    """Inference pointed at a model file that does not exist (injected) exits at every
    start: after the restart limit it is left stopped, and perception stays up."""
    up = Up(
        "--services",
        "inference,perception",
        "--backoff",
        "0.1",
        "--restart-limit",
        "2",
        env={"EMILY_INFERENCE__MODEL_PATH": "/nonexistent/model.gguf"},
    )
    up_stack.append(up)
    up.expect("inference exited")
    assert "not restarting it" in up.expect("inference exited 3 times")
    assert up.expect("up: ") == "up: perception"
    assert alive(up.services()["perception"])
    assert up.stop() == 130


#: A child run with ``-m`` (as ``emily`` is): SIGTERM lands while ``exec`` runs a string,
#: as a lazy import of a module with dataclasses does, and the loop looks afterwards.
SIGNAL_IN_EXEC = """
import os, signal, sys
from emily.cli.up import StopRequest
stop = StopRequest()
exec("import os, signal\\nos.kill(os.getpid(), signal.SIGTERM)\\nx = [i for i in range(1000)]")
try:
    stop.check()
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(1)
"""


def test_a_stop_signal_inside_generated_code_still_exits_with_130(tmp_path: Path) -> None:
    """A handler that raised KeyboardInterrupt inside ``exec`` of a string made Python
    exit by SIGINT (-2) once ``emily up`` had stopped, whatever it returned."""
    (tmp_path / "stopper.py").write_text(SIGNAL_IN_EXEC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "stopper"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 130, done.stderr


def test_kill_9_of_emily_up_takes_its_services_with_it(up_stack: list[Up]) -> None:
    up = Up("--services", "inference")
    up_stack.append(up)
    up.expect("all services are up")
    pid = up.services()["inference"]
    up.proc.kill()  # the fault: the supervisor is killed without a chance to clean up
    up.proc.wait()
    assert gone(pid), "the service outlived emily up"


def test_the_pidfile_refuses_a_second_up_and_stops_orphans(tmp_path: Path) -> None:
    """A process that looks like an orphaned ``emily serve inference`` (its command line
    says so) is stopped; a live owner makes claim refuse."""
    code = "import time; time.sleep(120)"
    orphan = subprocess.Popen([sys.executable, "-c", code, "-m", "emily", "serve", "inference"])
    owner = subprocess.Popen([sys.executable, "-c", code])
    pidfile = PidFile(tmp_path / "run" / "up.json")
    said: list[str] = []
    try:
        pidfile.path.parent.mkdir(parents=True)
        pidfile.path.write_text(json.dumps({"up": owner.pid, "services": {}}))
        with pytest.raises(EmilyError, match=f"already running \\(pid {owner.pid}\\)"):
            pidfile.claim(said.append)
        owner.kill()
        owner.wait()
        reused = os.getpid()  # a live pid that is not an emily service: left alone
        pidfile.path.write_text(
            json.dumps({"up": owner.pid, "services": {"inference": orphan.pid, "memory": reused}})
        )
        pidfile.claim(said.append)
        assert orphan.wait(timeout=30) == -signal.SIGTERM
        assert said == [
            f"stopping inference (pid {orphan.pid}), left running by an earlier emily up"
        ]
        assert json.loads(pidfile.path.read_text())["services"] == {}
    finally:
        for p in (orphan, owner):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_restart_backoff_doubles_up_to_its_ceiling() -> None:
    policy = RestartPolicy(backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_inference_killed_mid_answer_degrades_then_is_restarted_and_deliberates_again(
    up_stack: list[Up],
) -> None:
    """Inference is killed (SIGKILL) while it streams a deliberation: that cycle answers
    without the LLM and says inference was missing; the supervisor restarts inference,
    and the next deliberation is answered by the LLM again."""
    env = {"EMILY_COGNITION__HTTP_PORT": str(free_port())}
    up = Up("--services", "inference,cognition", "--backoff", "0.2", "--node", "kill9", env=env)
    up_stack.append(up)
    up.expect("all services are up")
    bus = BusConfig(node="kill9", connect=(up.endpoint,), listen=())
    question = ObserveRequest(
        text="Tell me a very long story about a lighthouse keeper and the sea.",
        max_tokens=4096,
    )
    with Client.connect(bus, OBSERVE, wait_s=30) as client:
        replies: list[ObserveReply] = []
        asking = threading.Thread(
            target=lambda: replies.append(client.call(OBSERVE, question, 300)), daemon=True
        )
        asking.start()
        time.sleep(3.0)  # the deliberation is streaming by now
        os.kill(up.services()["inference"], signal.SIGKILL)  # the fault
        asking.join(300)
        assert replies, "the cycle never answered"
        degraded = replies[0].trace
        assert "inference" in degraded.missing and degraded.tier != "deliberation"
        up.expect("inference exited with code -9; restarting")
        deadline = time.monotonic() + 240
        while True:  # until the restarted inference is on the bus again
            again = client.call(
                OBSERVE, ObserveRequest(text="In one sentence, what is a lighthouse?"), 300
            )
            if "inference" not in again.trace.missing or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    assert again.trace.tier == "deliberation" and "inference" not in again.trace.missing
    assert up.stop() == 130


def test_services_get_two_malloc_arenas_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from emily.cli.up import service_env

    args = argparse.Namespace(node="n", endpoint="tcp/127.0.0.1:7447", log_level=None)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    env = service_env(args)
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["EMILY_BUS__CONNECT"] == '["tcp/127.0.0.1:7447"]'
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert service_env(args)["MALLOC_ARENA_MAX"] == "4"
