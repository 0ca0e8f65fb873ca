"""The dashboards against a running stack: real Prometheus, the repo's scrape and rules.

Starts the laptop stack (``emily up``: memory with an embedded Postgres, inference with
the bundled Gemma 3 270M, cognition and perception, each on its own metrics port),
starts Debian's ``prometheus`` with the scrape configs of ``modules/monitoring/scrape.nix``
(rendered by ``nix-instantiate``) and the alert rules of ``modules/monitoring/rules``,
scraping every second, and drives traffic through the bus: reflex utterances,
statements and questions answered from memory, deliberations with the LLM, an image
of a note and a spoken sentence (espeak-ng) through perception.

It then evaluates every panel query of the service dashboards
(``modules/monitoring/dashboards/{memory,inference,cognition,neural,perception}.json``)
and prints how many series each returns, and with ``--plot`` renders each dashboard's
panels from Prometheus' ``query_range`` results into ``bench/out/dashboard-<name>.png``
(copied into ``docs/img`` for the docs). The same-run baseline is Prometheus' own
``up`` series: every panel is compared with the scrape that feeds it.

    .venv/bin/python bench/dashboards.py [--duration 120] [--plot]

``tests/host/test_prometheus_live.py`` uses these functions to check that every target
is up, that every panel query returns data and that every Emily alert expression names
series that exist and is silent on a healthy stack.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "modules" / "monitoring"
SERVICE_DASHBOARDS = ("memory", "inference", "cognition", "neural", "perception")
#: scrape.nix job name -> (service, environment variable of its metrics port)
JOBS = {
    "emily-memory": ("memory", "EMILY_MEMORY__METRICS_PORT"),
    "emily-inference": ("inference", "EMILY_INFERENCE__HTTP_PORT"),
    "emily-cognition": ("cognition", "EMILY_COGNITION__HTTP_PORT"),
    "emily-perception": ("perception", "EMILY_PERCEPTION__METRICS_PORT"),
}
#: metric-name prefixes of the services themselves (not the host's exporters and scripts)
SERVICE_PREFIXES = tuple(f"emily_{s}_" for s in SERVICE_DASHBOARDS)
_NAME = re.compile(r"\b(emily_[a-z0-9_]+|up|process_[a-z_]+)\b")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Stack:
    """A running ``emily up``: its bus endpoint and the metrics port of each job."""

    endpoint: str
    ports: dict[str, int]
    proc: subprocess.Popen[bytes]


def _get(url: str, timeout_s: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return bytes(resp.read())


def _wait_http(url: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _get(url, timeout_s=2.0)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {wait_s:g} s") from None
            time.sleep(0.5)


@contextmanager
def stack(state: Path, wait_s: float = 600.0) -> Iterator[Stack]:
    """``emily up`` on a fresh state dir with every service's metrics on a free port."""
    ports = {job: free_port() for job in JOBS}
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    env = dict(os.environ, EMILY_STATE_DIR=str(state), HF_HUB_OFFLINE="1")
    for job, (_service, var) in JOBS.items():
        env[var] = str(ports[job])
    log = (state.parent / "up.log").open("wb")
    cmd = [sys.executable, "-m", "emily", "up", "--endpoint", endpoint]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for job in JOBS:
            _wait_http(f"http://127.0.0.1:{ports[job]}/metrics", wait_s)
        yield Stack(endpoint, ports, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def scrape_configs(ports: dict[str, int]) -> list[dict[str, Any]]:
    """The host's scrape configs (scrape.nix), with the Emily jobs on ``ports``."""
    targets = " ".join(f"{job} = {port};" for job, port in ports.items())
    expr = (
        "import ./modules/monitoring/scrape.nix { ports = { prometheus = 9090; "
        "alertmanager = 9093; node = 9100; zfs = 9134; postgres = 9187; blackbox = 9115; "
        "nvidia-gpu = 9835; }; httpProbes = [ ]; icmpProbes = [ ]; emilyTargets = { "
        f"{targets} }}; gpu = false; }}"
    )
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    configs: list[dict[str, Any]] = json.loads(out.stdout)
    return configs


@contextmanager
def prometheus(root: Path, configs: list[dict[str, Any]]) -> Iterator[str]:
    """Debian's ``prometheus`` scraping ``configs`` every second with the repo's rule
    files; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed: run `make setup`")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))],
        "scrape_configs": configs,
    }
    (root / "prometheus.yml").write_text(json.dumps(config, indent=2))
    log = (root / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/-/ready", 60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector (or scalar as one sample) of ``expr`` now."""
    body = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    data = json.loads(body)["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    result: list[dict[str, Any]] = data["result"]
    return result


def query_range(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    """``expr`` from ``start`` to ``end`` (unix seconds), one point per second."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"}
    body = _get(f"{url}/api/v1/query_range?" + urllib.parse.urlencode(params))
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


def targets(url: str) -> dict[str, str]:
    """Job name -> health (``up``/``down``/``unknown``) of every active target."""
    got = json.loads(_get(f"{url}/api/v1/targets"))["data"]["activeTargets"]
    return {t["labels"]["job"]: t["health"] for t in got}


def panels(name: str) -> list[tuple[str, list[str]]]:
    """(title, queries) of every panel of dashboard ``name`` that has queries."""
    data = json.loads((MONITORING / "dashboards" / f"{name}.json").read_text())
    out = []
    for p in data["panels"]:
        exprs = [t["expr"] for t in p.get("targets", []) if t.get("expr")]
        if exprs:
            out.append((str(p.get("title", "")), exprs))
    return out


def alert_rules() -> list[tuple[str, str]]:
    """(alert, expression) of every rule in the repo's rule files."""
    import yaml

    rules = []
    for path in sorted((MONITORING / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules.append((str(rule["alert"]), str(rule["expr"])))
    return rules


def metric_names(expr: str) -> set[str]:
    """The Emily, ``up`` and ``process_*`` metric names an expression reads."""
    return set(_NAME.findall(expr))


def _speech(text: str) -> bytes:
    """``text`` spoken by espeak-ng as WAV bytes."""
    out = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True)
    with wave.open(io.BytesIO(out.stdout)) as w:
        if w.getnframes() == 0:
            raise RuntimeError("espeak-ng produced no audio")
    return out.stdout


def _note(text: str) -> bytes:
    """A PNG of ``text`` in black on white, large enough for Tesseract."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (900, 120), "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 30), text, fill="black", font=ImageFont.load_default(size=40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def traffic(endpoint: str, rounds: int = 3, llm: int = 2) -> dict[str, int]:
    """Drive every path once or more through the bus; returns how many of each ran."""
    import base64

    from emily.bus import BusConfig
    from emily.bus.client import Client
    from emily.bus.endpoints import OBSERVE, RECALL, STATS
    from emily.bus.schemas.cognition import ObserveRequest
    from emily.bus.schemas.memory import RecallRequest, StatsRequest

    bus = BusConfig(listen=(), connect=(endpoint,))
    client = Client.connect(bus, OBSERVE, RECALL, STATS, wait_s=120)
    done = {"reflex": 0, "memory": 0, "llm": 0, "image": 0, "audio": 0, "recall": 0}
    try:
        for i in range(rounds):
            for text in ("hello", "thanks", "stop"):
                client.call(OBSERVE, ObserveRequest(text=text, allow_llm=False), timeout_s=60)
                done["reflex"] += 1
            for text in (f"My bicycle is painted green number {i}.", "What colour is my bicycle?"):
                client.call(OBSERVE, ObserveRequest(text=text, allow_llm=False), timeout_s=60)
                done["memory"] += 1
            client.call(RECALL, RecallRequest(text="bicycle", k=3), timeout_s=30)
            client.call(STATS, StatsRequest(), timeout_s=30)
            done["recall"] += 1
        for _ in range(llm):
            req = ObserveRequest(text="Write one sentence about the sea.", max_tokens=16)
            client.call(OBSERVE, req, timeout_s=300)
            done["llm"] += 1
        image = base64.b64encode(_note("Buy oat milk on Friday")).decode()
        client.call(OBSERVE, ObserveRequest(image=image, allow_llm=False), timeout_s=300)
        done["image"] += 1
        if shutil.which("espeak-ng"):
            audio = base64.b64encode(_speech("The meeting moved to Thursday.")).decode()
            client.call(OBSERVE, ObserveRequest(audio=audio, allow_llm=False), timeout_s=300)
            done["audio"] += 1
    finally:
        client.close()
    return done


def render(url: str, name: str, start: float, end: float, out: Path) -> Path:
    """Dashboard ``name``'s panels as small line charts from ``query_range``, one PNG."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import pyplot

    plt = pyplot()
    found = panels(name)
    cols = 3
    rows = (len(found) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (title, exprs) in zip(axes.flat, found, strict=False):
        for expr in exprs:
            for series in query_range(url, expr, start, end):
                ts = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                label = ",".join(f"{v}" for v in series["metric"].values())[:30]
                ax.plot(ts, ys, linewidth=1, label=label or None)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left")
    for ax in list(axes.flat)[len(found) :]:
        ax.axis("off")
    fig.suptitle(f"{name} dashboard, from Prometheus scraping a running stack (s)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="traffic for (s)")
    parser.add_argument("--plot", action="store_true", help="render each dashboard to a PNG")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dashboards-"))
    with (
        stack(root / "state") as st,
        prometheus(root / "prometheus", scrape_configs(st.ports)) as url,
    ):
        start = time.time()
        ran: dict[str, int] = {}
        while time.time() - start < args.duration:
            for k, v in traffic(st.endpoint).items():
                ran[k] = ran.get(k, 0) + v
        time.sleep(3)
        end = time.time()
        print(f"traffic: {ran}")
        health = targets(url)
        up = {j: h for j, h in health.items() if j in JOBS}
        print(f"targets: {up} (baseline: up == 1 for {sum(h == 'up' for h in up.values())}/4)")
        for name in SERVICE_DASHBOARDS:
            print(f"\n{name}")
            for title, exprs in panels(name):
                counts = [len(query(url, e)) for e in exprs]
                print(f"  {title:40s} series {counts}")
            if args.plot:
                png = render(
                    url, name, start, end, REPO / "bench" / "out" / f"dashboard-{name}.png"
                )
                print(f"  wrote {png.relative_to(REPO)}")


if __name__ == "__main__":
    main()
