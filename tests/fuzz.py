"""Fuzzing every bus queryable: thousands of hostile payloads, and every one answered.

:func:`payloads` draws, for one request model, a mix of what an attacker or a broken
client sends: arbitrary bytes, arbitrary JSON, objects drawn from the model's own JSON
schema (strings shortened, so a drawn prompt stays cheap to serve), and such objects
with one field swapped for arbitrary JSON. :func:`answered` sends one and checks the
contract: exactly one reply, and an error reply is a well-formed ``ErrorReply`` whose
code is never ``internal`` (a crash) and names the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import zenoh
from hypothesis import strategies as st

from emily.bus.messages import ErrorReply, Message

#: Most characters of a drawn string, and largest drawn number for counts of tokens.
SHORT = 48
#: Codes a fuzzed request may get: refused, or the service honestly busy or absent.
ALLOWED = {"bad_request", "busy", "unavailable", "not_found", "timeout"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=SHORT),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def capped(schema: Any, caps: dict[str, int]) -> Any:
    """``schema`` with every string at most :data:`SHORT` characters, every array at most
    4 items, and the integer properties named in ``caps`` at most that value."""
    if isinstance(schema, list):
        return [capped(s, caps) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: capped(v, caps) for k, v in schema.items()}
    if out.get("type") == "string" and "format" not in out and "pattern" not in out:
        out["maxLength"] = min(out.get("maxLength", SHORT), SHORT)
    if out.get("type") == "array":
        out["maxItems"] = min(out.get("maxItems", 4), 4)
        out["minItems"] = min(out.get("minItems", 0), out["maxItems"])
    for name, cap in caps.items():
        prop = out.get("properties", {}).get(name)
        if isinstance(prop, dict):
            if "anyOf" in prop:  # no null: the service's default could be large
                prop["anyOf"] = [b for b in prop["anyOf"] if b.get("type") != "null"]
                out.setdefault("required", [])
                if name not in out["required"]:
                    out["required"] = [*out["required"], name]
            for branch in [prop, *prop.get("anyOf", [])]:
                if branch.get("type") == "integer":
                    branch["maximum"] = min(branch.get("maximum", cap), cap)
    return out


def from_schema(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A strategy for values of the JSON schema subset pydantic writes (objects, ``$ref``,
    ``anyOf``, ``enum``/``const``, bounded strings, numbers and arrays)."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {k: from_schema(v, defs) for k, v in props.items()}
        optional = st.fixed_dictionaries(
            {}, optional={k: v for k, v in fields.items() if k not in required}
        )
        needed = st.fixed_dictionaries({k: v for k, v in fields.items() if k in required})
        if not props:
            return st.dictionaries(st.text(max_size=8), json_values, max_size=3)
        return st.tuples(needed, optional).map(lambda t: {**t[0], **t[1]})
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", SHORT)
        return st.text(min_size=min(lo, hi), max_size=hi)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs) if schema.get("items") else json_values
        lo = schema.get("minItems", 0)
        return st.lists(items, min_size=lo, max_size=max(lo, schema.get("maxItems", 4)))
    return json_values


def payloads(model: type[Message], caps: dict[str, int] | None = None) -> st.SearchStrategy[bytes]:
    """Hostile and well-formed payloads for ``model`` (see the module docstring)."""
    return schema_payloads(model.model_json_schema(), caps)


def schema_payloads(
    schema: dict[str, Any], caps: dict[str, int] | None = None, defs: dict[str, Any] | None = None
) -> st.SearchStrategy[bytes]:
    """:func:`payloads` for a JSON schema (``defs``: where its ``$ref`` names point)."""
    caps = caps or {}
    drawn = from_schema(capped(schema, caps), None if defs is None else capped(defs, caps))

    def swap(obj: Any, data: st.DataObject) -> Any:
        if not isinstance(obj, dict) or not obj:
            return obj
        key = data.draw(st.sampled_from(sorted(obj)))
        return {**obj, key: data.draw(json_values)}

    mutated = st.tuples(drawn, st.data()).map(lambda t: swap(t[0], t[1]))
    as_json = st.one_of(drawn, mutated, json_values).map(
        lambda v: json.dumps(v, allow_nan=True).encode()
    )
    return st.one_of(st.binary(max_size=256), as_json)


def answered(session: zenoh.Session, key: str, payload: bytes, timeout_s: float = 60.0) -> bool:
    """Send ``payload`` to ``key``; check the reply contract; True for a success reply."""
    replies = list(session.get(key, payload=payload, timeout=timeout_s))
    assert replies, f"{key}: no reply to {payload[:120]!r}"
    errors = [r.err for r in replies if r.err is not None]
    if not errors:
        return True
    assert len(errors) == 1 and len(replies) == 1, f"{key}: {len(replies)} replies"
    err = ErrorReply.model_validate_json(errors[0].payload.to_bytes())
    assert err.code in ALLOWED, f"{key}: {err.code}: {err.message} for {payload[:200]!r}"
    assert err.message, f"{key}: an error without a message"
    return False


def count(outcomes: Iterable[bool]) -> tuple[int, int]:
    """(successes, refusals) of a fuzz run."""
    done = list(outcomes)
    return sum(done), len(done) - sum(done)


def http_cases(
    doc: dict[str, Any], caps: dict[str, int] | None = None
) -> list[tuple[str, str, st.SearchStrategy[bytes]]]:
    """(method, path, body strategy) for every operation of an OpenAPI document; a JSON
    request body is drawn from its schema (with the components as ``$ref`` targets),
    any other body is arbitrary. Path parameters become short arbitrary text."""
    defs = doc.get("components", {}).get("schemas", {})
    cases = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {})
            schema = (content.get("application/json") or {}).get("schema")
            body = (
                schema_payloads(schema, caps, defs)
                if schema is not None
                else st.binary(max_size=256)
            )
            cases.append((method.upper(), path, body))
    return cases


def http_status(
    base: str, method: str, path: str, body: bytes, token: str | None = None
) -> tuple[int, bytes]:
    """Send one fuzzed request; check the contract (no 5xx but 503 for an absent
    service, a JSON error body); returns the status and the body."""
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    url = base + re.sub(r"\{[^}]+\}", lambda _m: urllib.parse.quote("x y/%"), path)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if method in ("POST", "PUT", "PATCH") else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    assert status < 500 or status == 503, f"{method} {path}: {status} {raw[:300]!r}"
    if status >= 400:
        assert json.loads(raw), f"{method} {path}: {status} without a JSON error body"
    return status, raw


def fuzz_route(
    base: str, method: str, path: str, bodies: st.SearchStrategy[bytes], examples: int = 1000
) -> list[int]:
    """Send ``examples`` fuzzed requests to one route (:func:`http_status` each);
    returns their statuses."""
    from hypothesis import HealthCheck, given, settings

    statuses: list[int] = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(bodies)
    def fuzz(body: bytes) -> None:
        statuses.append(http_status(base, method, path, body)[0])

    fuzz()
    return statuses
