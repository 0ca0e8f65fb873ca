"""The global workspace: capacity, broadcast, ignition and stable ranking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emily.cognition.workspace import (
    KINDS,
    Broadcast,
    Candidate,
    GlobalWorkspace,
    WorkspaceConfig,
)

candidates = st.lists(
    st.builds(
        Candidate,
        key=st.text("abcdefgh", min_size=1, max_size=3),
        kind=st.sampled_from(KINDS),
        content=st.text(max_size=10),
        score=st.floats(0.0, 20.0),
    ),
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(st.lists(candidates, min_size=1, max_size=5), st.integers(1, 9))
def test_never_over_capacity(rounds: list[list[Candidate]], capacity: int) -> None:
    ws = GlobalWorkspace(WorkspaceConfig(capacity=capacity))
    for cands in rounds:
        cast = ws.compete(cands)
        assert len(cast.items) <= capacity
        assert len(ws.contents) <= capacity
        weights = [i.weight for i in cast.items]
        assert weights == sorted(weights, reverse=True)
        assert sum(weights) <= 1.0 + 1e-9


@settings(max_examples=40, deadline=None)
@given(candidates, st.integers(1, 6))
def test_broadcasts_reach_every_subscriber(cands: list[Candidate], n_subs: int) -> None:
    ws = GlobalWorkspace()
    got: list[list[Broadcast]] = [[] for _ in range(n_subs)]

    def failing(_: Broadcast) -> None:
        raise RuntimeError("a subscriber that fails on purpose")

    ws.subscribe(failing)
    for box in got:
        ws.subscribe(box.append)
    cast = ws.compete(cands)
    for box in got:
        assert box == [cast]


def test_unsubscribe_stops_delivery() -> None:
    ws = GlobalWorkspace()
    box: list[Broadcast] = []
    stop = ws.subscribe(box.append)
    ws.compete([Candidate("a", "percept", "x", 1.0)])
    stop()
    ws.compete([Candidate("a", "percept", "x", 1.0)])
    assert len(box) == 1


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.floats(0.1, 10.0), st.randoms(use_true_random=False))
def test_ranking_is_stable_under_ties(n: int, score: float, rnd: object) -> None:
    cands = [Candidate(f"k{i}", "memory", f"m{i}", score) for i in range(n)]
    order = list(range(n))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    ws = GlobalWorkspace(WorkspaceConfig(capacity=7, ignition=0.0))
    cast = ws.compete(cands, order=order)
    # equal salience: the entry order decides, and the same input always gives the same output
    assert [i.candidate.key for i in cast.items] == [f"k{i}" for i in order][:7]
    again = GlobalWorkspace(WorkspaceConfig(capacity=7, ignition=0.0)).compete(cands, order=order)
    assert again == cast


def test_salience_gain_and_decay() -> None:
    ws = GlobalWorkspace(WorkspaceConfig(capacity=2, decay=0.5, ignition=0.0))
    ws.compete([Candidate("old", "memory", "o", 4.0)])
    cast = ws.compete(
        [Candidate("p", "percept", "p", 1.0), Candidate("g", "goal", "g", 1.0)],
        gains={"percept": 3.0},
    )
    keys = [i.candidate.key for i in cast.items]
    assert keys == ["p", "old"]  # percept 3.0 beats the decayed 2.0, which beats the goal's 1.0
    assert cast.items[1].salience == pytest.approx(2.0)


def test_ignition_threshold_keeps_weak_items_out() -> None:
    ws = GlobalWorkspace(WorkspaceConfig(ignition=0.2))
    cast = ws.compete([Candidate("s", "percept", "s", 10.0), Candidate("w", "goal", "w", 0.0)])
    assert [i.candidate.key for i in cast.items] == ["s"]
    assert ws.compete([]).ignited is True  # "s" is carried over while strong enough


def test_bad_candidates_and_orders_are_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        Candidate("a", "dream", "x", 1.0)
    with pytest.raises(ValueError, match="score"):
        Candidate("a", "goal", "x", float("nan"))
    with pytest.raises(ValueError, match="permutation"):
        GlobalWorkspace().compete([Candidate("a", "goal", "x", 1.0)], order=[1])
