"""Reflex: a mixture of spiking experts against the dense spiking reflex it would replace.

Both read the fast stage's hashed n-grams (2,048 binary inputs, the running reflex's
features; ``--features minilm``: the embedding stage's 768 real-valued MiniLM ON/OFF
features, whose input layers are priced as MACs) held over T = 8 steps, and train with
the running reflex's settings (``TrainConfig``: Adam 2e-3, 60 epochs, batches of 32,
cross-entropy of the time-averaged readout) on the data set's train split, calibration
quarter included:

- **dense**: the running reflex's network, F -> 128 LIF -> C, trained by
  ``emily.cognition.reflex.train.fit`` and run by its NumPy runtime.
- **MoE**: a bias-free router F -> E (``emily.cognition.neural.Router``, top-1, Switch's
  load-balancing loss with alpha = 0.01 and the z-loss from
  ``emily.cognition.neural.routing``) picks one of E spiking experts F -> H_e LIF -> C
  (``SpikingClassifier``); the chosen expert's logits are scaled by its gate, so the
  router learns from the task loss. Evaluated with hard top-1 routing, one utterance per
  decision, so no capacity drops.

Reported on the held-out split (in-scope and out-of-scope rows, out-of-scope as its own
class, as the reflex is trained): accuracy, in-scope accuracy, and the modelled energy
per decision (Horowitz 45 nm, fp32) from the counts ``SpikingClassifier`` makes (input
spikes x fan-out and hidden spikes x C accumulates, real-valued inputs x fan-out MACs
per step), plus the router's (active inputs x E accumulates, or F x E MACs) for the
MoE; mean ± half the range over the seeds (each changes the initialisation and batch
order), with the ratio to dense. The last lines say whether a setting meets both
conditions for running in the reflex: accuracy at least dense's and no more modelled
energy.

    .venv/bin/python bench/cognition_reflex_moe.py [--seeds 0 1 2] [--experts 4]
        [--hidden 32 64 128] [--epochs 60] [--features ngrams|minilm]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

import numpy as np
import torch
from common import load_line, table
from neural_common import machine
from torch import nn

from emily.cognition.neural import OpCounts, Router, SpikingClassifier
from emily.cognition.neural.energy import input_layer_counts
from emily.cognition.neural.routing import load_balancing_loss, router_z_loss
from emily.cognition.reflex import data as rdata
from emily.cognition.reflex.features import HashedNgrams, MiniLMFeatures, torch_threads
from emily.cognition.reflex.runtime import softmax_rows
from emily.cognition.reflex.train import TrainConfig, fit

AUX, Z = 0.01, 1e-3


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    oos: int
    classes: int


def load_data(features: str) -> Data:
    rows = rdata.load_intents()
    intents = sorted({r.intent for r in rows if r.split == "train"})
    feats: HashedNgrams | MiniLMFeatures = (
        HashedNgrams() if features == "ngrams" else MiniLMFeatures()
    )

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        part = [r for r in rows if r.split == split]
        y = np.array([intents.index(r.intent) for r in part], dtype=np.int64)
        return feats.dense([r.text for r in part]), y

    (xa, ya), (xb, yb) = xy("train"), xy("heldout")
    return Data(xa, ya, xb, yb, intents.index(rdata.OOS), len(intents))


@dataclass(frozen=True)
class Result:
    accuracy: float
    in_scope: float
    pj: float
    counts: OpCounts


def score(pred: np.ndarray, ds: Data, counts: OpCounts) -> Result:
    ins = ds.y_test != ds.oos
    return Result(
        accuracy=float((pred == ds.y_test).mean()),
        in_scope=float((pred[ins] == ds.y_test[ins]).mean()),
        pj=counts.per_inference_pj("fp32"),
        counts=counts,
    )


def dense(ds: Data, cfg: TrainConfig) -> Result:
    """The running reflex's network and trainer, run by its runtime."""
    rt = fit(ds.x_train, ds.y_train, ds.classes, cfg)
    logits, spikes = rt.run(rt.current_dense(ds.x_test))
    counts = OpCounts()
    for i, x in enumerate(ds.x_test):
        binary = bool(np.isin(x, (0.0, 1.0)).all())
        counts = counts + rt.counts(spikes[:, i], int(x.sum()) if binary else None)
    return score(softmax_rows(logits).argmax(axis=1), ds, counts)


class SpikingMoE(nn.Module):
    """A top-1 router over spiking experts ``F -> H_e (LIF) -> C``."""

    def __init__(self, n_in: int, n_out: int, experts: int, hidden: int) -> None:
        super().__init__()
        self.router = Router(n_in, experts)
        self.experts = nn.ModuleList(SpikingClassifier(n_in, hidden, n_out) for _ in range(experts))

    def forward(self, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: each sample through its chosen expert, scaled by its gate.

        Returns logits ``[B, C]`` and the router's auxiliary loss.
        """
        r = self.router(x)
        probs = torch.softmax(r, dim=1)
        idx = probs.argmax(dim=1)
        rows = torch.arange(len(x))
        parts = []
        for e, expert in enumerate(self.experts):
            sel = (idx == e).nonzero().flatten()
            if len(sel):
                out = expert(x[sel].unsqueeze(0).expand(steps, -1, -1)).logits
                parts.append((sel, out))
        order = torch.cat([sel for sel, _ in parts])
        outs = torch.cat([out for _, out in parts])
        logits = torch.zeros_like(outs).index_copy(0, order, outs)
        logits = logits * probs[rows, idx].unsqueeze(1)
        aux = AUX * load_balancing_loss(probs, idx) + Z * router_z_loss(r)
        return logits, aux

    @torch.no_grad()
    def decide(self, x: torch.Tensor, steps: int) -> tuple[np.ndarray, OpCounts]:
        """Hard top-1 routing, each sample through its expert only; counts included."""
        probs = torch.softmax(self.router(x), dim=1)
        idx = probs.argmax(dim=1)
        pred = torch.zeros(len(x), dtype=torch.long)
        router = input_layer_counts(x.unsqueeze(0), len(self.experts))
        counts = OpCounts(samples=len(x), sop=router.sop, mac=router.mac)
        for e, expert in enumerate(self.experts):
            sel = (idx == e).nonzero().flatten()
            if not len(sel):
                continue
            out = expert(x[sel].unsqueeze(0).expand(steps, -1, -1))
            pred[sel] = out.logits.argmax(dim=1)
            counts = counts.merge(out.counts)
        return pred.numpy(), counts


def moe(ds: Data, cfg: TrainConfig, experts: int, hidden: int) -> Result:
    torch.manual_seed(cfg.seed)
    net = SpikingMoE(ds.x_train.shape[1], ds.classes, experts, hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    xt, yt = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), cfg.batch):
            idx = order[start : start + cfg.batch]
            logits, aux = net(xt[idx], cfg.steps)
            loss = nn.functional.cross_entropy(logits, yt[idx]) + aux
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    net.eval()
    pred, counts = net.decide(torch.from_numpy(ds.x_test), cfg.steps)
    return score(pred, ds, counts)


def spread(xs: list[float], scale: float = 1.0, digits: int = 2) -> str:
    lo, hi = min(xs) * scale, max(xs) * scale
    return f"{statistics.fmean(xs) * scale:,.{digits}f}±{(hi - lo) / 2:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--features", choices=["ngrams", "minilm"], default="ngrams")
    args = ap.parse_args(argv)
    print(load_line("start"))
    ds = load_data(args.features)
    print(
        f"intents ({args.features} features, {ds.x_train.shape[1]} inputs): "
        f"{len(ds.y_train)} train, {len(ds.y_test)} held-out, {ds.classes} classes; {machine()}"
    )
    runs: dict[str, list[Result]] = {"dense h=128 (running reflex)": []}
    names = [f"MoE top-1 E={args.experts} h={h}" for h in args.hidden]
    for name in names:
        runs[name] = []
    with torch_threads(1):
        for seed in args.seeds:
            cfg = TrainConfig(seed=seed, epochs=args.epochs)
            runs["dense h=128 (running reflex)"].append(dense(ds, cfg))
            for name, h in zip(names, args.hidden, strict=True):
                runs[name].append(moe(ds, cfg, args.experts, h))
            print(f"seed {seed} done; {load_line('now')}", flush=True)
    base = runs["dense h=128 (running reflex)"]
    base_acc = statistics.fmean(r.accuracy for r in base)
    base_pj = statistics.fmean(r.pj for r in base)
    rows = []
    for name, rs in runs.items():
        pj = statistics.fmean(r.pj for r in rs)
        acc = statistics.fmean(r.accuracy for r in rs)
        rows.append(
            [
                name,
                spread([r.accuracy for r in rs], 100, 1),
                spread([r.in_scope for r in rs], 100, 1),
                spread([r.pj for r in rs], 1, 0),
                f"{(acc - base_acc) * 100:+.1f} pts",
                f"{pj / base_pj:.2f}x",
            ]
        )
    print()
    print(
        table(
            ["model", "acc %", "in-scope acc %", "pJ/decision", "acc vs dense", "energy vs dense"],
            rows,
        )
    )
    print()
    adopt = []
    for name in names:
        rs = runs[name]
        acc = statistics.fmean(r.accuracy for r in rs)
        pj = statistics.fmean(r.pj for r in rs)
        ok_acc, ok_pj = acc >= base_acc, pj <= base_pj
        wins = sum(r.accuracy >= b.accuracy for r, b in zip(rs, base, strict=True))
        print(
            f"{name} vs dense: accuracy {(acc - base_acc) * 100:+.1f} points "
            f"(>= dense on {wins}/{len(rs)} seeds), modelled energy {pj / base_pj:.2f}x; "
            f"acc>=dense {'met' if ok_acc else 'NOT met'}, energy<=dense "
            f"{'met' if ok_pj else 'NOT met'}"
        )
        if ok_acc and ok_pj:
            adopt.append(name)
    print(
        "verdict: "
        + (f"{adopt[0]} earns a place in the reflex" if adopt else "no MoE setting earns a place")
    )
    print(load_line("end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
