"""The neural.spikes event schema, fuzzed: valid events round-trip, anything else is a
named PayloadError, and the energy is always labelled "modelled"."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.bus.messages import decode, encode
from emily.bus.schemas.neural import LayerSpikes, SpikeEvent
from emily.errors import PayloadError

names = st.from_regex(r"^[A-Za-z0-9_.-]{1,64}$", fullmatch=True)
counts = st.integers(0, 2**53)
finite = st.floats(0, 1e12, allow_nan=False, allow_infinity=False)
layers = st.builds(LayerSpikes, name=names, neurons=st.integers(1, 10**9), spikes=counts)
events = st.builds(
    SpikeEvent,
    source=names,
    at_unix_ms=finite,
    samples=st.integers(1, 2**31),
    spikes=counts,
    sop=counts,
    mac=counts,
    state_updates=counts,
    precision=st.sampled_from(["fp32", "fp16", "int8"]),
    energy_pj_per_inference=finite,
    wall_ms=finite,
    cpu_ms=finite,
    layers=st.lists(layers, max_size=4).map(tuple),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(deadline=None)
@given(event=events)
def test_valid_events_round_trip(event: SpikeEvent) -> None:
    got = decode(SpikeEvent, encode(event))
    assert got == event
    assert json.loads(encode(event))["energy_label"] == "modelled"


@settings(deadline=None)
@given(event=events, field=st.sampled_from(["spikes", "sop", "mac", "samples", "wall_ms"]))
def test_negative_counts_and_times_are_named_errors(event: SpikeEvent, field: str) -> None:
    obj = event.model_dump()
    obj[field] = -1
    with pytest.raises(PayloadError, match=field):
        decode(SpikeEvent, json.dumps(obj))


@settings(deadline=None)
@given(event=events, key=st.sampled_from(["energy_pj_per_inference", "cpu_ms", "at_unix_ms"]))
def test_non_finite_numbers_are_rejected(event: SpikeEvent, key: str) -> None:
    obj = event.model_dump()
    obj[key] = math.inf
    with pytest.raises(PayloadError, match=key):
        decode(SpikeEvent, json.dumps(obj, allow_nan=True))


def test_energy_cannot_be_labelled_measured() -> None:
    obj = {
        "source": "reflex",
        "at_unix_ms": 1.0,
        "samples": 1,
        "spikes": 3,
        "sop": 30,
        "mac": 64,
        "state_updates": 100,
        "energy_pj_per_inference": 321.4,
        "wall_ms": 0.5,
        "cpu_ms": 0.4,
    }
    assert decode(SpikeEvent, obj).energy_label == "modelled"
    with pytest.raises(PayloadError, match="energy_label"):
        decode(SpikeEvent, {**obj, "energy_label": "measured"})
    with pytest.raises(PayloadError, match="joules: Extra inputs"):
        decode(SpikeEvent, {**obj, "joules": 1})
    with pytest.raises(PayloadError, match="source"):
        decode(SpikeEvent, {**obj, "source": "bad name/with slash"})


@settings(deadline=None)
@given(obj=json_values)
def test_fuzzed_payloads_validate_or_raise_payload_error(obj: Any) -> None:
    raw = json.dumps(obj, allow_nan=True).encode()
    for model in (SpikeEvent, LayerSpikes):
        try:
            got = decode(model, raw)
        except PayloadError as exc:
            assert str(exc)
        else:
            assert isinstance(got, model)


@settings(deadline=None)
@given(raw=st.binary(max_size=64))
def test_fuzzed_bytes_never_crash(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        decode(SpikeEvent, raw)
