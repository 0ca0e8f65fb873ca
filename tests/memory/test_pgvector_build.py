"""The portable-pgvector build plan: its data file validated, its source adjustments
applied only where they belong, and the wheel's pgvector probed on a real scratch
server (after `make setup`, it runs on this CPU whichever build it is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emily.memory.pgvector_build import Edit, apply_edits, load_plan, main, server_major


def test_the_shipped_plan_is_valid_and_adjusts_for_postgres_18() -> None:
    plan = load_plan()
    assert plan.package == "pgvector" and plan.mirror.startswith("http")
    assert Path(plan.keyring).is_absolute()
    assert {e.since for e in plan.edits} == {18}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "source"),
        ('[source]\npackage = "pgvector"\n', "mirror"),
        ('[source]\npackage = ""\nmirror = "m"\nsuite = "s"\nkeyring = "k"\n', "empty"),
        (
            '[source]\npackage = "p"\nmirror = "m"\nsuite = "s"\nkeyring = "k"\n'
            '[[edit]]\nfiles = ["a.c"]\npattern = "("\nreplacement = ""\nsince = 18\n',
            "bad pattern",
        ),
        (
            '[source]\npackage = "p"\nmirror = "m"\nsuite = "s"\nkeyring = "k"\n'
            '[[edit]]\nfiles = []\npattern = "x"\nreplacement = ""\nsince = 18\n',
            "no files",
        ),
    ],
)
def test_a_malformed_plan_is_refused_naming_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        load_plan(text)


def test_the_edits_apply_only_to_servers_they_are_for_and_only_where_they_match(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ivfbuild.c").write_text("x = buildstate->tupdesc->attrs[0].atttypid;\n")
    (src / "hnswvacuum.c").write_text("vacuum_delay_point();\nvacuum_delay_point(false);\n")
    edits = load_plan().edits
    assert apply_edits(tmp_path, edits, server_major=17) == []
    assert sorted(apply_edits(tmp_path, edits, server_major=18)) == [
        "src/hnswvacuum.c",
        "src/ivfbuild.c",
    ]
    assert (src / "ivfbuild.c").read_text() == (
        "x = TupleDescAttr(buildstate->tupdesc, 0)->atttypid;\n"
    )
    assert (src / "hnswvacuum.c").read_text() == (
        "vacuum_delay_point(false);\nvacuum_delay_point(false);\n"
    )
    assert apply_edits(tmp_path, edits, server_major=18) == []  # already adjusted
    missing = (Edit(files=("src/none.c",), pattern="x", replacement="y", since=1),)
    assert apply_edits(tmp_path, missing, server_major=18) == []


def test_the_wheels_server_major_version_is_read_from_its_pg_config() -> None:
    pytest.importorskip("pgserver", reason="the wheel is not installed under Nix")
    from emily.memory.pgvector_build import wheel_pginstall

    assert server_major(wheel_pginstall() / "bin" / "pg_config") >= 16


def test_the_check_finds_the_installed_pgvector_runs_here(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pgserver", reason="the wheel is not installed under Nix")
    assert main(["--check"]) == 0
    assert "runs on this CPU" in capsys.readouterr().out
