"""Perception fixtures: the real tiny.en model and Tesseract, loaded once per session,
and the service on the session's real Zenoh pair."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import zenoh

from emily.bus import Keys
from emily.bus.endpoints import served_by
from emily.bus.rpc import wait_for_server
from emily.perception.config import PerceptionConfig
from emily.perception.ocr import Reader
from emily.perception.service import PerceptionService
from emily.perception.speech import Transcriber

KEYS = Keys("test")


def laptop_config() -> PerceptionConfig:
    """``[perception]`` as configured (the Nix test environment points ``model_dir`` at
    the model from nixpkgs), on two CTranslate2 threads."""
    return replace(PerceptionConfig.load(), cpu_threads=2)


@pytest.fixture(scope="session")
def transcriber() -> Transcriber:
    """The packaged Whisper tiny.en on the CPU (int8, greedy)."""
    return Transcriber(laptop_config())


@pytest.fixture(scope="session")
def reader() -> Reader:
    """Tesseract with its English model."""
    return Reader(laptop_config())


@pytest.fixture(scope="session")
def perception(zenoh_pair: tuple[zenoh.Session, zenoh.Session]) -> Iterator[PerceptionService]:
    """The perception service on the server side of the pair, both endpoints answering."""
    server_side, client_side = zenoh_pair
    service = PerceptionService(laptop_config(), server_side, KEYS)
    for endpoint in served_by("perception"):
        assert wait_for_server(client_side, endpoint.key(KEYS), timeout_s=10)
    yield service
    service.close()
