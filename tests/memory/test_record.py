"""Records to and from JSON (L2 slots, the outbox), old lines included."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from emily.memory.record import Record
from tests.memory.helpers import records

BASE = records(1)[0]


@given(
    user=st.sampled_from(["default", "ana"]),
    agent=st.none() | st.just("bot"),
    role=st.sampled_from(["user", "assistant", "system"]),
    act=st.sampled_from(["statement", "question", "command", "answer"]),
    session=st.none() | st.just("conv:1"),
    reply_to=st.none() | st.uuids(),
    repeats=st.integers(1, 10),
    last_seen=st.none() | st.datetimes(timezones=st.just(UTC)),
)
def test_every_field_round_trips_through_json(
    user: str,
    agent: str | None,
    role: str,
    act: str,
    session: str | None,
    reply_to: uuid.UUID | None,
    repeats: int,
    last_seen: datetime | None,
) -> None:
    rec = replace(
        BASE,
        user=user,
        agent=agent,
        role=role,  # type: ignore[arg-type]
        act=act,  # type: ignore[arg-type]
        session=session,
        reply_to=reply_to,
        repeats=repeats,
        last_seen=last_seen,
    )
    back = Record.from_json(json.loads(rec.encoded()), rec.embedding)
    assert back.episode() == rec.episode()


def test_a_line_written_before_the_dialogue_fields_reads_with_defaults() -> None:
    old = {
        "id": str(BASE.id),
        "ts": BASE.ts.isoformat(),
        "text": BASE.text,
        "affect": [0.1, 0.2, 0.3],
        "context": {},
        "source": "",
    }
    ep = Record.from_json(old, BASE.embedding).episode()
    assert (ep.user, ep.agent, ep.role, ep.act, ep.session, ep.reply_to) == (
        "default",
        None,
        "user",
        "statement",
        None,
        None,
    )
    assert (ep.repeats, ep.last_seen) == (1, None)


def test_defaults_take_no_slot_space() -> None:
    assert set(json.loads(BASE.encoded())) == {"id", "ts", "text", "affect", "context", "source"}
