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

Each stage that is more than a few lines lives in a module of its own: recall
(:mod:`.recall`), the workspace's candidates and the policy (:mod:`.policy`), the reply
(:mod:`.responding`) and the trace (:mod:`.trace`); this module runs them in order, and
:class:`~emily.cognition.record.Cycle` carries what one cycle found from stage to stage.

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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from emily.bus.messages import ErrorReply
from emily.bus.rpc import RequestFailed
from emily.bus.schemas.cognition import ObserveReply, ObserveRequest
from emily.bus.schemas.memory import EpisodeIn
from emily.cognition import agent, learning
from emily.cognition.allostasis import Allostasis
from emily.cognition.clients import InferenceClient, MemoryClient
from emily.cognition.config import CognitionConfig
from emily.cognition.dialogue import answer, turns
from emily.cognition.dialogue.acts import LazyActs
from emily.cognition.episodes import EpisodeWriter
from emily.cognition.metrics import CognitionMetrics
from emily.cognition.policy import candidates, decide
from emily.cognition.recall import Recall
from emily.cognition.record import Cycle
from emily.cognition.reflex import Reflex, ReflexResult
from emily.cognition.responding import Responder
from emily.cognition.spikes import ReflexSpikes
from emily.cognition.trace import TIER_OF_POLICY, build_trace
from emily.cognition.workspace import Broadcast, GlobalWorkspace, WorkspaceConfig

log = logging.getLogger(__name__)

#: Reflex intents that answer even a question about the user's own things.
REFLEX_KEEPS = frozenset({"time", "help"})


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
        self.acts = acts or LazyActs(reflex.embedder)
        self.recall = Recall(memory, self.config, self.acts)
        self.responder = Responder(inference, self.config.deliberate_timeout_s)
        self.learner = learner or learning.Learner()
        self.spikes = ReflexSpikes(self.metrics.neural)

    def subscribe(self, fn: Callable[[Broadcast], None]) -> Callable[[], None]:
        """Receive every workspace broadcast in-process; returns the unsubscribe function."""
        return self.workspace.subscribe(fn)

    def observe(self, request: ObserveRequest) -> ObserveReply:
        """Run one cycle on ``request`` and return the action, response and trace.

        An observation with feedback and no text goes to :meth:`feedback` instead."""
        reply, after = self.answer(request)
        after()
        return reply

    def answer(self, request: ObserveRequest) -> tuple[ObserveReply, Callable[[], None]]:
        """Run one cycle up to its reply: ``(reply, after)``, where ``after`` runs the
        cycle's deferred work (:meth:`finish`). A server sends the reply, then calls it.
        """
        if turns.feedback_only(request):
            return self.feedback(request), lambda: None
        cyc = self.start(request)
        reply = self.complete(cyc)
        return reply, lambda: self.finish(cyc)

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
            self.recall(cyc)
        self._learn(cyc)
        cyc.after.append((self.spikes.record, (result,)))
        broadcast = self._compete(cyc, result, mod.alpha_gain)
        decision = self._decide(cyc, result, mod.gamma, mod.temperature)
        policy = "reflex" if result.fired else decision.policy
        outcome = self.responder.act(cyc, policy, result)
        forced = outcome.action == "clarify" and policy != "clarify"  # a fallback
        if forced:
            policy = "clarify"
        episode = self._store(cyc, policy, outcome.response)
        cyc.latencies["total"] = (time.perf_counter() - cyc.t0) * 1e3
        self._regulate(cyc, cyc.reflex_ms, result)
        if result.fired and stage == "ngrams" and self.reflex.wants_adaptation(result):
            cyc.after.append((self.episodes.background, (self.reflex.adapt, request.text, result)))
        self._record(cyc, policy, decision)
        asked = learning.digest(request.text) if policy == "clarify" else ""
        # what a missing service or a failed step made the agent say is no evidence about
        # its policies: the user who replies to "my language model is unavailable" has
        # not shown that asking helps, and crediting it once taught the agent to ask
        # where it should deliberate, from then on
        chosen = not (forced or cyc.substitute)
        if not chosen:
            cyc.notes.append("a fallback answer: its outcome is not credited to any policy")
        credit = learning.Credit(policy, tuple(decision.need.values()), asked, chosen=chosen)
        self.learner.credit(cyc.id, request, credit)
        trace = build_trace(
            cyc,
            policy=policy,
            result=result,
            stage=stage,
            broadcast=broadcast,
            decision=decision,
            episode=episode,
            allostasis=self.allostasis.snapshot(),
            learning=self.learner.snapshot(),
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

    def _compete(self, cyc: Cycle, result: ReflexResult, alpha_gain: float) -> Broadcast:
        t = time.perf_counter()
        cands, order = candidates(cyc, result, self.allostasis, alpha_gain)
        broadcast = self.workspace.compete(cands, order=order)
        cyc.timed("workspace", t)
        return broadcast

    def _decide(
        self, cyc: Cycle, result: ReflexResult, gamma: float, temperature: float
    ) -> agent.Decision:
        t = time.perf_counter()
        decision = decide(
            cyc,
            result,
            gamma=gamma,
            temperature=temperature,
            allostasis=self.allostasis,
            learner=self.learner,
            llm_up=self.responder.llm_up,
            stochastic=self.config.stochastic,
        )
        cyc.timed("policy", t)
        return decision

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
        self.recall.close()
        self.episodes.close()
