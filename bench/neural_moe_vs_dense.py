"""Switch-style MoE against a dense FFN at equal *active* parameters per token.

Each sample is one token. Both models are ``embed (F → d) → block → head (d → C)``; the
block is ``x + FFN(x)`` for dense, or the MoE layer (E experts, each an FFN of the
same size as the dense one for top-1; for top-2 the dense FFN is twice as wide), so a
token passes through the same number of weights in both, apart from the router's
``d · E`` weights (reported). Both train with the same optimiser, cosine schedule,
epochs and dropout on the FFN hidden layer; the MoE adds ``α · aux + 1e-3 · z`` to its
loss, trains with capacity drops active (CF 1.25, batches of 128) and uses the library
defaults (Switch router init scale 0.1, fp32 router, batch priority routing). The MoE
runs at the library's α = 0.01 and at a tuned α = 0.1, reported side by side.

Reported per model, as mean ± half the range over the seeds (each seed changes the
initialisation and the batch order; for digits also the stratified split): test
accuracy, tokens/s (measured, batches of 128, best of 5 interleaved rounds, this
machine), drop rate at capacity factor 1.25 and 1.0 (test tokens routed in groups of
128, the training batch size, batch priority routing), and the coefficient of variation
of the expert load over the whole test set and the whole training set, next to the CV a
uniform random router would show on that many tokens, ``sqrt((E − 1) / N)``.

    .venv/bin/python bench/neural_moe_vs_dense.py [--plot] [--datasets digits intents]
        [--seeds 0 1 2 3 4] [--epochs 80]
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import replace

import torch
from common import pyplot, save_plot, table
from neural_common import Dataset, accuracy, arguments, batches, digits, intents, machine
from torch import nn

from emily.cognition.neural import MoE, MoEConfig, timed
from emily.cognition.neural.moe import Expert

D_MODEL, D_HIDDEN, EXPERTS, LR, BATCH = 64, 64, 4, 3e-3, 128
EPOCHS, DROPOUT, TUNED_ALPHA = 80, 0.2, 0.1


class Net(nn.Module):
    """``embed → block → head``; ``block`` is an MoE or a residual dense FFN."""

    def __init__(self, n_in: int, classes: int, moe: MoEConfig | None, dense_hidden: int) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, D_MODEL)
        self.moe = MoE(moe) if moe else None
        self.ffn = None if moe else Expert(D_MODEL, dense_hidden, DROPOUT)
        self.head = nn.Linear(D_MODEL, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, object]:
        h = torch.nn.functional.gelu(self.embed(x))
        if self.moe is not None:
            out = self.moe(h)
            return self.head(out.y), out.loss, out
        assert self.ffn is not None
        return self.head(h + self.ffn(h)), torch.zeros(()), None

    def active_params(self) -> int:
        """Weights a token passes through (router included for the MoE)."""
        common = sum(p.numel() for p in [*self.embed.parameters(), *self.head.parameters()])
        if self.moe is None:
            assert self.ffn is not None
            return common + sum(p.numel() for p in self.ffn.parameters())
        per_expert = sum(p.numel() for p in self.moe.experts[0].parameters())
        return common + self.moe.config.k * per_expert + self.moe.router.weight.numel()


def train(ds: Dataset, net: Net, seed: int, epochs: int) -> Net:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        for idx in batches(len(ds.y_train), BATCH, gen):
            logits, aux, _ = net(ds.x_train[idx])
            loss = nn.functional.cross_entropy(logits, ds.y_train[idx]) + aux
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return net.eval()


def evaluate(ds: Dataset, net: Net) -> dict[str, float]:
    res: dict[str, float] = {}
    with torch.no_grad():
        logits, _, _ = net(ds.x_test)
        res["acc"] = accuracy(logits, ds.y_test)
        n = len(ds.y_test)
        if net.moe is not None:
            base = net.moe.config
            load = torch.zeros(base.n_experts)
            for cf in (1.25, 1.0):
                net.moe.config = replace(base, capacity_factor=cf)
                dropped = total = 0
                for start in range(0, n, BATCH):
                    _, _, o = net(ds.x_test[start : start + BATCH])
                    dropped += int(o.routing.dropped.sum())
                    total += o.routing.dropped.numel()
                    if cf == 1.25:
                        load += o.load.float()
                res[f"drop_{cf}"] = dropped / total
            net.moe.config = base
            res["cv"] = float(load.std(unbiased=False) / load.mean())
            _, _, o = net(ds.x_train)
            res["cv_train"] = o.load_cv
            res["load"] = load.tolist()  # type: ignore[assignment]
    return res


def throughput(ds: Dataset, nets: list[Net], rounds: int = 5) -> list[float]:
    """Tokens/s of each model (measured): rounds interleave the models, so load from other
    processes hits all of them alike; the best round of each is kept."""
    n = len(ds.y_test)
    best = [0.0] * len(nets)
    with torch.no_grad():
        for _ in range(rounds):
            for i, net in enumerate(nets):
                with timed() as t:
                    for start in range(0, n, BATCH):
                        net(ds.x_test[start : start + BATCH])
                best[i] = max(best[i], n / (t.wall_ms / 1e3))
    return best


def variants() -> list[tuple[str, MoEConfig | None, int]]:
    """(label, MoE config or None for dense, dense hidden width)."""
    out: list[tuple[str, MoEConfig | None, int]] = [
        ("dense h=64", None, D_HIDDEN),
        ("dense h=128", None, 2 * D_HIDDEN),
    ]
    for k in (1, 2):
        for alpha in (0.01, TUNED_ALPHA):
            cfg = MoEConfig(D_MODEL, D_HIDDEN, EXPERTS, k=k, aux_loss_coef=alpha)
            cfg = replace(cfg, expert_dropout=DROPOUT)
            tag = "default" if alpha == MoEConfig(1, 1).aux_loss_coef else "tuned"
            out.append((f"MoE top-{k} a={alpha} ({tag})", cfg, D_HIDDEN))
    return out


def spread(values: list[float], fmt: str) -> str:
    """``mean±half-range``."""
    half = (max(values) - min(values)) / 2
    return f"{statistics.mean(values):{fmt}}±{half:{fmt.lstrip('+')}}"


def run(name: str, seeds: list[int], epochs: int) -> dict[str, list[dict[str, object]]]:
    """Train every variant on every seed; print the table and the verdicts."""
    vs = variants()
    per: dict[str, list[dict[str, object]]] = {label: [] for label, _, _ in vs}
    params: dict[str, tuple[int, int]] = {}
    for seed in seeds:
        ds = digits(seed) if name == "digits" else intents()
        f, c = ds.x_train.shape[1], ds.classes
        nets = []
        for label, cfg, hidden in vs:
            torch.manual_seed(seed)
            net = train(ds, Net(f, c, cfg, hidden), seed, epochs)
            nets.append(net)
            per[label].append({"label": label, **evaluate(ds, net)})
            params[label] = (net.active_params(), sum(p.numel() for p in net.parameters()))
        for (label, _, _), tok_s in zip(vs, throughput(ds, nets), strict=True):
            per[label][-1]["tok_s"] = tok_s
            per[label][-1]["tok_ratio"] = tok_s / per["dense h=64"][-1]["tok_s"]  # type: ignore[operator]

    def col(label: str, key: str) -> list[float]:
        return [float(r[key]) for r in per[label]]  # type: ignore[arg-type]

    rows = []
    for label, cfg, _ in vs:
        moe = cfg is not None
        rows.append(
            [
                label,
                f"{params[label][0]:,}",
                f"{params[label][1]:,}",
                spread(col(label, "acc"), ".2f"),
                f"{statistics.mean(col(label, 'tok_s')):,.0f}",
                spread(col(label, "tok_ratio"), ".2f"),
                spread([100 * v for v in col(label, "drop_1.25")], ".2f") if moe else "-",
                spread([100 * v for v in col(label, "drop_1.0")], ".2f") if moe else "-",
                spread(col(label, "cv"), ".3f") if moe else "-",
                spread(col(label, "cv_train"), ".3f") if moe else "-",
            ]
        )
    ds = digits(seeds[0]) if name == "digits" else intents()
    n, n_tr = len(ds.y_test), len(ds.y_train)
    print(
        f"\n== {name}: train {n_tr}, test {n} tokens, d={D_MODEL}, E={EXPERTS}, {epochs} "
        f"epochs, dropout {DROPOUT}, seeds {seeds}; CV of a uniform random router: "
        f"{math.sqrt((EXPERTS - 1) / n):.3f} on the test tokens, "
        f"{math.sqrt((EXPERTS - 1) / n_tr):.3f} on the training tokens"
    )
    headers = ["model", "active params/token", "total params", "acc %", "tokens/s",
               "vs dense h=64", "drop % CF1.25", "drop % CF1.0", "load CV test",
               "load CV train"]  # fmt: skip
    print(table(headers, rows))

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for label, cfg, _ in vs[2:]:
        assert cfg is not None
        dense = "dense h=64" if cfg.k == 1 else "dense h=128"
        gap = [a - b for a, b in zip(col(label, "acc"), col(dense, "acc"), strict=True)]
        mean = {key: statistics.mean(col(label, key)) for key in ("drop_1.25", "cv", "cv_train")}
        wins = sum(g >= 0 for g in gap)
        print(
            f"{label} vs {dense}: accuracy {spread(gap, '+.2f')} points "
            f"(>= dense on {wins}/{len(gap)} seeds); targets on the means: "
            f"drop<=1% at CF1.25 {verdict(mean['drop_1.25'] <= 0.01)}, "
            f"CV<=0.1 on test {verdict(mean['cv'] <= 0.1)}, "
            f"on train {verdict(mean['cv_train'] <= 0.1)}, "
            f"acc>=dense {verdict(statistics.mean(gap) >= 0)}"
        )
    return per


def plot(all_results: dict[str, dict[str, list[dict[str, object]]]]) -> None:
    """Share of the test tokens each expert was asked for, summed over the seeds."""
    fig, axes = pyplot().subplots(
        1, len(all_results), figsize=(5 * len(all_results), 3.5), squeeze=False
    )
    for ax, (name, per) in zip(axes[0], all_results.items(), strict=True):
        moes = {label: runs for label, runs in per.items() if "load" in runs[0]}
        width = 0.8 / len(moes)
        for i, (label, runs) in enumerate(moes.items()):
            load = [sum(x) for x in zip(*(r["load"] for r in runs), strict=True)]  # type: ignore[call-overload]
            share = [x / sum(load) for x in load]
            ax.bar([e + i * width for e in range(len(load))], share, width, label=label)
        ax.axhline(1 / EXPERTS, color="k", lw=0.8, ls="--")
        ax.set_xlabel("expert")
        ax.set_ylabel("share of test tokens")
        ax.set_title(f"expert load, {name}")
        ax.legend(fontsize=7)
    save_plot(fig, "neural_moe_vs_dense.png")


def main(argv: list[str] | None = None) -> int:
    ap = arguments(__doc__, "neural_moe_vs_dense.png")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; tokens/s are measured on it, shared with other work")
    results = {name: run(name, args.seeds, args.epochs) for name in args.datasets}
    if args.plot:
        plot(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
