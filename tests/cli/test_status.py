"""``emily status`` reports what is really installed on this machine."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from emily.bus import BusConfig
from emily.cli import status
from emily.cli.main import main
from tests.fixtures.llm import RunningInference


def test_report_matches_installed_distributions() -> None:
    data = status.report()
    rows = {p["name"]: p["version"] for p in data["python_parts"]}
    assert rows["torch"] == importlib.metadata.version("torch")
    assert rows["eclipse-zenoh"] == importlib.metadata.version("eclipse-zenoh")
    for name, ver in rows.items():
        try:
            assert ver == importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            assert ver is None


def test_programs_follow_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = {p.name: p for p in status.programs()}
    # make test installs prometheus (promtool) and prometheus-alertmanager (amtool)
    assert real["promtool"].version == "found" and real["amtool"].version == "found"
    assert real["promtool"].detail == shutil.which("promtool")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert all(p.version is None for p in status.programs())


def test_backends_are_named() -> None:
    import torch

    expected = "cpu" if not torch.cuda.is_available() else "cuda: "
    assert status.torch_device().startswith(expected)
    backend = status.llama_backend()
    assert backend.startswith(("CPU only", "GPU offload supported"))


def test_gpu_line_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("nvidia-smi"):
        assert status.nvidia_gpu()
    else:
        assert status.nvidia_gpu().startswith("no NVIDIA driver")


def test_injected_nvidia_smi_failure_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "nvidia-smi"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert status.nvidia_gpu().startswith("nvidia-smi failed")


def test_text_and_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--expect", ""]) == 0
    text = capsys.readouterr().out
    assert "Python parts:" in text and "llama.cpp:" in text and "torch" in text
    assert main(["status", "--json", "--expect", ""]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state_dir"].endswith("state")


def test_expected_services_that_are_down_fail_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMILY_BUS__NODE", "nobody-here")
    assert main(["status", "--expect", "memory,cognition"]) == 1
    assert "services down:  cognition, memory" in capsys.readouterr().out
    assert main(["status", "--json", "--expect", "memory"]) == 1
    assert json.loads(capsys.readouterr().out)["services"]["down"] == ["memory"]


def test_missing_parts_are_marked() -> None:
    data = status.report()
    data["python_parts"][0]["version"] = None
    data["programs"][0]["detail"] = ""
    text = status.render(data)
    assert "NOT INSTALLED" in text and "NOT FOUND" in text


def test_no_services_on_the_bus(bus_configs: tuple[BusConfig, BusConfig]) -> None:
    lonely = BusConfig(node="nobody-here", connect=bus_configs[1].connect)
    svc = status.services(lonely, timeout_s=0.3)
    assert svc == {"alive": [], "down": [], "inference": None, "error": None}
    text = status.render({**status.report(lonely), "services": svc})
    assert "services up:    none (start them with `emily up`)" in text


@pytest.mark.slow
def test_live_inference_backend_is_reported(inference_service: RunningInference) -> None:
    """The backend the running service really loaded, not what the build could do."""
    import llama_cpp

    svc = status.services(inference_service.bus, timeout_s=5.0, expected=["inference"])
    assert "inference" in svc["alive"] and svc["down"] == []
    info = svc["inference"]
    expected = "cuda" if info["n_gpu_layers"] and llama_cpp.llama_supports_gpu_offload() else "cpu"
    assert info["backend"] == expected
    assert info["model_path"].endswith(".gguf")
    text = status.render({**status.report(inference_service.bus), "services": svc})
    assert f"inference:      {expected}" in text


def test_unreachable_bus_is_reported() -> None:
    with socket.socket() as taken:  # a port already in use: the session cannot listen
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broken = BusConfig(listen=(f"tcp/127.0.0.1:{taken.getsockname()[1]}",))
        svc = status.services(broken)
    assert svc["alive"] == [] and "cannot open a Zenoh peer session" in svc["error"]
    text = status.render({**status.report(broken), "services": svc})
    assert "bus unavailable" in text
