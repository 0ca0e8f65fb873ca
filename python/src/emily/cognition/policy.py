"""What competes for the workspace, and which policy the agent takes.

The percept, the reflex's guess, recalled memories, the goals and interoception (an
allostatic variable away from its set point) are the workspace's candidates; alpha
gating sets their entry order and salience. The policy is the agent's expected free
energy choice (:func:`emily.cognition.agent.decide`) among the policies this turn
allows: the reflex only for an in-scope intent, recall only with something recalled,
deliberation only for a question or command that may use the LLM, and not while no
inference service is up.
"""

from __future__ import annotations

from collections.abc import Callable

from emily.cognition import agent, learning
from emily.cognition.allostasis import Allostasis
from emily.cognition.gating import alpha_gate
from emily.cognition.record import Cycle
from emily.cognition.reflex import ReflexResult
from emily.cognition.workspace import Candidate

GOALS = (("goal:answer", "answer the user helpfully", 1.0), ("goal:safe", "stay safe", 0.5))
#: Memory evidence a current fact matching the question counts as (a cosine-like score).
FACT_EVIDENCE = 0.8


def candidates(
    cyc: Cycle, result: ReflexResult, allostasis: Allostasis, alpha_gain: float
) -> tuple[list[Candidate], list[int]]:
    """The workspace's candidates, scaled by alpha gating, and their entry order."""
    cands = [
        Candidate(f"percept:{cyc.id}", "percept", cyc.request.text[:200], 1.0),
        Candidate(
            "reflex",
            "reflex",
            f"{result.intent} ({result.confidence:.2f})",
            2.0 * result.confidence,
        ),
    ]
    cands += [
        Candidate(f"memory:{h.episode.id}", "memory", h.episode.text[:200], max(0.0, 1.5 * h.score))
        for h in cyc.hits
    ]
    cands += [Candidate(k, "goal", text, s) for k, text, s in GOALS]
    for name, value in allostasis.snapshot().items():
        dev = abs(value - allostasis.set_point(name))
        if dev > 0.05:
            cands.append(
                Candidate(f"intero:{name}", "interoception", f"{name} {value:.2f}", 1.5 * dev)
            )
    gated = alpha_gate(cands, alpha_gain)
    scaled = [
        Candidate(c.key, c.kind, c.content, c.score * f)
        for c, f in zip(cands, gated.factors, strict=True)
    ]
    return scaled, gated.order


def decide(
    cyc: Cycle,
    result: ReflexResult,
    *,
    gamma: float,
    temperature: float,
    allostasis: Allostasis,
    learner: learning.Learner,
    llm_up: Callable[[], bool],
    stochastic: bool,
) -> agent.Decision:
    """The agent's policy for ``cyc`` (see the module docstring); a deliberation that
    wins while ``llm_up()`` is false is noted in the cycle and decided again without it."""
    memory_known = "memory" not in cyc.missing and not result.fired
    scores = [h.score for h in cyc.hits] + ([FACT_EVIDENCE] if cyc.facts else [])
    best = max(scores, default=None)
    novel = (best is None or best < 0.5) and result.confidence < result.threshold
    in_scope = 0.0 if result.intent == "oos" else result.confidence
    obs = agent.Observation(
        reflex=agent.bin_reflex(in_scope, result.threshold),
        memory=agent.bin_memory(best) if memory_known else None,
        novelty=1 if novel else 0,
    )
    allowed = ["clarify"]
    if result.intent != "oos":
        allowed.append("reflex")
    if (cyc.hits or cyc.facts) and cyc.act != "command":
        allowed.append("recall")
    if cyc.request.allow_llm and cyc.act != "statement":  # a statement is acknowledged
        allowed.append("deliberate")
    sp = allostasis.set_point("patience")
    impatience = max(0.0, sp - allostasis.snapshot()["patience"]) / max(sp, 1e-6)

    def run(options: list[str]) -> agent.Decision:
        return agent.decide(
            obs,
            gamma=gamma,
            impatience=impatience,
            allowed=tuple(options),
            stochastic=stochastic,
            temperature=temperature,
            success=learner.success(),
        )

    decision = run(allowed)
    if decision.policy == "deliberate" and not llm_up() and not result.fired:
        cyc.missing.append("inference")
        cyc.notes.append("deliberation was the best policy but no inference service is up")
        cyc.substitute = True
        decision = run([p for p in allowed if p != "deliberate"])
    return decision
