"""Encoding episodes as one PostgreSQL binary COPY stream, without per-field dumpers.

psycopg's ``write_row`` looks up a dumper per field and row; at 384-d rows that costs
more than the server's work. Here the fixed-size fields of a whole batch (ids, times,
embeddings, affect) are encoded with NumPy at once, and each row is joined from
pre-encoded parts. The column order is :data:`emily.memory.store.COLUMNS`.

Binary COPY layout: signature, flags, header extension; per row an int16 field count,
then per field an int32 length and the value in the type's binary send format; an
int16 -1 trailer.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from emily.bus.schemas.memory import EMBED_DIM
from emily.memory.record import Record

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_MICRO = timedelta(microseconds=1)
_FIELDS = struct.pack(">h", 9)
_LEN = struct.Struct(">i")
# uuid (16 bytes) and timestamptz (int64 microseconds since 2000-01-01)
_ID_TS = struct.Struct(">i16si q")
_VEC = struct.pack(">i", 4 + 4 * EMBED_DIM) + struct.pack(">HH", EMBED_DIM, 0)
_AFFECT = struct.Struct(">if if if")
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _text(value: str) -> bytes:
    raw = value.encode()
    return _LEN.pack(len(raw)) + raw


def encode_rows(records: Sequence[Record]) -> bytes:
    """The rows of ``records`` (no header or trailer) as binary COPY data."""
    vectors = np.ascontiguousarray(np.stack([r.embedding for r in records]), dtype=">f4")
    parts: list[bytes] = []
    for rec, vec in zip(records, vectors, strict=True):
        micros = (rec.ts - _PG_EPOCH) // _ONE_MICRO
        ctx = b"\x01" + _json(rec.context).encode()
        parts += (
            _FIELDS,
            _ID_TS.pack(16, rec.id.bytes, 8, micros),
            _text(rec.text),
            _VEC,
            vec.tobytes(),
            _AFFECT.pack(4, rec.valence, 4, rec.arousal, 4, rec.dominance),
            _LEN.pack(len(ctx)),
            ctx,
            _text(rec.source),
        )
    return b"".join(parts)


def encode(records: Sequence[Record]) -> bytes:
    """A complete binary COPY stream of ``records`` (header, rows, trailer)."""
    return HEADER + encode_rows(records) + TRAILER
