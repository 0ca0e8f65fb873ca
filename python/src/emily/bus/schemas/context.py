"""Text that is stored, and the ``context`` mapping observations and episodes carry.

Stored text (:data:`StorableStr`) holds no NUL character and no lone surrogate: Postgres
refuses both, and a record refused deep in a batch would hold back the good ones with
it, so the schema refuses it at the door with an error naming the field.

A context is stored with its episode and returned with every recall of it, so each
value is small and a scalar: a string of at most :data:`MAX_VALUE_CHARS` characters, an
integer that fits Postgres' ``bigint``, a finite float, a boolean or ``null``. Keys are
1 to 64 characters. The number of keys is bounded by each schema.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

#: Longest string value in a context (characters).
MAX_VALUE_CHARS = 1024
#: Longest key (characters).
MAX_KEY_CHARS = 64
#: The context key of a perceived episode that holds the SHA-256 of its media file (set
#: by cognition's perceive path, read by memory's forget and perception's media cleanup).
MEDIA_KEY = "media_sha256"
#: The detail key of a ``forget`` event: no remaining episode names that media.
MEDIA_ORPHANED = "media_orphaned"


def storable(value: str) -> str:
    """``value`` unchanged, or :class:`ValueError` if Postgres could not store it."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"must be valid Unicode: a lone surrogate at position {exc.start}"
        ) from exc
    return value


#: A string Postgres can store as ``text`` and inside ``jsonb``.
StorableStr = Annotated[str, AfterValidator(storable)]

ContextValue = (
    Annotated[str, Field(max_length=MAX_VALUE_CHARS), AfterValidator(storable)]
    | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | float
    | bool
    | None
)


def check_context(value: dict[str, ContextValue], max_keys: int) -> dict[str, ContextValue]:
    """``value`` unchanged, or :class:`ValueError` naming the key count or key at fault."""
    if len(value) > max_keys:
        raise ValueError(f"at most {max_keys} context keys, got {len(value)}")
    for key in value:
        if not 0 < len(key) <= MAX_KEY_CHARS:
            raise ValueError(f"context key {key[:70]!r} must be 1 to {MAX_KEY_CHARS} characters")
        try:
            storable(key)
        except ValueError as exc:
            raise ValueError(f"context key {key[:70]!r} {exc}") from exc
    return value
