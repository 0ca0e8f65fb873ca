"""Per-request sampler chains (llama.cpp's own samplers) and token log-probabilities.

The chain mirrors llama-cpp-python's: logit bias, penalties, grammar, then greedy at
temperature 0 or top-k, top-p, min-p, temperature and a seeded draw. The grammar comes
before any truncation so that it always sees every candidate.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import llama_cpp
import numpy as np

from emily.inference.errors import BadRequest

if TYPE_CHECKING:
    from emily.inference.engine import Plan

PENALTY_LAST_N = 64  # tokens the penalties look back over, as llama-cpp-python's default


def check_grammar(vocab: Any, grammar: str) -> None:
    """Raise :class:`BadRequest` unless llama.cpp parses ``grammar`` (GBNF, root ``root``)."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        raise BadRequest("the grammar derived from the request does not parse; simplify it")
    llama_cpp.llama_sampler_free(sampler)


class Chain:
    """One request's sampler chain; :meth:`close` frees it (also on garbage collection)."""

    def __init__(self, vocab: Any, n_vocab: int, plan: Plan) -> None:
        self.ptr = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        s, x = plan.sampling, plan.extras
        add = self._add
        if x.logit_bias:
            bias = (llama_cpp.llama_logit_bias * len(x.logit_bias))()
            for i, (token, value) in enumerate(x.logit_bias.items()):
                bias[i].token = llama_cpp.llama_token(token)
                bias[i].bias = value
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(x.logit_bias), bias))
        repeat = float(s["repeat_penalty"])
        if repeat != 1.0 or x.presence_penalty or x.frequency_penalty:
            add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, PENALTY_LAST_N, repeat, x.frequency_penalty, x.presence_penalty
                )
            )
        if x.grammar is not None:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, x.grammar.encode(), b"root")
            if not grammar:
                self.close()
                raise BadRequest("the grammar derived from the request does not parse")
            add(grammar)
        temp = float(s["temp"])
        if temp <= 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(int(s["top_k"])))
            add(llama_cpp.llama_sampler_init_top_p(float(s["top_p"]), 1))
            add(llama_cpp.llama_sampler_init_min_p(float(s["min_p"]), 1))
            add(llama_cpp.llama_sampler_init_temp(temp))
            seed = plan.seed if plan.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
            add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(self.ptr, sampler)

    def sample(self, ctx: Any, index: int) -> int:
        """Draw (and accept) the next token from output row ``index`` of the last decode."""
        return int(llama_cpp.llama_sampler_sample(self.ptr, ctx, index))

    def close(self) -> None:
        """Free the chain and the samplers in it."""
        if self.ptr:
            llama_cpp.llama_sampler_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:
        self.close()


@dataclass(frozen=True)
class TokenLogprob:
    """The chosen token's log-probability (natural log) and the most likely alternatives.

    Attributes
    ----------
    token : the chosen token id.
    logprob : its log-probability under the model's distribution (before sampling).
    top : ``(token id, logprob)`` of the most likely tokens, best first; shape (n_top,).
    """

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


def logprobs(ctx: Any, index: int, n_vocab: int, token: int, n_top: int) -> TokenLogprob:
    """Log-softmax of output row ``index``: ``token``'s value and the ``n_top`` best."""
    row = llama_cpp.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(ctypes.cast(row, ctypes.POINTER(ctypes.c_float)), (n_vocab,))
    z = logits.astype(np.float64)
    z -= z.max()
    z -= np.log(np.exp(z).sum())
    top: tuple[tuple[int, float], ...] = ()
    if n_top:
        best = np.argpartition(-z, n_top)[:n_top]
        best = best[np.argsort(-z[best])]
        top = tuple((int(t), float(z[t])) for t in best)
    return TokenLogprob(token, float(z[token]), top)
