"""Training the reflex with surrogate gradients, and calibrating its firing threshold.

The network is :class:`emily.cognition.neural.SpikingClassifier` (LIF neurons with the
ATan surrogate), trained by backpropagation through time on the ``train`` split. A
quarter of the training utterances (in-scope and out-of-scope alike) is kept aside to
calibrate the confidence threshold. Out-of-scope utterances form their own reject class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from emily.cognition.neural import LIFConfig, SpikingClassifier
from emily.cognition.reflex.features import torch_threads
from emily.cognition.reflex.runtime import F32, SpikingRuntime, softmax_rows


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of reflex training.

    Attributes
    ----------
    hidden : LIF neurons ``H``; steps : time steps ``T`` (1 ms each).
    epochs, batch, lr : Adam on cross-entropy of the time-averaged readout.
    seed : torch and split seed, so a training run is reproducible.
    target_false_fire, target_precision : what the calibrated threshold must achieve on
        the calibration quarter (out-of-scope share that fires; correct share of fires).
    min_threshold : the threshold never goes below this confidence.
    """

    hidden: int = 128
    steps: int = 8
    epochs: int = 60
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    target_false_fire: float = 0.05
    target_precision: float = 0.95
    min_threshold: float = 0.3


def fit(x: F32, y: NDArray[np.int64], n_classes: int, cfg: TrainConfig) -> SpikingRuntime:
    """Train ``F -> H (LIF) -> C`` on features ``x`` ``[N, F]`` and labels ``y`` ``[N]``."""
    with torch_threads(1):
        return _fit(x, y, n_classes, cfg)


def _fit(x: F32, y: NDArray[np.int64], n_classes: int, cfg: TrainConfig) -> SpikingRuntime:
    torch.manual_seed(cfg.seed)
    lif = LIFConfig()
    net = SpikingClassifier(x.shape[1], cfg.hidden, n_classes, lif)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), cfg.batch):
            idx = order[start : start + cfg.batch]
            spikes = xt[idx].unsqueeze(0).expand(cfg.steps, -1, -1)
            loss = torch.nn.functional.cross_entropy(net(spikes).logits, yt[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    return SpikingRuntime(
        w_in=sd["fc_in.weight"],
        b_in=sd["fc_in.bias"],
        w_out=sd["fc_out.weight"],
        b_out=sd["fc_out.bias"],
        beta=lif.beta,
        threshold=lif.threshold,
        steps=cfg.steps,
    )


def confidences(rt: SpikingRuntime, x: F32) -> tuple[NDArray[np.int64], F32]:
    """Predicted class ``[N]`` and its softmax confidence ``[N]`` for features ``[N, F]``."""
    logits, _ = rt.run(rt.current_dense(x))
    p = softmax_rows(logits)
    return p.argmax(axis=1).astype(np.int64), p.max(axis=1)


def calibrate(
    pred: NDArray[np.int64], conf: F32, y: NDArray[np.int64], reject: int, cfg: TrainConfig
) -> float:
    """Lowest threshold meeting the precision and false-fire targets on a calibration set.

    Parameters
    ----------
    pred, conf : predicted class and confidence ``[N]`` of the calibration utterances.
    y : their true class ``[N]``; ``reject`` is the index of the out-of-scope class.

    Returns
    -------
    A threshold in ``[min_threshold, 0.99]``: firing needs ``pred != reject`` and
    ``conf >= threshold``. Precision must reach ``target_precision`` and the share of
    out-of-scope utterances that fire must stay at or below ``target_false_fire``.
    """
    ins = y != reject
    for t in np.arange(cfg.min_threshold, 0.99, 0.01):
        fire = (pred != reject) & (conf >= t)
        fired_in = fire & ins
        precision = float(((pred == y) & fired_in).sum() / max(int(fired_in.sum()), 1))
        false_fire = float((fire & ~ins).sum() / max(int((~ins).sum()), 1))
        if precision >= cfg.target_precision and false_fire <= cfg.target_false_fire:
            return float(round(t, 2))
    return 0.99


def calibration_split(labels: list[str], seed: int) -> NDArray[np.bool_]:
    """Boolean mask ``[N]``: True for the quarter of each label's utterances kept aside."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels)):
        rows = np.flatnonzero(np.array(labels) == label)
        mask[rng.permutation(rows)[: max(1, len(rows) // 4)]] = True
    return mask
