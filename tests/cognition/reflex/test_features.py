"""Hashed n-gram features."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from emily.cognition.reflex.features import HashedNgrams, normalise_text


def test_normalisation() -> None:
    assert normalise_text("  Hello,   WORLD!! it's me ") == "hello world it's me"


def test_indices_are_stable_across_processes() -> None:
    # crc32, not Python's salted hash: these buckets must never change between runs
    f = HashedNgrams(dim=2048)
    assert f.indices("hi").tolist() == sorted(f.indices("HI!").tolist())
    # " h", "hi", "i ", " hi", "hi ", " hi " and the word "hi": seven n-grams
    assert f.indices("hi").size == 7


@given(st.text(max_size=200))
def test_any_text_gives_valid_buckets(text: str) -> None:
    f = HashedNgrams(dim=512)
    idx = f.indices(text)
    assert np.all((idx >= 0) & (idx < 512))
    assert np.all(np.diff(idx) > 0)
    dense = f.dense([text])
    assert dense.shape == (1, 512) and dense.sum() == idx.size


def test_torch_threads_nests_across_threads_without_blocking() -> None:
    import threading

    import torch

    from emily.cognition.reflex.features import torch_threads

    before = torch.get_num_threads()
    done = threading.Event()

    def worker() -> None:
        with torch_threads(1):
            done.set()

    with torch_threads(1):
        t = threading.Thread(target=worker)
        t.start()
        t.join(10)
        assert done.is_set()  # a block held by another thread never blocks this one
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
