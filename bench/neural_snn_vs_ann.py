"""SNN against ANN of the same shape: accuracy, modelled energy and measured time.

For each data set (sklearn digits; reflex intents embedded with MiniLM) it trains, in
one run, an ANN ``F → H (ReLU) → C`` and a spiking network of the same shape (spike
encoder, LIF hidden layer with τ_mem = 10 ms at dt = 1 ms, integrating readout) with the
same optimiser, schedule and epochs, then
reports test accuracy, **modelled** energy per inference (Horowitz 45 nm; SNN: SOPs
priced as ACs plus the encoder's MACs; ANN: its MACs) and measured wall and CPU time
per inference (batch of one, this machine). Ratios are SNN / ANN from the same run.

    .venv/bin/python bench/neural_snn_vs_ann.py [--plot] [--datasets digits intents]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from common import table
from neural_common import Dataset, accuracy, accuracy_energy_main, batches, digits, intents
from torch import nn

from emily.cognition.neural import OpCounts, SpikingClassifier, encode, on_off, timed
from emily.cognition.neural.encoders import Encoding, encoder_macs
from emily.cognition.neural.energy import Timing, mlp_counts


@dataclass(frozen=True)
class Setting:
    """Shape, spike code and training schedule of one data set (both models share them)."""

    hidden: int
    encoding: Encoding
    steps: int
    threshold: float  # latency code: features below it stay silent
    scale: float  # ON/OFF split of signed features: |z| mapped to 1.0
    epochs: int
    lr: float

    def spikes(self, ds: Dataset, x: torch.Tensor) -> torch.Tensor:
        """Encoded input ``[T, B, F']`` of features ``x`` ``[B, F]``."""
        feats = on_off(x, self.scale) if ds.signed else x
        return encode(feats, self.steps, self.encoding, threshold=self.threshold)


SETTINGS = {
    "digits": Setting(256, "regular", 3, 0.01, 1.0, 60, 5e-3),
    "intents": Setting(256, "latency", 8, 0.3, 2.0, 60, 5e-3),
}


def optimiser(
    model: nn.Module, s: Setting
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, s.epochs)


def train_ann(ds: Dataset, s: Setting, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(ds.x_train.shape[1], s.hidden), nn.ReLU(), nn.Linear(s.hidden, ds.classes)
    )
    opt, sched = optimiser(model, s)
    for _ in range(s.epochs):
        for idx in batches(len(ds.y_train), 64, gen):
            loss = nn.functional.cross_entropy(model(ds.x_train[idx]), ds.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def train_snn(ds: Dataset, s: Setting, seed: int) -> SpikingClassifier:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    spikes = s.spikes(ds, ds.x_train)
    model = SpikingClassifier(spikes.shape[2], s.hidden, ds.classes)
    opt, sched = optimiser(model, s)
    for _ in range(s.epochs):
        for idx in batches(len(ds.y_train), 64, gen):
            out = model(spikes[:, idx])
            loss = nn.functional.cross_entropy(out.logits, ds.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def eval_ann(model: nn.Module, ds: Dataset, s: Setting) -> tuple[float, OpCounts, Timing]:
    with torch.no_grad():
        acc = accuracy(model(ds.x_test), ds.y_test)
        with timed() as t:
            for row in ds.x_test:
                model(row.unsqueeze(0))
    counts = mlp_counts([ds.x_test.shape[1], s.hidden, ds.classes], len(ds.y_test))
    return acc, counts, t


def eval_snn(model: SpikingClassifier, ds: Dataset, s: Setting) -> tuple[float, OpCounts, Timing]:
    n = len(ds.y_test)
    with torch.no_grad():
        out = model(s.spikes(ds, ds.x_test))
        acc = accuracy(out.logits, ds.y_test)
        enc = OpCounts(samples=n, mac=encoder_macs(model.n_in, s.steps, s.encoding) * n)
        with timed() as t:
            for row in ds.x_test:
                model(s.spikes(ds, row.unsqueeze(0)))
    return acc, out.counts.merge(enc), t


def run(name: str, seed: int) -> dict[str, float]:
    ds = digits(seed) if name == "digits" else intents()
    s = SETTINGS[name]
    a_acc, a_cnt, a_t = eval_ann(train_ann(ds, s, seed), ds, s)
    s_acc, s_cnt, s_t = eval_snn(train_snn(ds, s, seed), ds, s)
    n = len(ds.y_test)
    rows = []
    for label, acc, cnt, t in (("ANN", a_acc, a_cnt, a_t), ("SNN", s_acc, s_cnt, s_t)):
        rows.append(
            [
                label,
                f"{acc:.2f}",
                f"{cnt.per_inference_pj('fp32'):,.0f}",
                f"{cnt.per_inference_pj('int8'):,.0f}",
                f"{cnt.sop / n:,.0f}",
                f"{cnt.mac / n:,.0f}",
                f"{cnt.spikes / n:,.1f}",
                f"{t.wall_ms / n:.3f}",
                f"{t.cpu_ms / n:.3f}",
            ]
        )
    print(
        f"\n== {name}: train {len(ds.y_train)}, test {n}, {ds.classes} classes, "
        f"F={ds.x_train.shape[1]}, H={s.hidden}, {s.encoding} code, T={s.steps} steps of 1 ms, "
        f"{s.epochs} epochs"
    )
    print(
        table(
            [
                "model",
                "acc %",
                "pJ/inf fp32 (modelled)",
                "pJ/inf int8 (modelled)",
                "SOP/inf",
                "MAC/inf",
                "spikes/inf",
                "wall ms/inf (measured)",
                "CPU ms/inf (measured)",
            ],
            rows,
        )
    )
    e_ratio = s_cnt.per_inference_pj() / a_cnt.per_inference_pj()
    print(
        f"SNN/ANN: accuracy {s_acc - a_acc:+.2f} points, modelled energy {e_ratio:.3f}x, "
        f"wall time {s_t.wall_ms / a_t.wall_ms:.2f}x"
    )
    print(
        f"targets: accuracy within 2 points: {'met' if s_acc >= a_acc - 2 else 'NOT met'}; "
        f"energy <= 0.2x: {'met' if e_ratio <= 0.2 else 'NOT met'}"
    )
    return {
        "ann_acc": a_acc,
        "snn_acc": s_acc,
        "ann_pj": a_cnt.per_inference_pj(),
        "snn_pj": s_cnt.per_inference_pj(),
    }


def main(argv: list[str] | None = None) -> int:
    pair = (("ann", "ANN"), ("snn", "SNN"))
    return accuracy_energy_main(__doc__, run, pair, "inference", "neural_snn_vs_ann.png", argv)


if __name__ == "__main__":
    sys.exit(main())
