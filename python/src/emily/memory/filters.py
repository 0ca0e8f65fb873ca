"""Recall filters, in SQL for L3 and in Python for the cached tiers: one meaning, two forms.

A recall's scope (its ``user``, and its ``agent`` when given) is a filter like the
others, always applied: ``user=None`` is only for tools and benchmarks that read the
whole table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from emily.bus.schemas.memory import RecallFilters
from emily.memory.record import Record

_BOUNDS = (
    ("min_valence", "valence", ">="),
    ("max_valence", "valence", "<="),
    ("min_arousal", "arousal", ">="),
    ("max_arousal", "arousal", "<="),
    ("min_dominance", "dominance", ">="),
    ("max_dominance", "dominance", "<="),
)


def where_clause(
    f: RecallFilters, user: str | None = None, agent: str | None = None
) -> tuple[sql.Composable, dict[str, Any]]:
    """``WHERE ...`` (or nothing) for ``f`` within ``user``'s (and ``agent``'s) episodes,
    and its named parameters."""
    conds: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if user is not None:
        conds.append(sql.SQL("user_name = %(user)s"))
        params["user"] = user
    if agent is not None:
        conds.append(sql.SQL("agent_name = %(agent)s"))
        params["agent"] = agent
    if f.roles is not None:
        conds.append(sql.SQL("role = ANY(%(roles)s)"))
        params["roles"] = list(f.roles)
    if f.acts is not None:
        conds.append(sql.SQL("act = ANY(%(acts)s)"))
        params["acts"] = list(f.acts)
    if f.session is not None:
        conds.append(sql.SQL("session = %(session)s"))
        params["session"] = f.session
    if f.since is not None:
        conds.append(sql.SQL("ts >= %(since)s"))
        params["since"] = f.since
    if f.until is not None:
        conds.append(sql.SQL("ts < %(until)s"))
        params["until"] = f.until
    for name, column, op in _BOUNDS:
        value = getattr(f, name)
        if value is not None:
            # affect is stored as real (float4): compare in float4 so bounds are inclusive
            conds.append(sql.SQL(f"{column} {op} %({name})s::real"))
            params[name] = value
    if f.context:
        conds.append(sql.SQL("context @> %(context)s"))
        params["context"] = Jsonb(f.context)
    if f.source is not None:
        conds.append(sql.SQL("source = %(source)s"))
        params["source"] = f.source
    if not conds:
        return sql.SQL(""), params
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conds), params


def matches(
    f: RecallFilters, rec: Record, user: str | None = None, agent: str | None = None
) -> bool:
    """Whether ``rec`` passes ``f`` within the scope, with :func:`where_clause`'s meaning."""
    if (user is not None and rec.user != user) or (agent is not None and rec.agent != agent):
        return False
    if f.roles is not None and rec.role not in f.roles:
        return False
    if f.acts is not None and rec.act not in f.acts:
        return False
    if f.session is not None and rec.session != f.session:
        return False
    if f.since is not None and rec.ts < f.since:
        return False
    if f.until is not None and rec.ts >= f.until:
        return False
    for name, attr, op in _BOUNDS:
        bound = getattr(f, name)
        if bound is None:
            continue
        value = _f32(getattr(rec, attr))
        if (op == ">=" and value < _f32(bound)) or (op == "<=" and value > _f32(bound)):
            return False
    for key, want in f.context.items():
        if key not in rec.context or not _json_equal(rec.context[key], want):
            return False
    return f.source is None or rec.source == f.source


def _f32(x: float) -> float:
    return float(np.float32(x))


def _json_equal(a: object, b: object) -> bool:
    """jsonb equality: numbers compare by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def dialogue_only(f: RecallFilters) -> bool:
    """Whether ``f`` sets no filter but roles, acts and session (which the in-process
    index holds per episode, so it can answer them)."""
    return f.model_copy(update={"roles": None, "acts": None, "session": None}).empty
