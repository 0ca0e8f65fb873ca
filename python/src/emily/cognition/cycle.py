"""One cognitive cycle per observation: reflex, workspace, active inference, action.

Stages and their deadlines:

1. **reflex** (fast n-gram stage): answers at once when it fires; nothing below waits.
2. **embed** + second reflex stage: the MiniLM embedding, reused for recall.
3. **recall** from memory over the bus (``recall_timeout_s``), skipped if memory is absent.
4. **workspace**: percept, memories, goals, interoception and the reflex result compete
   (alpha gating sets entry order and salience); winners are broadcast.
5. **policy**: the agent's generative model scores reflex / recall / deliberate /
   clarify by expected free energy; allostasis sets gamma.
6. **deliberate**: the LLM over the bus (``deliberate_timeout_s``) with recalled
   memories as context, only if that policy wins.

Every cycle stores an episode (in the background) and returns a full trace.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from emily.bus.schemas.cognition import (
    MemoryUsed,
    ObserveReply,
    ObserveRequest,
    Trace,
    WorkspaceItem,
)
from emily.bus.schemas.context import MAX_VALUE_CHARS
from emily.bus.schemas.memory import EpisodeIn, Hit
from emily.cognition import actions, agent
from emily.cognition.allostasis import Allostasis, Modulation
from emily.cognition.clients import InferenceClient, MemoryClient, PeerUnavailable
from emily.cognition.config import CognitionConfig
from emily.cognition.episodes import EpisodeWriter
from emily.cognition.gating import alpha_gate
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.reflex import Reflex, ReflexResult
from emily.cognition.workspace import Broadcast, Candidate, GlobalWorkspace, WorkspaceConfig
from emily.ids import uuid7

log = logging.getLogger(__name__)

TIER_OF_POLICY = {
    "reflex": "reflex",
    "recall": "memory",
    "deliberate": "deliberation",
    "clarify": "clarify",
}
GOALS = (("goal:answer", "answer the user helpfully", 1.0), ("goal:safe", "stay safe", 0.5))
NEUTRAL = Modulation(gamma=16.0, alpha_gain=1.0, reflex_shift=0.0, temperature=1.0)
NO_REFLEX = ReflexResult("oos", 0.0, 1.0, False, None, None, 0.0, 0)


@dataclass
class Cycle:
    """Mutable record of one cycle while it runs."""

    request: ObserveRequest
    id: uuid.UUID = field(default_factory=uuid7)
    t0: float = field(default_factory=time.perf_counter)
    latencies: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    embedding: list[float] | None = None
    ttft_ms: float | None = None
    mod: Modulation = field(default_factory=lambda: NEUTRAL)
    result: ReflexResult = field(default_factory=lambda: NO_REFLEX)
    reflex_ms: float = 0.0
    after: list[tuple[Callable[..., object], tuple[object, ...]]] = field(default_factory=list)

    def timed(self, stage: str, started: float) -> float:
        """Record ``stage`` as having run from ``started`` until now; returns ms."""
        ms = (time.perf_counter() - started) * 1e3
        self.latencies[stage] = self.latencies.get(stage, 0.0) + ms
        return ms


class Cognition:
    """The cognitive cycle (see the module docstring).

    Parameters
    ----------
    reflex : both reflex stages. memory, inference : bus clients, or ``None`` when the
        service runs without a bus (then the cycle degrades as if they were absent).
    outbox : file of the episodes memory has not stored yet (kept across restarts);
        ``None`` keeps them in memory only.
    """

    def __init__(
        self,
        reflex: Reflex,
        config: CognitionConfig | None = None,
        memory: MemoryClient | None = None,
        inference: InferenceClient | None = None,
        metrics: CognitionMetrics | None = None,
        allostasis: Allostasis | None = None,
        outbox: Path | None = None,
    ) -> None:
        self.reflex = reflex
        self.config = config or CognitionConfig()
        self.memory = memory
        self.inference = inference
        self.metrics = metrics or CognitionMetrics()
        self.allostasis = allostasis or Allostasis()
        self.workspace = GlobalWorkspace(WorkspaceConfig(capacity=self.config.capacity))
        self.episodes = EpisodeWriter(
            memory,
            self.metrics,
            self.config.store_timeout_s,
            self.config.pending_max,
            outbox,
        )
        self._last_broadcast: dict[int, uuid.UUID] = {}

    def subscribe(self, fn: Callable[[Broadcast], None]) -> Callable[[], None]:
        """Receive every workspace broadcast in-process; returns the unsubscribe function."""
        return self.workspace.subscribe(fn)

    def observe(self, request: ObserveRequest) -> ObserveReply:
        """Run one cycle on ``request`` and return the action, response and trace."""
        cyc = self.start(request)
        reply = self.complete(cyc)
        self.finish(cyc)
        return reply

    def finish(self, cyc: Cycle) -> None:
        """Hand the cycle's episode (and any STDP) to the background writer.

        A server calls this after it has sent the reply, so that the writer's work
        (validating and encoding the episode, the store request) does not compete with
        the reply for the interpreter.
        """
        for fn, args in cyc.after:
            fn(*args)
        cyc.after.clear()

    def start(self, request: ObserveRequest) -> Cycle:
        """The n-gram reflex stage (well under a millisecond); :meth:`complete` finishes.

        A server may answer a cycle whose reflex fired (``cycle.result.fired``) at once,
        on the thread that received it, and hand the others to workers that can wait for
        memory and the LLM.
        """
        cyc = Cycle(request)
        cyc.mod = self.allostasis.modulation()
        t = time.perf_counter()
        cyc.result = self.reflex.decide_fast(request.text, cyc.mod.reflex_shift)
        cyc.reflex_ms = cyc.timed("reflex", t)
        return cyc

    def complete(self, cyc: Cycle) -> ObserveReply:
        """Every stage after the n-gram reflex (see the module docstring)."""
        request, mod = cyc.request, cyc.mod
        result, stage = cyc.result, "ngrams"
        if not result.fired:
            result, stage = self._embedding_stage(cyc, result, mod.reflex_shift)
        if not result.fired:
            self._recall(cyc)
        broadcast = self._compete(cyc, result, mod.alpha_gain)
        decision = self._decide(cyc, result, mod.gamma, mod.temperature)
        policy = "reflex" if result.fired else decision.policy
        outcome = self._act(cyc, policy, result)
        if outcome.action == "clarify" and policy != "clarify":
            policy = "clarify"
        cyc.latencies["total"] = (time.perf_counter() - cyc.t0) * 1e3
        self._regulate(cyc, cyc.reflex_ms, result)
        episode = self._store(cyc, policy, outcome.response)
        if result.fired and stage == "ngrams" and self.reflex.wants_adaptation(result):
            cyc.after.append((self.episodes.background, (self.reflex.adapt, request.text, result)))
        self._record(cyc, policy, decision)
        trace = Trace.model_validate(
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
                "allostasis": self.allostasis.snapshot(),
                "gamma": mod.gamma,
                "ttft_ms": cyc.ttft_ms,
                "episode": episode,
            }
        )
        return ObserveReply.model_validate(
            {"action": outcome.action, "response": outcome.response, "trace": trace}
        )

    # -- stages ---------------------------------------------------------------------------

    def _embedding_stage(
        self, cyc: Cycle, fast: ReflexResult, shift: float
    ) -> tuple[ReflexResult, str]:
        if self.reflex.embedder is None:
            cyc.missing.append("embeddings")
            return fast, "ngrams"
        t = time.perf_counter()
        emb = self.reflex.embed(cyc.request.text)
        cyc.timed("embed", t)
        if emb is None:
            return fast, "ngrams"
        cyc.embedding = [float(v) for v in emb]
        t = time.perf_counter()
        deep = self.reflex.decide_deep(cyc.request.text, emb, shift)
        cyc.timed("reflex", t)
        merged = Reflex.merge(fast, deep)
        return merged, ("minilm" if deep is not None and merged is not fast else "ngrams")

    def _recall(self, cyc: Cycle) -> None:
        if self.memory is None:
            cyc.missing.append("memory")
            return
        t = time.perf_counter()
        try:
            cyc.hits = self.memory.recall(
                cyc.request.text, cyc.embedding, self.config.recall_k, self.config.recall_timeout_s
            )
        except PeerUnavailable as exc:
            cyc.missing.append("memory")
            cyc.notes.append(str(exc))
        finally:
            cyc.timed("recall", t)

    def _compete(self, cyc: Cycle, result: ReflexResult, alpha_gain: float) -> Broadcast:
        t = time.perf_counter()
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
            Candidate(
                f"memory:{h.episode.id}", "memory", h.episode.text[:200], max(0.0, 1.5 * h.score)
            )
            for h in cyc.hits
        ]
        cands += [Candidate(k, "goal", text, s) for k, text, s in GOALS]
        for name, value in self.allostasis.snapshot().items():
            dev = abs(value - self.allostasis.set_point(name))
            if dev > 0.05:
                cands.append(
                    Candidate(f"intero:{name}", "interoception", f"{name} {value:.2f}", 1.5 * dev)
                )
        gated = alpha_gate(cands, alpha_gain)
        cands = [
            Candidate(c.key, c.kind, c.content, c.score * f)
            for c, f in zip(cands, gated.factors, strict=True)
        ]
        broadcast = self.workspace.compete(cands, order=gated.order)
        cyc.timed("workspace", t)
        return broadcast

    def _decide(
        self, cyc: Cycle, result: ReflexResult, gamma: float, temperature: float
    ) -> agent.Decision:
        t = time.perf_counter()
        memory_known = "memory" not in cyc.missing and not result.fired
        best = max((h.score for h in cyc.hits), default=None)
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
        if cyc.hits:
            allowed.append("recall")
        if cyc.request.allow_llm:
            allowed.append("deliberate")
        sp = self.allostasis.set_point("patience")
        impatience = max(0.0, sp - self.allostasis.snapshot()["patience"]) / max(sp, 1e-6)

        def run(options: list[str]) -> agent.Decision:
            return agent.decide(
                obs,
                gamma=gamma,
                impatience=impatience,
                allowed=tuple(options),
                stochastic=self.config.stochastic,
                temperature=temperature,
            )

        decision = run(allowed)
        llm_up = self.inference is not None and self.inference.available()
        if decision.policy == "deliberate" and not llm_up and not result.fired:
            cyc.missing.append("inference")
            cyc.notes.append("deliberation was the best policy but no inference service is up")
            decision = run([p for p in allowed if p != "deliberate"])
        cyc.timed("policy", t)
        return decision

    def _act(self, cyc: Cycle, policy: str, result: ReflexResult) -> actions.Outcome:
        if policy == "reflex":
            if result.fired and result.action and result.response:
                return actions.Outcome(result.action, result.response)
            return actions.reflex_answer(result.intent)
        if policy == "recall" and cyc.hits:
            return actions.recall_answer(cyc.hits)
        if policy == "deliberate":
            return self._deliberate(cyc)
        return actions.clarify_answer(cyc.request.text)

    def _deliberate(self, cyc: Cycle) -> actions.Outcome:
        t = time.perf_counter()
        try:
            if self.inference is None:
                raise PeerUnavailable("inference", "no bus")
            msgs = actions.chat_messages(cyc.request.text, cyc.hits)
            answer = self.inference.chat(
                msgs, cyc.request.max_tokens, self.config.deliberate_timeout_s
            )
            cyc.ttft_ms = answer.ttft_ms
            if answer.text:
                return actions.Outcome("deliberate", answer.text)
            cyc.notes.append("the language model returned an empty answer")
        except PeerUnavailable as exc:
            cyc.missing.append("inference")
            cyc.notes.append(str(exc))
        finally:
            cyc.timed("deliberate", t)
        if cyc.hits:
            cyc.notes.append("answered from memory instead of deliberation")
            return actions.recall_answer(cyc.hits)
        return actions.no_llm_answer()

    # -- bookkeeping ----------------------------------------------------------------------

    def _regulate(self, cyc: Cycle, reflex_ms: float, result: ReflexResult) -> None:
        if reflex_ms > self.config.reflex_budget_ms:
            self.allostasis.event("latency", min(1.0, reflex_ms / self.config.reflex_budget_ms - 1))
        if cyc.missing:
            self.allostasis.event("failure", 0.5)
        if not result.fired and result.confidence < 0.5 * result.threshold:
            self.allostasis.event("novelty", 1.0 - result.confidence)
        if cyc.ttft_ms is not None:
            self.allostasis.event("reward", 0.5)

    def _store(self, cyc: Cycle, policy: str, response: str) -> str:
        ctx = {k: v for k, v in cyc.request.context.items()}
        ctx.update(cycle_id=str(cyc.id), policy=policy, response=response[:MAX_VALUE_CHARS])
        if len(ctx) > 64:
            ctx = dict(list(ctx.items())[-64:])
        fields = {
            "id": cyc.id,
            "text": cyc.request.text,
            "embedding": cyc.embedding,
            "context": ctx,
            "source": "cognition",
        }
        cyc.after.append((self._submit_episode, (fields,)))
        return self.episodes.status()

    def _submit_episode(self, fields: dict[str, object]) -> None:
        try:
            episode = EpisodeIn.model_validate(fields)
        except ValidationError as exc:  # the observation passed its own schema: log, go on
            log.error("cycle %s: its episode is not storable, dropped: %s", fields["id"], exc)
            self.metrics.episodes.labels("refused").inc()
            return
        self.episodes.submit(episode)

    def _record(self, cyc: Cycle, policy: str, decision: agent.Decision) -> None:
        m = self.metrics
        for stage, ms in cyc.latencies.items():
            m.child(m.stage, stage).observe(ms / 1e3)
        m.child(m.tier, TIER_OF_POLICY[policy]).inc()
        for p, g in decision.G.items():
            m.child(m.policy_g, p).set(g)
        for name in set(cyc.missing):
            m.child(m.missing, name).inc()

    def warm_up(self) -> None:
        """Run each stage's first-call work now, not in the first observations' cycles.

        Both reflex stages decide once (the embedding stage on a real MiniLM forward
        pass), and the agent's evidence is computed for every binned observation. Nothing
        is stored and the workspace is left as it was.
        """
        self.reflex.decide_fast("hello")
        emb = self.reflex.embed("hello")
        if emb is not None:
            self.reflex.decide_deep("hello", emb)
        agent.warm_up()
        self.allostasis.modulation()

    def close(self) -> None:
        """Flush pending episodes and stop background work."""
        self.episodes.close()


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
