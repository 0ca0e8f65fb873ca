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

The user's turn is classified as a statement, question or command
(:mod:`emily.cognition.dialogue.acts`, on the embedding already computed). A statement
is acknowledged; a question is answered from the user's current facts and statements
only (:mod:`emily.cognition.dialogue.answer`), never with a remembered question; a
command goes to the reflex, the LLM or a clarifying question. Every cycle stores two
episodes, the user's turn and the assistant's answer linked to it, both in the request's
user scope and session: they are written to the durable outbox before the reply is
returned, and sent to memory in the background after it. It returns a full trace.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import ValidationError

from emily.bus.messages import ErrorReply
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.cognition import (
    FactUsed,
    MemoryUsed,
    ObserveReply,
    ObserveRequest,
    Trace,
    WorkspaceItem,
)
from emily.bus.schemas.facts import Fact
from emily.bus.schemas.inference import ChatMessage
from emily.bus.schemas.memory import EpisodeIn, Hit
from emily.cognition import actions, agent, learning
from emily.cognition.allostasis import Allostasis, Modulation
from emily.cognition.clients import InferenceClient, MemoryClient, PeerUnavailable
from emily.cognition.config import CognitionConfig
from emily.cognition.dialogue import answer, turns
from emily.cognition.dialogue.acts import LazyActs
from emily.cognition.episodes import EpisodeWriter
from emily.cognition.gating import alpha_gate
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.reflex import Reflex, ReflexResult
from emily.cognition.spikes import ReflexSpikes
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
#: Reflex intents that answer even a question about the user's own things.
REFLEX_KEEPS = frozenset({"time", "help"})
#: Memory evidence a current fact matching the question counts as (a cosine-like score).
FACT_EVIDENCE = 0.8


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
    facts: list[Fact] = field(default_factory=list)
    cited: list[uuid.UUID] = field(default_factory=list)
    act: str = "statement"
    told: bool = False
    answer_id: uuid.UUID = field(default_factory=uuid7)
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
    acts : the dialogue-act classifier; trained on first use from the reflex's MiniLM
        (not cached on disk) when ``None``.
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
        learner: learning.Learner | None = None,
        acts: LazyActs | None = None,
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
            timeout_max_s=self.config.store_timeout_max_s,
            batch=self.config.store_batch,
            backoff_s=self.config.store_backoff_s,
            backoff_max_s=self.config.store_backoff_max_s,
            sync=self.config.outbox_sync,
        )
        self._last_broadcast: dict[int, uuid.UUID] = {}
        self.acts = acts or LazyActs(reflex.embedder)
        self._lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="facts")
        self.learner = learner or learning.Learner()
        self.spikes = ReflexSpikes(self.metrics.neural)

    def subscribe(self, fn: Callable[[Broadcast], None]) -> Callable[[], None]:
        """Receive every workspace broadcast in-process; returns the unsubscribe function."""
        return self.workspace.subscribe(fn)

    def observe(self, request: ObserveRequest) -> ObserveReply:
        """Run one cycle on ``request`` and return the action, response and trace.

        An observation with feedback and no text goes to :meth:`feedback` instead."""
        if turns.feedback_only(request):
            return self.feedback(request)
        cyc = self.start(request)
        reply = self.complete(cyc)
        self.finish(cyc)
        return reply

    def feedback(self, request: ObserveRequest) -> ObserveReply:
        """Learn from a feedback-only observation (``feedback`` set, no text); no cycle
        runs. Feedback about no remembered cycle is a ``not_found`` error."""
        t = time.perf_counter()
        try:
            learned = self.learner.feedback(request)
        except learning.UnknownCycleError as exc:
            raise RequestFailed(ErrorReply(code="not_found", message=str(exc))) from exc
        if learned is None:
            raise RequestFailed(ErrorReply(code="bad_request", message="no feedback given"))
        if learned.weight:
            self.learner.save()
            self.metrics.child(self.metrics.learned, learned.source).inc()
        return learning.feedback_reply(
            learned,
            self.learner,
            self.allostasis.snapshot(),
            self.allostasis.modulation().gamma,
            (time.perf_counter() - t) * 1e3,
        )

    def _learn(self, cyc: Cycle) -> None:
        """Outcomes this turn reports about earlier answers (see :mod:`.learning`)."""
        learned = [self.learner.implicit(cyc.request)]
        try:
            learned.append(self.learner.feedback(cyc.request))
        except learning.UnknownCycleError as exc:
            cyc.notes.append(str(exc))
        for item in learned:
            if item is not None and item.weight:
                self.metrics.child(self.metrics.learned, item.source).inc()
                cyc.notes.append(f"learned from {item.source}: {item.policy} in {item.cycle_id}")
                cyc.after.append((self.episodes.background, (self.learner.save,)))

    def finish(self, cyc: Cycle) -> None:
        """Have the cycle's episodes (already in the outbox) sent to memory, and run its
        other deferred work (STDP, spike counts, saving what was learned).

        A server calls this after it has sent the reply, so that this work (the store
        request, waiting for room while memory is behind) does not delay the reply.
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
        result, stage = self._veto(cyc, cyc.result), "ngrams"
        if not result.fired:
            result, stage = self._embedding_stage(cyc, result, mod.reflex_shift)
            result = self._veto(cyc, result)
        self._classify(cyc)
        if not result.fired:
            self._recall(cyc)
        self._learn(cyc)
        cyc.after.append((self.spikes.record, (result,)))
        broadcast = self._compete(cyc, result, mod.alpha_gain)
        decision = self._decide(cyc, result, mod.gamma, mod.temperature)
        policy = "reflex" if result.fired else decision.policy
        outcome = self._act(cyc, policy, result)
        if outcome.action == "clarify" and policy != "clarify":
            policy = "clarify"
        episode = self._store(cyc, policy, outcome.response)
        cyc.latencies["total"] = (time.perf_counter() - cyc.t0) * 1e3
        self._regulate(cyc, cyc.reflex_ms, result)
        if result.fired and stage == "ngrams" and self.reflex.wants_adaptation(result):
            cyc.after.append((self.episodes.background, (self.reflex.adapt, request.text, result)))
        self._record(cyc, policy, decision)
        asked = learning.digest(request.text) if policy == "clarify" else ""
        credit = learning.Credit(policy, tuple(decision.need.values()), asked)
        self.learner.credit(cyc.id, request, credit)
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
                "learning": self.learner.snapshot(),
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

    def _veto(self, cyc: Cycle, result: ReflexResult) -> ReflexResult:
        """A question about the user's own things ("who is my employer?") is memory's to
        answer, not a canned reflex reply's (identity, compliment, today's date for
        "when is my birthday?"); safety, time and help replies stand."""
        text = cyc.request.text
        if (
            not result.fired
            or result.intent.startswith("safety")
            or result.intent in REFLEX_KEEPS
            or not answer.about_the_user(text)
            or self.acts.get().classify(text).act != "question"
        ):
            return result
        cyc.notes.append(
            f"a question about the user: memory answers it, not the {result.intent} reflex"
        )
        return replace(result, intent="oos", fired=False, action=None, response=None)

    def _classify(self, cyc: Cycle) -> None:
        t = time.perf_counter()
        cyc.act = self.acts.get().classify(cyc.request.text, cyc.embedding).act
        cyc.told = cyc.act == "question" and answer.asks_what_i_said(cyc.request.text)
        cyc.timed("reflex", t)

    def _asking(self, text: str) -> bool:
        """Whether ``text`` is a question or command by its words (a stored turn's check)."""
        return self.acts.get().classify(text).act != "statement"

    def _recall(self, cyc: Cycle) -> None:
        """The user's statements (the assistant's answers for "what did you tell me"),
        and for a question the user's current facts, looked up at the same time."""
        memory = self.memory
        if memory is None:
            cyc.missing.append("memory")
            return
        t = time.perf_counter()
        req, cfg = cyc.request, self.config
        facts: Future[list[Fact]] | None = None
        if cyc.act == "question" and not cyc.told and memory.available():
            args = (req.text, req.user, cfg.facts_k, cfg.recall_timeout_s)
            facts = self._lookups.submit(memory.facts, *args)
        try:
            hits = memory.recall(
                req.text,
                cyc.embedding,
                cfg.recall_k,
                cfg.recall_timeout_s,
                user=req.user,
                filters=turns.recall_filters(cyc.told, cyc.act),
                search=cfg.recall_search,
            )
            if cyc.act == "question":  # hits it may be answered from
                cyc.hits = answer.usable(hits, self._asking, "assistant" if cyc.told else "user")
            else:  # context for the workspace and the LLM
                cyc.hits = [h for h in hits if h.episode.act != "question"]
        except PeerUnavailable as exc:
            cyc.missing.append("memory")
            cyc.notes.append(str(exc))
        if facts is not None:
            try:
                cyc.facts = answer.current(facts.result())
            except PeerUnavailable as exc:
                cyc.notes.append(str(exc))
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
                success=self.learner.success(),
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
        if cyc.act == "statement":
            return actions.acknowledge()
        if cyc.act == "question" and policy in ("recall", "deliberate") and (cyc.hits or cyc.facts):
            return self._answer(cyc, policy)
        if policy == "deliberate":
            text = self._chat(cyc, actions.chat_messages(cyc.request.text, cyc.hits))
            if text is not None:
                return actions.Outcome("deliberate", text)
            return actions.no_llm_answer()
        if cyc.act == "question":  # nothing to answer from: say so, do not quote it back
            return actions.Outcome("clarify", answer.template_answer([], [], cyc.told).text)
        return actions.clarify_answer(cyc.request.text)

    def _answer(self, cyc: Cycle, policy: str) -> actions.Outcome:
        """A question answered from facts and statements: composed by the LLM when it is
        allowed and up (it must use the best current fact and not parrot the question),
        else the plain template."""
        req = cyc.request
        llm_up = self.inference is not None and self.inference.available()
        if req.allow_llm and (llm_up or policy == "deliberate"):
            msgs, ids = answer.compose_messages(req.text, cyc.facts, cyc.hits, cyc.told)
            text = self._chat(cyc, msgs)
            if text is not None and not answer.parrots(text, req.text):
                if answer.uses_fact(text, cyc.facts):
                    cyc.cited = ids
                    return actions.Outcome(policy, text)
                cyc.notes.append("the model's answer left out the current fact: answered from it")
            elif text is not None:
                cyc.notes.append("the model repeated the question: answered from memory")
        composed = answer.template_answer(cyc.facts, cyc.hits, cyc.told)
        cyc.cited = composed.cited
        return actions.Outcome("clarify" if composed.kind == "unknown" else "recall", composed.text)

    def _chat(self, cyc: Cycle, msgs: list[ChatMessage]) -> str | None:
        """The LLM's answer to ``msgs``, or ``None`` (and the reason in the trace)."""
        t = time.perf_counter()
        try:
            if self.inference is None:
                raise PeerUnavailable("inference", "no bus")
            reply = self.inference.chat(
                msgs, cyc.request.max_tokens, self.config.deliberate_timeout_s
            )
            cyc.ttft_ms = reply.ttft_ms
            if reply.text:
                return reply.text
            cyc.notes.append("the language model returned an empty answer")
        except PeerUnavailable as exc:
            cyc.missing.append("inference")
            cyc.notes.append(str(exc))
        finally:
            cyc.timed("deliberate", t)
        return None

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
        """Keep the user's turn and the assistant's answer (in that order) in the outbox
        now, before the reply leaves, so a turn the user saw answered survives cognition
        dying right after; memory gets them in the background once the reply is out."""
        if self.episodes.status() == "skipped":
            return "skipped"
        user = turns.user_turn(cyc.id, cyc.request, cyc.act, cyc.embedding, policy, response)
        reply = turns.assistant_turn(cyc.answer_id, cyc.id, cyc.request, response, policy)
        kept = [e for e in (self._storable(user), self._storable(reply)) if e is not None]
        status = self.episodes.keep(kept)
        cyc.after.append((self.episodes.deliver, ()))
        return status

    def _storable(self, fields: dict[str, object]) -> EpisodeIn | None:
        try:
            return EpisodeIn.model_validate(fields)
        except ValidationError as exc:  # the observation passed its own schema: log, go on
            log.error("cycle %s: its episode is not storable, dropped: %s", fields["id"], exc)
            self.metrics.episodes.labels("refused").inc()
            return None

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
        pass), the dialogue-act classifier is trained or loaded, and the agent's evidence
        is computed for every binned observation. Nothing
        is stored and the workspace is left as it was.
        """
        self.reflex.decide_fast("hello")
        emb = self.reflex.embed("hello")
        if emb is not None:
            self.reflex.decide_deep("hello", emb)
        self.acts.get().classify("hello", emb)
        agent.warm_up()
        self.allostasis.modulation()

    def close(self) -> None:
        """Flush pending episodes and spike counts, and stop background work."""
        self.spikes.flush()
        self._lookups.shutdown(wait=True)
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
