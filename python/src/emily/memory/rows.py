"""The ``episodes`` table's columns, and a :class:`Record` as a row of them and back.

Every ``INSERT`` and ``SELECT`` of whole episodes names :data:`COLUMNS` in this order,
so a row stored from :func:`to_row` reads back as the same record with
:func:`to_record`. Binary ``COPY`` has its own column order
(:data:`emily.memory.pgcopy.COLUMNS`, fixed-size fields first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from emily.memory.record import Record, Vector

COLUMNS = (
    *("id", "ts", "text", "embedding", "valence", "arousal", "dominance", "context", "source"),
    *("user_name", "agent_name", "role", "act", "session", "reply_to", "repeats", "last_seen"),
)
#: Postgres type of each of :data:`COLUMNS` (what psycopg's ``COPY.set_types`` takes)
TYPES = (
    *("uuid", "timestamptz", "text", "vector", "float4", "float4", "float4", "jsonb", "text"),
    *("text", "text", "text", "text", "text", "uuid", "int4", "timestamptz"),
)


def column_list(n: int = len(COLUMNS)) -> sql.Composed:
    """The first ``n`` of :data:`COLUMNS` as a quoted SQL list (``"id", "ts", ...``)."""
    return sql.SQL(", ").join(map(sql.Identifier, COLUMNS[:n]))


def to_row(rec: Record) -> tuple[Any, ...]:
    """``rec`` as the parameters of one row of :data:`COLUMNS` (17 values)."""
    return (
        rec.id,
        rec.ts,
        rec.text,
        rec.embedding,
        # as float32, as COPY sends them: the columns are real, and a float64 that
        # underflows float32 is 0 there, not an error
        *(float(v) for v in np.array([rec.valence, rec.arousal, rec.dominance], np.float32)),
        Jsonb(rec.context),
        rec.source,
        rec.user,
        rec.agent,
        rec.role,
        rec.act,
        rec.session,
        rec.reply_to,
        rec.repeats,
        rec.last_seen,
    )


def as_vector(value: Any) -> Vector:
    """pgvector's ``Vector`` (or an array) as float32 ``(384,)``."""
    raw = value.to_numpy() if hasattr(value, "to_numpy") else value
    return np.asarray(raw, dtype=np.float32)


def to_record(row: Sequence[Any]) -> Record:
    """The :class:`Record` of a row that starts with :data:`COLUMNS` (extra values after
    them, such as a distance, are ignored)."""
    return Record(
        id=row[0],
        ts=row[1],
        text=row[2],
        embedding=as_vector(row[3]),
        valence=float(row[4]),
        arousal=float(row[5]),
        dominance=float(row[6]),
        context=row[7],
        source=row[8],
        user=row[9],
        agent=row[10],
        role=row[11],
        act=row[12],
        session=row[13],
        reply_to=row[14],
        repeats=int(row[15]),
        last_seen=row[16],
    )
