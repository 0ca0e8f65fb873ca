"""Carrying out a cycle's policy: the reply text, from the reflex, memory or the LLM.

A statement is acknowledged. A question with something recalled is answered from the
user's current facts and statements: composed by the LLM when it may be used and is up
(its answer must use the best current fact and not parrot the question), else from the
template (:mod:`emily.cognition.dialogue.answer`). A deliberation asks the LLM over the
bus within ``deliberate_timeout_s``; anything else clarifies.
"""

from __future__ import annotations

import time

from emily.bus.schemas.inference import ChatMessage
from emily.cognition import actions
from emily.cognition.clients import InferenceClient, PeerUnavailable
from emily.cognition.dialogue import answer
from emily.cognition.record import Cycle
from emily.cognition.reflex import ReflexResult


class Responder:
    """Turns a cycle's policy into its action and response text.

    Parameters
    ----------
    inference : the inference client, or ``None`` without a bus (the LLM is missing).
    deliberate_timeout_s : deadline of one LLM answer (s).
    """

    def __init__(self, inference: InferenceClient | None, deliberate_timeout_s: float) -> None:
        self.inference = inference
        self.deliberate_timeout_s = deliberate_timeout_s

    def llm_up(self) -> bool:
        """Whether an inference service is on the bus now."""
        return self.inference is not None and self.inference.available()

    def act(self, cyc: Cycle, policy: str, result: ReflexResult) -> actions.Outcome:
        """The action and response of ``cyc`` under ``policy`` (see the module docstring)."""
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
        if req.allow_llm and (self.llm_up() or policy == "deliberate"):
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
            reply = self.inference.chat(msgs, cyc.request.max_tokens, self.deliberate_timeout_s)
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
