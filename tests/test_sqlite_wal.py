"""Emptying an outbox's write-ahead log: a deleted row's text leaves the WAL file, and a
reader holding the WAL leaves it for the next attempt."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from emily.sqlite_wal import truncate_wal


def wal_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA secure_delete=ON")
    db.execute("CREATE TABLE t (x TEXT)")
    return db


def test_a_deleted_row_s_text_leaves_the_wal(tmp_path: Path) -> None:
    db = wal_db(tmp_path / "q.sqlite")
    db.execute("INSERT INTO t VALUES ('Quillfennet')")
    db.execute("DELETE FROM t")
    wal = tmp_path / "q.sqlite-wal"
    assert b"Quillfennet" in wal.read_bytes()  # the WAL still holds the deleted row
    assert truncate_wal(db, "test")
    assert wal.stat().st_size == 0
    assert not any(b"Quillfennet" in p.read_bytes() for p in tmp_path.iterdir())
    db.close()


def test_a_reader_holding_the_wal_leaves_it_for_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = wal_db(tmp_path / "q.sqlite")
    db.execute("INSERT INTO t VALUES ('one')")
    reader = sqlite3.connect(tmp_path / "q.sqlite", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a read snapshot pins the WAL
    db.execute("INSERT INTO t VALUES ('two')")
    assert not truncate_wal(db, "test")
    reader.execute("COMMIT")
    assert truncate_wal(db, "test")
    reader.close()
    db.execute("DROP TABLE t")
    with caplog.at_level(logging.WARNING):
        db.close()
        assert not truncate_wal(db, "closed outbox")  # an error: logged, not raised
    assert "closed outbox: WAL not emptied" in caplog.text
