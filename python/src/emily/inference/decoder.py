"""Continuous batching: several requests decoded together in one llama.cpp context.

Each running request owns a *slot*: a sequence id in one unified KV cache and a sampler
chain. Every :meth:`Decoder.step` builds one ``llama_batch`` holding the next token of
every generating slot and, with what room is left (``n_batch``), chunks of the prompts
still being read, decodes it once, and samples each slot from its own output row, the
way llama.cpp's server does. A slot is freed (its cache cells dropped) as soon as its
request ends, and the next request can take it on the following step.

With ``prefix_cache`` one more sequence keeps the KV cache of the last system prompt;
a request whose prompt starts with it copies those cells instead of reading them again.
Prompts are always cut at that boundary, cached or not, so the computation (and a
greedy output) is the same either way.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import llama_cpp
from llama_cpp import _internals

from emily.bus.schemas.inference import FinishReason
from emily.inference.config import InferenceConfig
from emily.inference.engine import Engine, Plan
from emily.inference.errors import InferenceError
from emily.inference.sampler import Chain, TokenLogprob, logprobs

log = logging.getLogger(__name__)


class Request(Protocol):
    """What the decoder needs from a request: its plan, a stop check and an output."""

    plan: Plan

    def should_stop(self) -> FinishReason | None:
        """``cancelled``/``timeout`` to end the request now, else ``None``."""

    def emit(self, text: str, logprobs: tuple[TokenLogprob, ...]) -> None:
        """Receive generated text and the log-probabilities of the tokens behind it."""


@dataclass
class Outcome:
    """Filled in while a generation runs: why it ended and how many tokens it made."""

    finish_reason: FinishReason = "length"
    completion_tokens: int = 0
    text: list[str] = field(default_factory=list)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that could start a stop string."""
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


@dataclass(eq=False)
class _Slot:
    seq: int
    request: Request
    chain: Chain
    n_past: int = 0
    next_token: int | None = None
    pending: str = ""
    lps: list[TokenLogprob] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    utf8: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    @property
    def plan(self) -> Plan:
        return self.request.plan


class Decoder:
    """A llama.cpp context with ``slots`` sequences decoded together.

    Parameters
    ----------
    engine : the loaded model.
    config : ``slots`` (sequences decoded together), ``n_ctx`` per slot, ``n_batch``,
        threads and ``prefix_cache``.
    """

    def __init__(self, engine: Engine, config: InferenceConfig) -> None:
        cfg = config
        self.engine = engine
        self.slots = slots = cfg.slots
        self.cache_seq = slots if cfg.prefix_cache else None
        n_seq = slots + (1 if cfg.prefix_cache else 0)
        self.n_batch = max(cfg.n_batch, slots)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = cfg.n_ctx * n_seq
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = n_seq
        params.n_threads, params.n_threads_batch = cfg.threads, cfg.threads_batch
        params.kv_unified = True  # one pool of cells: sequences may share a cached prefix
        params.no_perf = True
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as llama-cpp-python
        try:
            self._ctx = _internals.LlamaContext(model=engine.model, params=params, verbose=False)
        except ValueError as exc:
            raise InferenceError(f"llama.cpp could not create a context: {exc}") from exc
        self.ctx = self._ctx.ctx
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._free = list(range(slots - 1, -1, -1))
        self.active: list[_Slot] = []
        self.cached: tuple[int, ...] = ()
        self.prefix_hits = 0

    @property
    def free(self) -> int:
        """Slots free now."""
        return len(self._free)

    def admit(self, request: Request) -> None:
        """Start ``request`` in a free slot (the caller checks :attr:`free` first)."""
        plan = request.plan
        slot = _Slot(self._free.pop(), request, Chain(self.engine.vocab, self.engine.n_vocab, plan))
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        k = plan.prefix_len
        if (
            self.cache_seq is not None
            and 0 < k < len(plan.tokens)
            and plan.tokens[:k] == self.cached
        ):
            llama_cpp.llama_memory_seq_cp(self.mem, self.cache_seq, slot.seq, 0, k)
            slot.n_past = k
            self.prefix_hits += 1
        self.active.append(slot)

    def step(self) -> list[tuple[Request, Outcome]]:
        """Decode one batch; returns the requests that ended, with their outcomes."""
        done: list[tuple[Request, Outcome]] = []
        for slot in list(self.active):
            reason = slot.request.should_stop()
            if reason is not None:
                slot.outcome.finish_reason = reason
                done.append(self._release(slot))
        b, n, rows = self.batch, 0, []
        to_cache: list[_Slot] = []

        def put(token: int, pos: int, seq: int, output: bool) -> None:
            nonlocal n
            b.token[n], b.pos[n], b.n_seq_id[n] = token, pos, 1
            b.seq_id[n][0], b.logits[n] = seq, output
            n += 1

        for slot in self.active:
            if slot.next_token is not None:
                rows.append((slot, n))
                put(slot.next_token, slot.n_past, slot.seq, True)
                slot.n_past += 1
        for slot in self.active:
            tokens, k = slot.plan.tokens, slot.plan.prefix_len
            if slot.next_token is not None or slot.n_past >= len(tokens) or n >= self.n_batch:
                continue
            end = k if slot.n_past < k < len(tokens) else len(tokens)
            take = min(self.n_batch - n, end - slot.n_past)
            for i in range(slot.n_past, slot.n_past + take):
                last = i == len(tokens) - 1
                if last:
                    rows.append((slot, n))
                put(tokens[i], i, slot.seq, last)
            slot.n_past += take
            if self.cache_seq is not None and slot.n_past == k and tokens[:k] != self.cached:
                to_cache.append(slot)
        if n == 0:
            return done
        b.n_tokens = n
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            raise InferenceError(f"llama_decode failed with status {rc}")
        for slot in to_cache[:1]:  # the latest system prompt replaces the cached one
            k = slot.plan.prefix_len
            assert self.cache_seq is not None
            llama_cpp.llama_memory_seq_rm(self.mem, self.cache_seq, -1, -1)
            llama_cpp.llama_memory_seq_cp(self.mem, slot.seq, self.cache_seq, 0, k)
            self.cached = slot.plan.tokens[:k]
        for slot, row in rows:
            if self._accept(slot, row):
                done.append(self._release(slot))
        return done

    def _accept(self, slot: _Slot, row: int) -> bool:
        """Sample ``slot``'s next token from ``row``; ``True`` when the request has ended."""
        plan, out, eng = slot.plan, slot.outcome, self.engine
        token = slot.chain.sample(self.ctx, row)
        slot.next_token = token
        if not plan.ignore_eos and eng.is_eog(token):
            out.finish_reason = "stop"
            return True
        n_top = plan.extras.logprobs
        if n_top is not None:
            slot.lps.append(logprobs(self.ctx, row, eng.n_vocab, token, n_top))
        out.completion_tokens += 1
        before = len(slot.pending)
        slot.pending += slot.utf8.decode(eng.piece(token))
        hit = min((slot.pending.find(s) for s in plan.stop if s in slot.pending), default=-1)
        if hit >= 0:
            if hit <= before and slot.lps:
                slot.lps.pop()  # a token that is all stop string is not part of the answer
            slot.pending = slot.pending[:hit]
            out.finish_reason = "stop"
            return True
        keep = _held_back(slot.pending, plan.stop)
        ready = slot.pending[: len(slot.pending) - keep]
        if ready:
            slot.pending = slot.pending[len(ready) :]
            self._emit(slot, ready)
        if out.completion_tokens >= plan.max_tokens:
            out.finish_reason = "length"
            return True
        return False

    def _emit(self, slot: _Slot, text: str) -> None:
        slot.outcome.text.append(text)
        lps, slot.lps = tuple(slot.lps), []
        slot.request.emit(text, lps)

    def _release(self, slot: _Slot) -> tuple[Request, Outcome]:
        slot.pending += slot.utf8.decode(b"", final=True)
        if slot.pending or slot.lps:  # held-back text that never became a stop string
            self._emit(slot, slot.pending)
        slot.chain.close()
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        self.active.remove(slot)
        self._free.append(slot.seq)
        return slot.request, slot.outcome

    def cancel_all(self, reason: FinishReason) -> list[tuple[Request, Outcome]]:
        """End every running request with ``reason`` (shutdown)."""
        done = []
        for slot in list(self.active):
            slot.outcome.finish_reason = reason
            done.append(self._release(slot))
        return done

    def close(self) -> None:
        """Free the batch and the context."""
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        self._ctx.close()  # type: ignore[no-untyped-call]
