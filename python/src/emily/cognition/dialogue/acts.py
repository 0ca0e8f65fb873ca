"""The dialogue act of a user's turn: ``statement``, ``question`` or ``command``.

A multinomial logistic regression over two kinds of feature:

- the turn's MiniLM embedding (``[384]``, the one the cycle already computed for the
  reflex and recall, so classifying costs no second forward pass);
- surface cues (:func:`cues`, words in ``data/cues.json``): a question mark, a leading
  wh-word or auxiliary verb ("is", "can", "did"), a leading imperative verb or "please",
  a first-person opening, "tell me where..." and "do you know..." forms, a wh-word
  not followed by a pronoun ("what did", "what time", unlike "what I need is"), the
  length.

It is trained on ``data/acts.jsonl`` (hand-written, labelled utterances). A second
model on the cues alone classifies turns that have no embedding (the n-gram reflex
answered before MiniLM ran, or MiniLM is not installed). The assistant's own turns are
not classified: they are ``answer`` by construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from emily.cognition.errors import CognitionError
from emily.cognition.reflex.features import MiniLMFeatures

log = logging.getLogger(__name__)

UserAct = Literal["statement", "question", "command"]
ACTS: tuple[UserAct, ...] = ("statement", "question", "command")
F32 = NDArray[np.float32]
Embed = Callable[[list[str]], F32]


def data_path(name: str) -> Path:
    """Path of a file in ``emily/cognition/dialogue/data``."""
    return Path(str(resources.files("emily.cognition.dialogue") / "data" / name))


_WORDS = json.loads(data_path("cues.json").read_text(encoding="utf-8"))
WH = frozenset(_WORDS["wh"])
AUX = frozenset(_WORDS["aux"])
IMPERATIVE = frozenset(_WORDS["imperative"])
FIRST_PERSON = frozenset(_WORDS["first_person"])
PRONOUNS = FIRST_PERSON | {"you", "he", "she", "it", "they", "we", ""}
_TOKEN = re.compile(r"[a-z0-9']+")
#: Bumped whenever :func:`cues` changes, so a cached model of older cues is not loaded.
CUES_VERSION = 6
N_CUES = 12
#: Weight penalties: 384 embedding dimensions on a few hundred utterances overfit
#: unless held much tighter than the twelve cues.
EMBEDDING_L2 = 1.0
CUE_L2 = 0.01


class DialogueDataError(CognitionError):
    """The labelled utterance file is malformed; the message names the line."""


@dataclass(frozen=True)
class Labelled:
    """One labelled utterance."""

    text: str
    act: UserAct


def load_labelled(path: Path | None = None) -> list[Labelled]:
    """Read ``{"text", "act"}`` lines (``act`` one of :data:`ACTS`).

    Raises
    ------
    DialogueDataError
        A line is not such an object, or a text is empty.
    """
    path = path or data_path("acts.jsonl")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DialogueDataError(f"cannot read the dialogue-act data {path}: {exc}") from exc
    rows: list[Labelled] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            text, act = obj["text"], obj["act"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DialogueDataError(f"{path}:{number}: expected {{'text', 'act'}}: {exc}") from exc
        if not isinstance(text, str) or not text.strip() or act not in ACTS:
            raise DialogueDataError(f"{path}:{number}: empty text or act not one of {ACTS}")
        rows.append(Labelled(text, act))
    return rows


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (apostrophes kept: "what's", "don't")."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def cues(text: str) -> F32:
    """Surface cues of ``text``: ``[N_CUES]`` values in [0, 1]."""
    toks = tokens(text)
    first = toks[0] if toks else ""
    second = toks[1] if len(toks) > 1 else ""
    head = " ".join(toks[:5])
    stripped = text.strip()
    return np.array(
        [
            "?" in stripped,
            stripped.endswith("?"),
            first in WH,
            first in AUX and second in FIRST_PERSON | {"you", "it", "there", "the", "we"},
            first in IMPERATIVE,
            first == "please" or "please" in toks[:3],
            first in FIRST_PERSON,
            bool(re.search(r"(tell|remind|show) me (what|where|who|when|which|how|if|my)", head)),
            bool(re.match(r"(do|did|would) you (know|remember|recall)|any idea", head)),
            first in {"don't", "let's", "be", "never"},
            first in WH and second not in PRONOUNS,
            min(len(toks), 20) / 20.0,
        ],
        dtype=np.float32,
    )


@dataclass(frozen=True)
class LogReg:
    """Multinomial logistic regression on standardised features.

    ``mean``, ``std`` : ``[F]``; ``w`` : ``[F, 3]``; ``b`` : ``[3]`` (classes in
    :data:`ACTS` order).
    """

    mean: F32
    std: F32
    w: F32
    b: F32

    def proba(self, x: F32) -> F32:
        """Class probabilities ``[B, 3]`` of features ``[B, F]``."""
        z = ((x - self.mean) / self.std) @ self.w + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    @classmethod
    def fit(cls, x: F32, y: NDArray[np.int64], l2: F32, steps: int = 600) -> LogReg:
        """Full-batch gradient descent on the L2-regularised cross-entropy.

        Parameters
        ----------
        x : features ``[B, F]``. y : class indices ``[B]``. l2 : weight penalty per
            feature ``[F]`` (below 4, so that the step of 0.5 stays stable).
        """
        mean = x.mean(axis=0)
        std = x.std(axis=0) + 1e-3
        xs = (x - mean) / std
        onehot = np.eye(len(ACTS), dtype=np.float32)[y]
        w = np.zeros((x.shape[1], len(ACTS)), dtype=np.float32)
        b = np.zeros(len(ACTS), dtype=np.float32)
        lr = 0.5
        for _ in range(steps):
            z = xs @ w + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot) / len(y)
            w -= lr * (xs.T @ g + l2[:, None] * w)
            b -= lr * g.sum(axis=0)
        return cls(mean.astype(np.float32), std.astype(np.float32), w, b)

    def arrays(self, prefix: str) -> dict[str, F32]:
        """The parameters as named arrays (for ``np.savez``)."""
        return {f"{prefix}_{k}": getattr(self, k) for k in ("mean", "std", "w", "b")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, F32], prefix: str) -> LogReg:
        """Inverse of :meth:`arrays`."""
        return cls(*(arrays[f"{prefix}_{k}"] for k in ("mean", "std", "w", "b")))


@dataclass(frozen=True)
class ActGuess:
    """The classified act, its probability and whether the embedding was used."""

    act: UserAct
    probability: float
    used_embedding: bool


class ActClassifier:
    """Dialogue-act classifier (see the module docstring).

    Parameters
    ----------
    cues_only : the model on :func:`cues` alone. full : the model on the embedding
        ``[384]`` followed by the cues; ``None`` when no embedder was available to train it.
    """

    def __init__(self, cues_only: LogReg, full: LogReg | None) -> None:
        self.cues_only = cues_only
        self.full = full

    def classify(
        self, text: str, embedding: Sequence[float] | NDArray[np.floating] | None = None
    ) -> ActGuess:
        """The act of ``text``; ``embedding`` is its unit-norm MiniLM vector ``[384]``."""
        c = cues(text)[None, :]
        if embedding is not None and self.full is not None:
            x = np.concatenate([np.asarray(embedding, dtype=np.float32)[None, :], c], axis=1)
            p = self.full.proba(x)[0]
            used = True
        else:
            p = self.cues_only.proba(c)[0]
            used = False
        i = int(np.argmax(p))
        return ActGuess(ACTS[i], float(p[i]), used)

    @classmethod
    def train(cls, rows: Sequence[Labelled], embed: Embed | None) -> ActClassifier:
        """Fit both models on ``rows``; ``embed`` maps texts to ``[B, 384]`` vectors."""
        if {r.act for r in rows} != set(ACTS):
            raise DialogueDataError(f"the training data must hold every act of {ACTS}")
        y = np.array([ACTS.index(r.act) for r in rows], dtype=np.int64)
        c = np.stack([cues(r.text) for r in rows])
        cue_l2 = np.full(N_CUES, CUE_L2, dtype=np.float32)
        full = None
        if embed is not None:
            e = embed([r.text for r in rows]).astype(np.float32)
            l2 = np.concatenate([np.full(e.shape[1], EMBEDDING_L2, dtype=np.float32), cue_l2])
            full = LogReg.fit(np.concatenate([e, c], axis=1), y, l2)
        return cls(LogReg.fit(c, y, cue_l2), full)

    @classmethod
    def load_or_train(
        cls, cache_dir: Path | None, embed: Embed | None, tag: str = ""
    ) -> ActClassifier:
        """Load the cached models for the current data, or train and cache them.

        The cache file's name holds a hash of the data and cue-word files, the cue
        version and ``tag`` (the embedder's precision), so changed data is never served stale.
        """
        path = data_path("acts.jsonl")
        words = data_path("cues.json").read_bytes()
        digest = hashlib.sha256(
            path.read_bytes() + words + f"{CUES_VERSION}:{tag}".encode()
        ).hexdigest()
        cache = None if cache_dir is None else cache_dir / f"acts-{digest[:16]}.npz"
        if cache is not None and cache.exists():
            try:
                with np.load(cache) as z:
                    arrays = {k: z[k] for k in z.files}
                full = LogReg.from_arrays(arrays, "full") if "full_w" in arrays else None
                if full is not None or embed is None:
                    return cls(LogReg.from_arrays(arrays, "cues"), full)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("dialogue-act cache %s unreadable, retraining: %s", cache, exc)
        model = cls.train(load_labelled(path), embed)
        if cache is not None:
            arrays = model.cues_only.arrays("cues")
            if model.full is not None:
                arrays |= model.full.arrays("full")
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp.npz")
                np.savez(tmp, **arrays)  # type: ignore[arg-type]
                tmp.replace(cache)
            except OSError as exc:  # a read-only state dir: the model still works
                log.warning("dialogue-act model not cached at %s: %s", cache, exc)
        return model


class LazyActs:
    """An :class:`ActClassifier` trained (or loaded) on first use, thread-safe, so that
    building a :class:`~emily.cognition.cycle.Cognition` stays cheap.

    Parameters
    ----------
    features : the MiniLM features whose ``embed`` trains the full model (``None``: the
        cues model only). cache_dir : where trained models are cached (``None``: not
        on disk; one process still trains once per ``features``).
    """

    def __init__(self, features: MiniLMFeatures | None, cache_dir: Path | None = None) -> None:
        self.features = features
        self.cache_dir = cache_dir
        self._model: ActClassifier | None = None
        self._lock = threading.Lock()

    def get(self) -> ActClassifier:
        """The classifier, trained or loaded now if it was not yet."""
        with self._lock:
            if self._model is None:
                self._model = _trained(self.features, self.cache_dir)
            return self._model


@lru_cache(maxsize=4)
def _trained(features: MiniLMFeatures | None, cache_dir: Path | None) -> ActClassifier:
    if features is None:
        return ActClassifier.load_or_train(cache_dir, None)
    return ActClassifier.load_or_train(cache_dir, features.embed, features.cache_tag)
