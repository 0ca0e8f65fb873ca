"""The HNSW index of ``episodes.embedding``, and how a query must spell the distance.

The index is built on the embedding as stored (``vector_cosine_ops``) or cast to half
precision (``halfvec_cosine_ops``), after ``cfg.storage``. Postgres uses it only for an
``ORDER BY`` over the very expression it indexes, so the query's distance
(:func:`distance`) is written from the same expression as the index.
"""

from __future__ import annotations

import logging

from psycopg import sql

from emily.bus.schemas.memory import EMBED_DIM, IndexStatus
from emily.memory.config import MemoryConfig
from emily.memory.pgpool import Conn

log = logging.getLogger(__name__)
_HALFVEC = sql.SQL("halfvec({d})").format(d=sql.Literal(EMBED_DIM))


def index_name(cfg: MemoryConfig) -> str:
    """Name of the HNSW index for ``cfg.storage``."""
    return f"episodes_embedding_hnsw_{cfg.storage}"


def _indexed(cfg: MemoryConfig) -> sql.Composable:
    """The expression the index holds: the embedding, or it cast to ``halfvec(384)``."""
    if cfg.storage == "halfvec":
        return sql.SQL("(embedding::{h})").format(h=_HALFVEC)
    return sql.SQL("embedding")


def distance(cfg: MemoryConfig) -> sql.Composable:
    """Cosine distance of each row to the query parameter ``%(q)s``, as the index sees it."""
    if cfg.storage == "halfvec":
        return sql.SQL("{e} <=> (%(q)s::{h})").format(e=_indexed(cfg), h=_HALFVEC)
    return sql.SQL("{e} <=> %(q)s").format(e=_indexed(cfg))


def ensure_index(conn: Conn, cfg: MemoryConfig) -> None:
    """Create the HNSW index, rebuilding it when ``m``/``ef_construction`` changed."""
    name = index_name(cfg)
    want = {f"m={cfg.hnsw_m}", f"ef_construction={cfg.hnsw_ef_construction}"}
    row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = %s", (name,)).fetchone()
    if row is not None and set(row[0] or []) == want:
        return
    conn.execute("SET maintenance_work_mem = '256MB'")
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    ops = "halfvec_cosine_ops" if cfg.storage == "halfvec" else "vector_cosine_ops"
    conn.execute(
        sql.SQL(
            "CREATE INDEX {name} ON episodes USING hnsw ({expr} {ops}) "
            "WITH (m = {m}, ef_construction = {efc})"
        ).format(
            name=sql.Identifier(name),
            expr=_indexed(cfg),
            ops=sql.SQL(ops),
            m=sql.Literal(cfg.hnsw_m),
            efc=sql.Literal(cfg.hnsw_ef_construction),
        )
    )
    log.info("built %s (m=%d, ef_construction=%d)", name, cfg.hnsw_m, cfg.hnsw_ef_construction)


def status(cfg: MemoryConfig) -> IndexStatus:
    """HNSW and search settings in effect."""
    return IndexStatus(
        m=cfg.hnsw_m,
        ef_construction=cfg.hnsw_ef_construction,
        ef_search=cfg.ef_search,
        iterative_scan="relaxed_order",
        max_scan_tuples=cfg.max_scan_tuples,
        storage=cfg.storage,
    )
