from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from emily.config import config_path, load_section, read_toml, state_dir
from emily.errors import ConfigError


@dataclass(frozen=True)
class Sample:
    name: str = "x"
    port: int = 1
    ratio: float = 0.5
    on: bool = False
    mode: Literal["a", "b"] = "a"
    items: tuple[str, ...] = ()
    where: Path | None = None


def test_defaults_without_file_or_env() -> None:
    assert load_section(Sample, "s", data={}, environ={}) == Sample()


def test_toml_then_env_override() -> None:
    data = {"s": {"port": 7, "items": ["p", "q"], "mode": "b"}}
    env = {"EMILY_S__PORT": "9", "EMILY_S__ON": "yes", "EMILY_S__WHERE": "~/m.gguf"}
    got = load_section(Sample, "s", data=data, environ=env)
    assert got.port == 9 and got.on is True and got.mode == "b"
    assert got.items == ("p", "q")
    assert got.where == Path("~/m.gguf").expanduser()


def test_env_list_forms() -> None:
    assert load_section(Sample, "s", data={}, environ={"EMILY_S__ITEMS": "a,b"}).items == ("a", "b")
    assert load_section(Sample, "s", data={}, environ={"EMILY_S__ITEMS": '["c"]'}).items == ("c",)
    assert load_section(Sample, "s", data={}, environ={"EMILY_S__WHERE": "none"}).where is None


@pytest.mark.parametrize(
    ("data", "env", "needle"),
    [
        ({"s": {"prot": 1}}, {}, "unknown keys ['prot']"),
        ({}, {"EMILY_S__NOPE": "1"}, "has no setting 'nope'"),
        ({"s": {"port": "many"}}, {}, "s.port: expected int"),
        ({"s": {"mode": "c"}}, {}, "is not one of"),
        ({"s": {"on": "perhaps"}}, {}, "expected true/false"),
        ({"s": {"items": 3}}, {}, "expected a list"),
    ],
)
def test_bad_config_names_the_problem(data: dict, env: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_section(Sample, "s", data=data, environ=env)


def test_not_a_dataclass() -> None:
    with pytest.raises(TypeError):
        load_section(dict, "s", data={}, environ={})


def test_state_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EMILY_STATE_DIR")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/emily-memory:/other")
    assert state_dir() == Path("/var/lib/emily-memory")
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "emily"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert state_dir() == Path.home() / ".local" / "share" / "emily"


def test_config_file_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert config_path() is None and read_toml() == {}
    default = Path.home() / ".config" / "emily" / "emily.toml"
    default.parent.mkdir(parents=True)
    default.write_text('[bus]\nnode = "n1"\n')
    assert config_path() == default
    assert read_toml() == {"bus": {"node": "n1"}}
    explicit = tmp_path / "other.toml"
    explicit.write_text("not = [valid")
    monkeypatch.setenv("EMILY_CONFIG", str(explicit))
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_toml()
    monkeypatch.setenv("EMILY_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        config_path()


def test_config_file_honours_xdg_config_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home_file = Path.home() / ".config" / "emily" / "emily.toml"
    home_file.parent.mkdir(parents=True)
    home_file.write_text('[bus]\nnode = "home"\n')
    xdg = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert config_path() is None  # the XDG directory wins, and it has no file yet
    (xdg / "emily").mkdir(parents=True)
    (xdg / "emily" / "emily.toml").write_text('[bus]\nnode = "xdg"\n')
    assert config_path() == xdg / "emily" / "emily.toml"
    assert read_toml() == {"bus": {"node": "xdg"}}
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    assert config_path() == home_file
    monkeypatch.setenv("EMILY_CONFIG", str(home_file))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert config_path() == home_file
