"""Shared parts of the memory benchmarks: structured synthetic embeddings, a Postgres.

Real sentence embeddings are clustered (topics, sub-topics), and on uniform random
384-d vectors no ANN index reaches good recall, so the benchmarks draw vectors from a
two-level mixture: ``topics`` centres on the unit sphere, ``sub`` sub-topic centres
around each, and points around those. Queries are fresh draws from the same mixture.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import psycopg
from common import OUT
from psycopg import sql

from emily.memory.embedded import EmbeddedPostgres
from emily.memory.record import Record

DIM = 384
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Mixture:
    """A two-level Gaussian mixture on the unit sphere in 384-d."""

    topics: int = 100
    sub: int = 20
    sub_spread: float = 0.5
    point_spread: float = 0.8
    seed: int = 0

    def centres(self) -> npt.NDArray[np.float32]:
        """Sub-topic centres, shape ``(topics * sub, 384)``."""
        rng = np.random.default_rng(self.seed)
        top = _unit(rng.standard_normal((self.topics, DIM)))
        subs = top[:, None, :] + self.sub_spread * _unit(
            rng.standard_normal((self.topics, self.sub, DIM))
        )
        return _unit(subs.reshape(-1, DIM)).astype(np.float32)

    def draw(self, n: int, seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``n`` unit vectors ``(n, 384)`` and the sub-topic index of each."""
        centres = self.centres()
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, len(centres), n)
        noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
        return _unit(centres[labels] + self.point_spread * noise), labels


def _unit(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_records(vecs: npt.NDArray[np.float32], seed: int = 0) -> list[Record]:
    """Records over ``vecs``: one per minute from 2024-01-01, ``source`` = ``s<i % 100>``,
    ``context = {"bucket": i % 10}``, affect cycling."""
    rng = np.random.default_rng(seed)
    ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(len(vecs))]
    return [
        Record(
            id=ids[i],
            ts=T0 + timedelta(minutes=i),
            text=f"synthetic episode {i}",
            embedding=vecs[i],
            valence=float((i % 21) - 10) / 10,
            arousal=float(i % 11) / 10,
            context={"bucket": i % 10},
            source=f"s{i % 100}",
        )
        for i in range(len(vecs))
    ]


# Server settings of the benchmark Postgres: shared buffers large enough for the HNSW
# index of the largest run (memory_retrieval.py prints its size; pgserver's default,
# 128 MB, is too small for 100k rows), and no JIT, whose compile time short k-NN queries
# never win back.
SETTINGS = {"shared_buffers": "1GB", "jit": "off"}


def embedded_postgres(name: str) -> EmbeddedPostgres:
    """A pgserver Postgres whose data stays in ``bench/out/<name>`` between runs, with
    :data:`SETTINGS` applied (``ALTER SYSTEM``; restarted once when they need it)."""
    OUT.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(OUT / name)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for key, value in SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(key), sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)
        restart = conn.execute("SELECT count(*) FROM pg_settings WHERE pending_restart").fetchone()
    if restart and restart[0]:
        server = pg._server
        if server is None:  # the initdb/pg_ctl-on-PATH backend
            pg.stop()
            pg.start()
        else:
            from pgserver._commands import pg_ctl

            pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    return pg


def database(dsn0: str, name: str) -> str:
    """The DSN of database ``name`` on the server of ``dsn0``, created if missing (its
    rows are kept between runs)."""
    with psycopg.connect(dsn0, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_dbname(dsn0, name)


def fresh_db(dsn0: str, name: str) -> str:
    """The DSN of an empty database ``name`` on the server of ``dsn0`` (dropped first)."""
    with psycopg.connect(dsn0, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_dbname(dsn0, name)


def _with_dbname(dsn0: str, name: str) -> str:
    base, _, query = dsn0.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"
