"""One ``llama_cpp.Llama`` instance: request planning (validation) and token streaming.

``llama_cpp.Llama`` is not thread-safe: whoever generates holds :attr:`Engine.lock` (the
scheduler does, per request). Planning (tokenising the prompt against the context
limit) only reads the vocabulary and may run on any thread.
"""

from __future__ import annotations

import codecs
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp

from emily.bus.schemas.inference import ChatMessage, FinishReason, Sampling
from emily.inference.backend import BackendInfo, detect
from emily.inference.config import InferenceConfig
from emily.inference.errors import BadRequest, ModelLoadError, ModelNotFound
from emily.inference.prompt import ChatFormat, Prompt, TemplateFormatter, render_fewshot

log = logging.getLogger(__name__)
StopCheck = Callable[[], FinishReason | None]


@dataclass(frozen=True)
class Plan:
    """A validated request, ready to run.

    Attributes
    ----------
    tokens : prompt tokens, BOS included; shape (n_prompt,).
    max_tokens : most tokens to generate.
    stop : stop strings.
    sampling : keyword arguments of ``Llama.generate``.
    seed : RNG seed, or ``None`` for a random one.
    ignore_eos : keep going past end-of-generation tokens.
    """

    tokens: tuple[int, ...]
    max_tokens: int
    stop: tuple[str, ...]
    sampling: dict[str, float | int]
    seed: int | None = None
    ignore_eos: bool = False


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


class Engine:
    """A loaded GGUF model with the service's defaults.

    Parameters
    ----------
    config : the ``[inference]`` settings.
    model_path : the GGUF file to load.
    """

    def __init__(self, config: InferenceConfig, model_path: Path) -> None:
        if not model_path.is_file():
            raise ModelLoadError(
                f"model file {model_path} does not exist; set [inference] model_path or "
                "fetch one with `emily model pull URL --sha256 HEX`"
            )
        self.config = config
        self.path = model_path
        self.lock = threading.Lock()
        self.name = config.model_name or model_path.stem
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=config.n_ctx,
                n_gpu_layers=config.n_gpu_layers,
                n_threads=config.threads,
                n_threads_batch=config.threads_batch,
                n_batch=config.n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.backend: BackendInfo = detect(config.n_gpu_layers)
        if config.n_gpu_layers != 0 and self.backend.backend == "cpu":
            log.warning(
                "n_gpu_layers=%d but this llama.cpp build cannot offload: running on the CPU. "
                'Reinstall with CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall '
                "--no-binary llama-cpp-python llama-cpp-python (or use the Nix CUDA build)",
                config.n_gpu_layers,
            )
        self.chat_format, self._template = self._chat_format()
        log.info(
            "loaded %s (%s) on %s, %d threads, n_ctx=%d, chat format %s",
            self.name,
            model_path,
            self.backend.describe(),
            config.threads,
            config.n_ctx,
            self.chat_format,
        )

    def _chat_format(self) -> tuple[ChatFormat, TemplateFormatter | None]:
        template = self.llm.metadata.get("tokenizer.chat_template")
        wanted = self.config.chat_format
        if self.config.chat_template_file is not None:
            try:
                template = self.config.chat_template_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ModelLoadError(
                    f"[inference] chat_template_file cannot be read: {exc}; fix the path"
                ) from exc
        if wanted == "template" and not template:
            raise ModelLoadError(
                f"{self.path} has no chat template; set [inference] chat_format = 'fewshot'"
            )
        if template and wanted != "fewshot":
            vocab = self.llm._model
            bos = vocab.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
            eos = vocab.token_get_text(self.llm.token_eos()) if self.llm.token_eos() >= 0 else ""
            return "template", TemplateFormatter(template, bos, eos)
        return "fewshot", None

    def check_model(self, requested: str | None) -> None:
        """Raise :class:`ModelNotFound` unless ``requested`` is ``None`` or this model's name."""
        if requested is not None and requested not in (self.name, self.path.name):
            raise ModelNotFound(
                f"model {requested!r} is not served here; this service serves {self.name!r} "
                "(see /v1/models)"
            )

    def chat_prompt(self, messages: Sequence[ChatMessage]) -> Prompt:
        """Render a conversation with the template or the few-shot format."""
        return self._template(messages) if self._template else render_fewshot(messages)

    def plan(self, prompt: str, sampling: Sampling, *, extra_stop: Sequence[str] = ()) -> Plan:
        """Validate a request against the context and merge it with the defaults.

        Raises
        ------
        BadRequest
            If prompt tokens plus ``max_tokens`` exceed the context (the message gives
            both counts), or the prompt is empty after tokenising.
        """
        cfg = self.config
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        max_tokens = sampling.max_tokens or cfg.max_tokens
        if len(tokens) + max_tokens > cfg.n_ctx:
            raise BadRequest(
                f"prompt is {len(tokens)} tokens and max_tokens is {max_tokens}: together "
                f"they exceed the context of {cfg.n_ctx} tokens; shorten the prompt or "
                "lower max_tokens"
            )

        def pick(value: float | int | None, default: float | int) -> float | int:
            return default if value is None else value

        return Plan(
            tokens=tuple(tokens),
            max_tokens=max_tokens,
            stop=tuple(s for s in (*sampling.stop, *extra_stop) if s),
            sampling={
                "temp": pick(sampling.temperature, cfg.temperature),
                "top_p": pick(sampling.top_p, cfg.top_p),
                "top_k": pick(sampling.top_k, cfg.top_k),
                "min_p": pick(sampling.min_p, cfg.min_p),
                "repeat_penalty": pick(sampling.repeat_penalty, cfg.repeat_penalty),
            },
            seed=sampling.seed,
            ignore_eos=sampling.ignore_eos,
        )

    def generate(self, plan: Plan, outcome: Outcome, should_stop: StopCheck) -> Iterator[str]:
        """Yield the generated text piece by piece; fill ``outcome`` as it goes.

        ``should_stop`` is asked before each token; a non-``None`` answer (``cancelled``,
        ``timeout``) ends the generation with that finish reason. Text that could be the
        start of a stop string is held back until it is known not to be one.
        """
        llm = self.llm
        # A fresh KV cache per request: reusing a prefix of the previous request's cache
        # (llama-cpp-python's default) changes greedy outputs of sliding-window models
        # such as Gemma 3, so an answer would depend on who asked before.
        llm.reset()  # type: ignore[no-untyped-call]
        llm.set_seed(plan.seed if plan.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        outcome.finish_reason = "length"
        gen = llm.generate(list(plan.tokens), **plan.sampling)  # type: ignore[arg-type]
        try:
            for token in gen:
                reason = should_stop()
                if reason is not None:
                    outcome.finish_reason = reason
                    break
                if not plan.ignore_eos and llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    outcome.finish_reason = "stop"
                    break
                outcome.completion_tokens += 1
                pending += decoder.decode(llm._model.detokenize([token]))
                hit = min((pending.find(s) for s in plan.stop if s in pending), default=-1)
                if hit >= 0:
                    pending = pending[:hit]
                    outcome.finish_reason = "stop"
                    break
                keep = _held_back(pending, plan.stop)
                ready, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                if ready:
                    outcome.text.append(ready)
                    yield ready
                if outcome.completion_tokens >= plan.max_tokens:
                    break
        finally:
            gen.close()
        pending += decoder.decode(b"", final=True)
        if pending:  # held-back text that never became a stop string, or text before one
            outcome.text.append(pending)
            yield pending
