"""``emily memory ingest|recall|stats`` against the running service over real Zenoh."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from emily.bus import BusConfig
from emily.cli.main import main
from tests.memory.conftest import Running

pytestmark = pytest.mark.slow


@pytest.fixture
def cli_env(
    running: Running, bus_configs: tuple[BusConfig, BusConfig], monkeypatch: pytest.MonkeyPatch
) -> Running:
    monkeypatch.setenv("EMILY_BUS__NODE", "test")
    monkeypatch.setenv("EMILY_BUS__CONNECT", bus_configs[0].listen[0])
    return running


def test_ingest_recall_stats(
    cli_env: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"text": "Bought fresh bread at the bakery", "timestamp": "2025-05-01T08:00:00Z"},
        {"text": "The bike tyre was flat again", "timestamp": "2025-05-02T08:00:00Z"},
        {
            "text": "Called grandma for her birthday",
            "timestamp": "2025-05-03T08:00:00Z",
            "source": "phone",
        },
    ]
    f = tmp_path / "eps.jsonl"
    f.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert main(["memory", "ingest", str(f), "--quiet", "--batch", "2"]) == 0
    assert "stored 3 episodes" in capsys.readouterr().out
    assert main(["memory", "recall", "bicycle puncture", "-k", "1"]) == 0
    assert "bike tyre" in capsys.readouterr().out
    assert main(["memory", "recall", "bread", "-k", "3", "--since", "2025-05-02"]) == 0
    out = capsys.readouterr().out
    assert "bakery" not in out and len(out.strip().splitlines()) == 2
    assert main(["memory", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3


def test_bad_lines_are_all_reported_and_nothing_is_stored(
    cli_env: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "fine"}\n{"text": ""}\nnot json\n{"text": "x", "mood": 1}\n')
    assert main(["memory", "ingest", str(f), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "3 bad lines" in err and "bad.jsonl:2" in err and "bad.jsonl:4" in err
    assert cli_env.service.memory.store.count() == 0
    assert main(["memory", "recall", "x", "--since", "yesterday"]) == 1
    assert "since" in capsys.readouterr().err


def test_injected_interrupted_ingest_rerun_stores_nothing_twice(
    cli_env: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fault: an ingest of a JSONL without ids stopped after its first two lines (the
    file as far as it got), then the whole file ingested, twice."""
    lines = [
        {"text": "Watered the tomatoes", "timestamp": "2025-06-01T08:00:00Z"},
        {"text": "Watered the tomatoes", "timestamp": "2025-06-01T08:00:00Z"},  # a repeat
        {"text": "The neighbour's dog barked all night"},
        {"text": "Found a coin on the pavement", "timestamp": "2025-06-03T08:00:00Z"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    part, whole = tmp_path / "part.jsonl", tmp_path / "eps.jsonl"
    part.write_text("".join(text.splitlines(keepends=True)[:2]))
    whole.write_text(text)
    for f in (part, whole, whole):
        assert main(["memory", "ingest", str(f), "--quiet", "--batch", "2"]) == 0
    assert "stored 4 episodes" in capsys.readouterr().out
    store = cli_env.service.memory.store
    assert store.count() == 4  # the repeated line at another position is its own episode
    ids = sorted(store.all_ids())
    assert all(i.version == 8 for i in ids)
    dated = sorted((r.ts, r.id) for r in store.fetch(ids).values() if r.ts.year == 2025)
    assert [i for _, i in dated] == sorted(i for _, i in dated)  # ids keep time order


def test_ingest_reads_standard_input_for_a_dash(
    cli_env: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [{"text": "Planted basil on the balcony"}, {"text": "The kettle is descaled"}]
    piped = io.StringIO("\n".join(json.dumps(line) for line in lines) + "\n")
    monkeypatch.setattr("sys.stdin", piped)
    assert main(["memory", "ingest", "-", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stored": 2, "queued": 0}
    assert cli_env.service.memory.store.count() == 2
