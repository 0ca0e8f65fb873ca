"""T-maze: the active-inference engine against random and greedy agents.

The classic T-maze (Friston et al. 2015; pymdp's ``TMazeEnv``): a mouse starts in the
centre of a T; one arm holds a reward (probability 0.98), the other a loss; the cue arm
at the bottom shows which side is rewarded, correctly with probability ``validity``.
Arms are absorbing and a trial has two moves.

Agents, all on the same generative model (factors: location 4 x context 2; modalities:
location, reward, cue; preferences: reward +3, loss -6 nats, i.e. loss averse, without
which one-shot EFE rates an uncertain arm as well as the cue):

- ``aif``: expected free energy with utility and state information gain (gamma 16);
- ``greedy``: utility only (no information gain), the same engine otherwise;
- ``random``: a uniformly random move each step.

Prints reward rate and cue-visit rate per validity and agent, the ratio of the AIF
reward rate to the random baseline measured in the same run, and the time per step of
the AIF agent (state inference + EFE of all policies + action), in ms. pymdp 1.x needs
JAX, which this project does not install, so no pymdp timing is taken here.

    .venv/bin/python bench/cognition_tmaze.py [--trials 300] [--plot]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import load_line, pcts, pyplot, save_plot, table

from emily.cognition.aif import expected_free_energy, infer_states, policy_posterior
from emily.cognition.aif.control import sample_action
from emily.cognition.aif.model import Generative, all_policies

CENTRE, LEFT, RIGHT, CUE = range(4)
P_REWARD = 0.98


def build(validity: float, horizon: int) -> Generative:
    """The T-maze generative model with policies of ``horizon`` moves."""
    n_loc, n_ctx = 4, 2
    a_loc = np.zeros((4, n_loc, n_ctx))
    for loc in range(n_loc):
        a_loc[loc, loc, :] = 1.0
    a_rew = np.zeros((3, n_loc, n_ctx))  # none, reward, loss
    a_rew[0, [CENTRE, CUE], :] = 1.0
    for arm, good_ctx in ((LEFT, 0), (RIGHT, 1)):
        for ctx in range(n_ctx):
            p = P_REWARD if ctx == good_ctx else 1 - P_REWARD
            a_rew[1, arm, ctx], a_rew[2, arm, ctx] = p, 1 - p
    a_cue = np.full((2, n_loc, n_ctx), 0.5)
    for ctx in range(n_ctx):
        a_cue[:, CUE, ctx] = [
            validity if ctx == 0 else 1 - validity,
            1 - validity if ctx == 0 else validity,
        ]
    b_loc = np.zeros((n_loc, n_loc, n_loc))
    for u in range(n_loc):
        for loc in range(n_loc):
            b_loc[loc if loc in (LEFT, RIGHT) else u, loc, u] = 1.0  # arms are absorbing
    b_ctx = np.eye(n_ctx)[:, :, None]
    return Generative(
        A=[a_loc, a_rew, a_cue],
        B=[b_loc, b_ctx],
        C=[np.zeros(4), np.array([0.0, 3.0, -6.0]), np.zeros(2)],
        D=[np.eye(n_loc)[CENTRE], np.full(n_ctx, 0.5)],
        policies=all_policies([n_loc, 1], horizon),
    )


def observe(loc: int, ctx: int, validity: float, rng: np.random.Generator) -> list[int]:
    """The environment's outcome (location, reward, cue) at ``loc`` in context ``ctx``."""
    reward = 0
    if loc in (LEFT, RIGHT):
        good = (loc == LEFT) == (ctx == 0)
        reward = 1 if rng.random() < (P_REWARD if good else 1 - P_REWARD) else 2
    cue = (
        int(rng.random() > (validity if ctx == 0 else 1 - validity))
        if loc == CUE
        else int(rng.integers(2))
    )
    return [loc, reward, cue]


def trial(
    agent: str,
    models: dict[int, Generative],
    validity: float,
    rng: np.random.Generator,
    timings: list[float],
) -> tuple[bool, bool]:
    """One two-move trial; returns (rewarded, visited the cue)."""
    ctx = int(rng.integers(2))
    loc = CENTRE
    obs = observe(loc, ctx, validity, rng)
    prior = models[2].D
    rewarded = cued = False
    for step in range(2):
        model = models[2 - step]
        t0 = time.perf_counter()
        qs = infer_states(model.A, obs, prior)
        if agent == "random":
            move = int(rng.integers(4))
        else:
            G = expected_free_energy(model, qs, use_states_info_gain=(agent == "aif"))
            q_pi = policy_posterior(G, model.E, gamma=16.0)
            move = int(sample_action(q_pi, model.policies, model.n_controls)[0])
        if agent == "aif":
            timings.append((time.perf_counter() - t0) * 1e3)
        loc = loc if loc in (LEFT, RIGHT) else move
        prior = [model.B[0][:, :, move] @ qs[0], qs[1]]
        obs = observe(loc, ctx, validity, rng)
        rewarded |= obs[1] == 1
        cued |= loc == CUE
    return rewarded, cued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", action="store_true", help="write bench/out/cognition_tmaze.png")
    args = parser.parse_args()
    validities = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    agents = ("aif", "greedy", "random")
    results: dict[tuple[str, float], tuple[float, float]] = {}
    timings: list[float] = []
    for v in validities:
        models = {h: build(v, h) for h in (1, 2)}
        for agent in agents:
            rng = np.random.default_rng(args.seed)
            runs = [trial(agent, models, v, rng, timings) for _ in range(args.trials)]
            results[(agent, v)] = (
                float(np.mean([r for r, _ in runs])),
                float(np.mean([c for _, c in runs])),
            )
    print(f"T-maze, {args.trials} trials per cell, reward probability {P_REWARD}")
    print(load_line("after the trials"))
    columns = [f"{a} {col}" for a in agents for col in ("reward", "cue")]
    rows = []
    for v in validities:
        cells = [f"{results[(a, v)][i]:.{d}f}" for a in agents for i, d in ((0, 3), (1, 2))]
        ratio = results[("aif", v)][0] / max(results[("random", v)][0], 1e-9)
        rows.append([f"{v:.1f}", *cells, f"{ratio:.2f}x"])
    print(table(["validity", *columns, "aif/random"], rows))
    print(f"aif time per step: {pcts(timings)} (16 two-move policies at step 1, 4 at step 2)")
    print("pymdp: not run (pymdp 1.x is JAX-based and not installed here)")
    if args.plot:
        fig, ax = pyplot().subplots(figsize=(6, 4))
        for a in agents:
            ax.plot(validities, [results[(a, v)][0] for v in validities], marker="o", label=a)
        ax.set_xlabel("cue validity")
        ax.set_ylabel("reward rate")
        ax.set_title("T-maze: active inference vs baselines")
        ax.legend()
        save_plot(fig, "cognition_tmaze.png")


if __name__ == "__main__":
    main()
