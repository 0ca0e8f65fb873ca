"""``embedded_model`` takes ``$EMILY_EMBEDDED_MODEL`` (the Nix path) before its package."""

from __future__ import annotations

from pathlib import Path

import pytest

from emily.cli.main import main
from emily.inference.errors import ModelLoadError
from emily.inference.store import MODEL_ENV, embedded_model


def test_the_env_var_names_the_model_file(
    llm_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A set variable is used as is: nothing is assembled into the models directory."""
    monkeypatch.setenv(MODEL_ENV, str(llm_model_path))
    assert embedded_model(tmp_path) == llm_model_path
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_a_bad_env_var_says_what_to_do(
    content: bytes | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    monkeypatch.setenv(MODEL_ENV, str(model))
    with pytest.raises(ModelLoadError, match=f"{MODEL_ENV}=.*(GGUF|cannot be read)"):
        embedded_model(tmp_path / "models")


def test_model_list_shows_the_env_model(
    llm_model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(MODEL_ENV, str(llm_model_path))
    assert main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert llm_model_path.stem in listing and f"embedded (${MODEL_ENV})" in listing
