"""``emily memory ingest|recall|stats`` against the running service over real Zenoh."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from emily.bus import BusConfig
from emily.cli.main import main
from emily.memory.events import Retention
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
    assert main(["memory", "ingest", "-", "--json"]) == 0  # no --quiet, not a terminal
    out = capsys.readouterr()
    assert json.loads(out.out) == {"stored": 2, "queued": 0, "withheld": 0}
    assert out.err == ""  # no progress bar where stderr is not a terminal
    assert cli_env.service.memory.store.count() == 2


def test_export_round_trips_through_ingest_and_the_lifecycle_verbs(
    cli_env: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = [
        {"text": "My dog is called Rex", "user": "alice", "session": "s1"},
        {"text": "What is my dog called?", "user": "alice", "act": "question", "session": "s1"},
        {"text": "I live in Lisbon", "user": "alice", "timestamp": "2025-05-03T08:00:00Z"},
        {"text": "My cat is called Tom", "user": "bob"},
    ]
    f = tmp_path / "said.jsonl"
    f.write_text("".join(json.dumps(line) + "\n" for line in said))
    assert main(["memory", "ingest", str(f), "--quiet"]) == 0
    assert main(["memory", "consolidate"]) == 0
    out = tmp_path / "alice.jsonl"
    capsys.readouterr()
    assert main(["memory", "export", "--user", "alice", "--out", str(out)]) == 0
    assert "exported 3 episodes and 2 facts of alice" in capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    exported = [line for line in lines if "fact" not in line]
    assert sorted(e["text"] for e in exported) == sorted(s["text"] for s in said[:3])
    assert sorted(line["fact"]["value"] for line in lines if "fact" in line) == ["Lisbon", "Rex"]

    # forget everything of alice's, then restore the export: the same episodes come back
    assert main(["memory", "forget", "--match", "dog", "--user", "alice", "--dry-run"]) == 0
    assert "would forget 2 episodes" in capsys.readouterr().err
    ids = [e["id"] for e in exported]
    assert main(["memory", "forget", *ids, "--user", "alice"]) == 0
    assert "forgot 3 episodes and 2 facts" in capsys.readouterr().err
    assert main(["memory", "forget", ids[0], "--user", "alice"]) == 1  # gone already
    capsys.readouterr()
    # the forget's mark withholds what it named, unless the ingest restores on purpose
    assert main(["memory", "ingest", str(out), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stored": 0, "queued": 0, "withheld": 3}
    assert main(["memory", "ingest", str(out), "--quiet", "--restore"]) == 0
    captured = capsys.readouterr()
    assert "stored 3 episodes" in captured.out and "2 fact lines skipped" in captured.err
    again = tmp_path / "again.jsonl"
    assert main(["memory", "export", "--user", "alice", "--out", str(again), "--no-facts"]) == 0
    assert [json.loads(line) for line in again.read_text().splitlines()] == exported
    assert main(["memory", "consolidate"]) == 0
    capsys.readouterr()
    assert main(["memory", "facts", "--user", "alice", "--subject", "dog", "--json"]) == 0
    assert [x["value"] for x in json.loads(capsys.readouterr().out)["facts"]] == ["Rex"]

    rex = next(e["id"] for e in exported if e["text"] == "My dog is called Rex")
    assert main(["memory", "correct", rex, "My dog is called Max", "--user", "alice"]) == 0
    assert "dog name = Max" in capsys.readouterr().out
    assert main(["memory", "correct", rex, "not mine", "--user", "bob"]) == 1
    assert "has no episode" in capsys.readouterr().err

    assert main(["memory", "events", "--since", "0", "--json"]) == 0
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
    assert {"store", "fact", "forget", "correct"} <= {e["op"] for e in logged}
    assert main(["memory", "events", "--since", str(len(logged) - 1)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    log = cli_env.service.memory.events
    while log.relayed != len(logged):  # nothing unpublished is trimmed
        time.sleep(0.05)
    assert log.trim(Retention(keep_days=0, keep_max=2)) == len(logged) - 2
    assert main(["memory", "events", "--since", "0"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 2
    assert f"events up to {len(logged) - 2} were trimmed" in out.err
    assert main(["memory", "rebuild"]) == 0
    assert "the running projections matched" in capsys.readouterr().out
