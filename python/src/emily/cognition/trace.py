"""A finished cycle as the bus's :class:`~emily.bus.schemas.cognition.Trace`."""

from __future__ import annotations

from emily.bus.schemas.cognition import FactUsed, MemoryUsed, Trace, WorkspaceItem
from emily.cognition import agent
from emily.cognition.record import Cycle
from emily.cognition.reflex import ReflexResult
from emily.cognition.workspace import Broadcast

#: The tier a policy's answer comes from, as the trace names it.
TIER_OF_POLICY = {
    "reflex": "reflex",
    "recall": "memory",
    "deliberate": "deliberation",
    "clarify": "clarify",
}


def build_trace(
    cyc: Cycle,
    *,
    policy: str,
    result: ReflexResult,
    stage: str,
    broadcast: Broadcast,
    decision: agent.Decision,
    episode: str,
    allostasis: dict[str, float],
    learning: dict[str, float],
) -> Trace:
    """The trace of ``cyc``: the tier and policy that answered, the reflex's decision
    (``stage``: ``ngrams`` or ``minilm``), the workspace, every policy's ``G``, the
    memories and facts used, per-stage latencies (ms), what was missing and why, the
    allostatic variables (``allostasis``), the learner's snapshot (``learning``) and
    whether the episodes were ``queued`` or ``skipped`` (``episode``)."""
    return Trace.model_validate(
        {
            "cycle_id": cyc.id,
            "tier": TIER_OF_POLICY[policy],
            "policy": policy,
            "reflex": {
                "intent": result.intent,
                "confidence": min(result.confidence, 1.0),
                "threshold": min(result.threshold, 1.0),
                "fired": result.fired,
                "stage": stage,
            },
            "workspace": workspace_items(broadcast),
            "policies": [
                {"policy": p, "G": decision.G[p], "probability": min(decision.q_pi[p], 1.0)}
                for p in agent.POLICIES
            ],
            "need": decision.need,
            "memories": [
                MemoryUsed(id=h.episode.id, text=h.episode.text, score=h.score, tier=h.tier)
                for h in cyc.hits
            ],
            "latencies_ms": cyc.latencies,
            "missing": sorted(set(cyc.missing)),
            "notes": cyc.notes,
            "allostasis": allostasis,
            "gamma": cyc.mod.gamma,
            "ttft_ms": cyc.ttft_ms,
            "episode": episode,
            "learning": learning,
            "act": cyc.act,
            "episode_id": cyc.id,
            "answer_id": cyc.answer_id,
            "facts": [
                FactUsed(
                    id=f.id,
                    subject=f.subject,
                    relation=f.relation,
                    value=f.value,
                    score=f.score,
                )
                for f in cyc.facts
            ],
            "cited": cyc.cited,
        }
    )


def workspace_items(broadcast: Broadcast) -> list[WorkspaceItem]:
    """The broadcast's items as bus messages."""
    return [
        WorkspaceItem.model_validate(
            {
                "kind": i.candidate.kind,
                "content": i.candidate.content,
                "salience": i.salience,
                "weight": min(i.weight, 1.0),
            }
        )
        for i in broadcast.items
    ]
