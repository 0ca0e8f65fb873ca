from __future__ import annotations

import logging

import pytest

from emily.observe import setup_logging


def test_level_from_argument_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging("debug")
    assert logging.getLogger().level == logging.DEBUG
    monkeypatch.setenv("EMILY_LOG_LEVEL", "ERROR")
    setup_logging()
    assert logging.getLogger().level == logging.ERROR


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("loud")
