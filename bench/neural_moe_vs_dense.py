"""Switch-style MoE against a dense FFN at equal *active* parameters per token.

Each sample is one token. Both models are ``embed (F → d) → block → head (d → C)``; the
block is ``x + FFN(x)`` for dense, or the MoE layer (E experts, each an FFN of the
same size as the dense one for top-1; for top-2 the dense FFN is twice as wide), so a
token passes through the same number of weights in both, apart from the router's
``d · E`` weights (reported). Both train with the same optimiser, schedule and epochs;
the MoE adds ``α · aux + 1e-3 · z`` to its loss. Reported per model: test accuracy,
tokens/s (measured, batches of 128, best of 7 interleaved rounds, this machine), drop
rate at capacity factor 1.25 and 1.0 (batches of 128 tokens, batch priority routing),
and the coefficient of
variation of the expert load over the test set and over the training set, next to the
CV a uniform random router would show on that many tokens, ``sqrt((E − 1) / N)``.

    .venv/bin/python bench/neural_moe_vs_dense.py [--plot] [--datasets digits intents]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace

import torch
from neural_common import OUT, Dataset, accuracy, batches, digits, intents, machine, table
from torch import nn

from emily.cognition.neural import MoE, MoEConfig, timed
from emily.cognition.neural.moe import Expert

D_MODEL, D_HIDDEN, EXPERTS, EPOCHS, LR, BATCH = 64, 64, 4, 40, 3e-3, 128


class Net(nn.Module):
    """``embed → block → head``; ``block`` is an MoE or a residual dense FFN."""

    def __init__(self, n_in: int, classes: int, moe: MoEConfig | None, dense_hidden: int) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, D_MODEL)
        self.moe = MoE(moe) if moe else None
        self.ffn = None if moe else Expert(D_MODEL, dense_hidden)
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


def train(ds: Dataset, net: Net, seed: int) -> Net:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    for _ in range(EPOCHS):
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


def throughput(ds: Dataset, nets: list[Net], rounds: int = 7) -> list[float]:
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


def run(name: str, seed: int) -> list[dict[str, object]]:
    ds = digits(seed) if name == "digits" else intents()
    f, c = ds.x_train.shape[1], ds.classes
    variants: list[tuple[str, MoEConfig | None, int]] = [
        ("dense h=64", None, D_HIDDEN),
        ("dense h=128", None, 2 * D_HIDDEN),
    ]
    for k, alpha in ((1, 0.01), (1, 0.1), (1, 1.0), (2, 0.1)):
        cfg = MoEConfig(D_MODEL, D_HIDDEN, EXPERTS, k=k, aux_loss_coef=alpha)
        variants.append((f"MoE top-{k} a={alpha}", cfg, D_HIDDEN))
    nets, results = [], []
    for label, cfg, hidden in variants:
        torch.manual_seed(seed)
        net = train(ds, Net(f, c, cfg, hidden), seed)
        nets.append(net)
        results.append({"label": label, **evaluate(ds, net)})
    for r, tok_s in zip(results, throughput(ds, nets), strict=True):
        r["tok_s"] = tok_s
    rows = []
    for (label, cfg, _), net, r in zip(variants, nets, results, strict=True):
        moe = cfg is not None
        rows.append(
            [
                label,
                f"{net.active_params():,}",
                f"{sum(p.numel() for p in net.parameters()):,}",
                f"{r['acc']:.2f}",
                f"{r['tok_s']:,.0f}",
                f"{r['drop_1.25'] * 100:.2f}" if moe else "-",
                f"{r['drop_1.0'] * 100:.2f}" if moe else "-",
                f"{r['cv']:.3f}" if moe else "-",
                f"{r['cv_train']:.3f}" if moe else "-",
            ]
        )
    n, n_tr = len(ds.y_test), len(ds.y_train)
    print(
        f"\n== {name}: train {n_tr}, test {n} tokens, d={D_MODEL}, E={EXPERTS}, "
        f"{EPOCHS} epochs; CV of a uniform random router: {math.sqrt((EXPERTS - 1) / n):.3f} "
        f"on the test tokens, {math.sqrt((EXPERTS - 1) / n_tr):.3f} on the training tokens"
    )
    print(
        table(
            [
                "model",
                "active params/token",
                "total params",
                "acc %",
                "tokens/s (measured)",
                "drop % CF1.25",
                "drop % CF1.0",
                "load CV test",
                "load CV train",
            ],
            rows,
        )
    )
    dense = {1: results[0], 2: results[1]}

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for r in results[2:]:
        d = dense[1 if "top-1" in str(r["label"]) else 2]
        m = {k: float(v) for k, v in r.items() if isinstance(v, int | float)}
        dm = {k: float(v) for k, v in d.items() if isinstance(v, int | float)}
        print(
            f"{r['label']} vs {d['label']}: accuracy {m['acc'] - dm['acc']:+.2f} points, "
            f"tokens/s {m['tok_s'] / dm['tok_s']:.2f}x; targets: "
            f"drop<=1% at CF1.25 {verdict(m['drop_1.25'] <= 0.01)}, "
            f"CV<=0.1 on test {verdict(m['cv'] <= 0.1)}, "
            f"on train {verdict(m['cv_train'] <= 0.1)}, "
            f"acc>=dense {verdict(m['acc'] >= dm['acc'])}"
        )
    return results


def plot(all_results: dict[str, list[dict[str, object]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(all_results), figsize=(5 * len(all_results), 3.5), squeeze=False
    )
    for ax, (name, results) in zip(axes[0], all_results.items(), strict=True):
        moes = [r for r in results if "load" in r]
        width = 0.8 / len(moes)
        for i, r in enumerate(moes):
            load = list(r["load"])  # type: ignore[call-overload]
            share = [x / sum(load) for x in load]
            ax.bar([e + i * width for e in range(len(load))], share, width, label=str(r["label"]))
        ax.axhline(1 / EXPERTS, color="k", lw=0.8, ls="--")
        ax.set_xlabel("expert")
        ax.set_ylabel("share of test tokens")
        ax.set_title(f"expert load, {name}")
        ax.legend(fontsize=7)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "neural_moe_vs_dense.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--datasets", nargs="+", default=["digits", "intents"], choices=["digits", "intents"]
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", action="store_true", help="write bench/out/neural_moe_vs_dense.png")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; tokens/s are measured on it, shared with other work")
    results = {name: run(name, args.seed) for name in args.datasets}
    if args.plot:
        plot(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
