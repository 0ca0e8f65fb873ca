"""Emptying a SQLite write-ahead log, so that deleted rows' text does not stay in it.

The services' outboxes hold what the user said only until it is stored, and delete it
with ``secure_delete`` (the database file overwrites the freed bytes). Their WAL file
still holds older frames with the deleted rows, so once a delete matters (a delivery
that empties the queue, a forget) the WAL is merged into the database and truncated.
"""

from __future__ import annotations

import logging
import sqlite3

log = logging.getLogger(__name__)


def truncate_wal(db: sqlite3.Connection, what: str) -> bool:
    """Checkpoint ``db``'s WAL into its database file and truncate the WAL to nothing;
    returns whether it did. While another connection reads the WAL (busy), or on an
    error, the WAL is left as it is, with a warning naming ``what``, for the caller's
    next attempt."""
    try:
        row = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("%s: WAL not emptied: %s", what, exc)
        return False
    if row is not None and row[0]:
        log.debug("%s: WAL not emptied: another connection reads it", what)
        return False
    return True
