"""Versioned, schema-validated bus messages.

Every payload on the bus is a JSON object with a ``v`` (schema version) field, validated
by a pydantic model. A payload that fails validation raises :class:`PayloadError` whose
message names the offending field, so a server can reply with an error instead of crashing.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from emily.errors import PayloadError

SCHEMA_VERSION: Literal[1] = 1
M = TypeVar("M", bound="Message")


class Message(BaseModel):
    """Base of every bus message: strict about unknown fields, versioned, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v: Literal[1] = SCHEMA_VERSION


class ErrorReply(Message):
    """What a server sends back instead of a result.

    ``code`` is machine-readable (``bad_request``, ``busy``, ``unavailable``, ``internal``,
    ``timeout``); ``message`` tells the caller what was wrong and what to do.
    ``retry_after_s`` is set for ``busy``.
    """

    code: Literal["bad_request", "busy", "unavailable", "internal", "timeout", "not_found"]
    message: str
    retry_after_s: float | None = None


def encode(message: Message) -> bytes:
    """Serialize a message to UTF-8 JSON bytes."""
    return message.model_dump_json().encode()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def decode(model: type[M], payload: bytes | str | dict[str, Any]) -> M:
    """Parse and validate ``payload`` as ``model``.

    Raises
    ------
    PayloadError
        If the bytes are not UTF-8 JSON (including JSON nested deeper than the parser
        allows, or an integer too long to convert), or the object fails the schema. The
        message names every failing field (``k: Input should be greater than 0``).

    Notes
    -----
    Valid bytes take pydantic's JSON parser straight to the model, which skips building
    Python objects for a 384-float vector that ``json.loads`` then validation would
    make (``bench/bus_decode.py`` measures both). Only a payload that fails takes the
    slower path below, which words the error for the user.
    """
    if isinstance(payload, bytes | str):
        try:
            return model.model_validate_json(payload)
        except ValidationError:
            pass  # fall through: explain what is wrong
        try:
            obj = json.loads(payload)
        except RecursionError as exc:
            raise PayloadError("payload is nested too deeply to be a message") from exc
        except ValueError as exc:  # bad UTF-8 or JSON, or an integer of over 4,300 digits
            raise PayloadError(f"payload is not valid UTF-8 JSON: {exc}") from exc
    else:
        obj = payload
    if not isinstance(obj, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(obj).__name__}")
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise PayloadError(
            f"v: schema version {version!r} is not supported; this build speaks v{SCHEMA_VERSION}"
        )
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise PayloadError(f"{model.__name__}: {_describe(exc)}") from exc
    except RecursionError as exc:
        raise PayloadError(f"{model.__name__}: a value is nested too deeply") from exc
