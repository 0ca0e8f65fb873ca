from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emily.bus.keys import Keys

chunk = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)


def test_layout_matches_design() -> None:
    k = Keys("cloudlab")
    assert k.query("memory", "recall") == "emily/cloudlab/memory/recall"
    assert k.health("inference") == "emily/cloudlab/health/inference"
    assert k.events("memory.operations") == "emily/cloudlab/events/memory.operations"
    assert k.health("*") == "emily/cloudlab/health/*"


@given(node=chunk, parts=st.lists(chunk, min_size=1, max_size=4))
def test_keys_are_prefixed_and_joined(node: str, parts: list[str]) -> None:
    assert Keys(node).key(*parts) == "/".join(["emily", node, *parts])


@pytest.mark.parametrize("node", ["", "a/b", "**", "sp ace", "a*"])
def test_bad_node_names_rejected(node: str) -> None:
    with pytest.raises(ValueError, match="node name"):
        Keys(node)


@pytest.mark.parametrize("part", ["", "a//b", "$x", "a b", "**"])
def test_bad_chunks_rejected(part: str) -> None:
    with pytest.raises(ValueError, match="invalid key chunk"):
        Keys("n").key(part)
