"""``emily serve inference`` as a real process: start-up, health, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port


@pytest.mark.slow
def test_serve_inference_process_starts_answers_and_stops(
    llm_model_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    token = tmp_path / "token"
    token.write_text("t0ken")
    env = os.environ | {
        "EMILY_INFERENCE__MODEL_PATH": str(llm_model_path),
        "EMILY_INFERENCE__HTTP_PORT": str(port),
        "EMILY_INFERENCE__N_THREADS": "1",
        "EMILY_INFERENCE__N_CTX": "512",
        "EMILY_INFERENCE__API_KEY_FILE": str(token),
        "EMILY_BUS__LISTEN": f"tcp/127.0.0.1:{free_port()}",
        "EMILY_BUS__CONNECT": "[]",
        "EMILY_BUS__NODE": "proc",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emily", "serve", "inference"],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 120
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        assert health is not None, "service did not come up"
        assert health["backend"] == "cpu" and health["model"] == "gemma-3-270m-q4_k_m"
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer t0ken"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["data"][0]["id"] == "gemma-3-270m-q4_k_m"
        # a long generation in flight must not hold up the shutdown
        long = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=b'{"prompt": "Go", "max_tokens": 400, "ignore_eos": true, "stream": true}',
            headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"},
        )
        stream = urllib.request.urlopen(long, timeout=60)
        assert stream.readline().startswith(b"data: ")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        rest = stream.read().decode()
        stream.close()
        assert '"finish_reason": "stop"' in rest and "data: [DONE]" in rest  # cancelled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "inference backend: cpu" in err and "shutting down" in err


@pytest.mark.slow
def test_the_model_selected_with_model_use_is_loaded(llm_model_path: Path) -> None:
    from emily.bus import BusConfig
    from emily.inference.config import InferenceConfig
    from emily.inference.models import select
    from emily.inference.service import InferenceService
    from emily.inference.store import models_dir

    (models_dir() / "mine.gguf").symlink_to(llm_model_path)
    select("mine")
    bus = BusConfig(node="sel", listen=(f"tcp/127.0.0.1:{free_port()}",), connect=())
    service = InferenceService(InferenceConfig(n_ctx=256, n_threads=1, http_port=0), bus)
    try:
        assert service.engine.path == models_dir() / "mine.gguf"
        assert service.engine.name == "mine"
    finally:
        service.close()
