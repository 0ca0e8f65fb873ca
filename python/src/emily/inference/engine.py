"""The loaded model: request planning (validation, tokenising) and the service's defaults.

The weights are one ``llama_model``; decoding happens in contexts made from it
(:mod:`emily.inference.decoder`), so several schedulers may share one engine. Planning
only reads the vocabulary and may run on any thread.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
from llama_cpp import _internals, _logger

from emily.bus.schemas.inference import ChatMessage, Sampling
from emily.inference.backend import BackendInfo, detect
from emily.inference.config import InferenceConfig
from emily.inference.errors import BadRequest, ModelLoadError, ModelNotFound
from emily.inference.prompt import ChatFormat, Prompt, TemplateFormatter, render_fewshot
from emily.inference.sampler import check_grammar
from emily.llamacpp import extra_buffers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extras:
    """What the OpenAI API asks beyond the bus contract's sampling fields.

    Attributes
    ----------
    grammar : GBNF the output must match (structured output, tool calls).
    logprobs : ``None`` for none, else how many top alternatives to report per token
        (0..20; 0 reports only the chosen token's log-probability).
    presence_penalty, frequency_penalty : OpenAI's penalties (-2..2), over the last 64
        tokens.
    logit_bias : token id -> bias added to its logit (-100..100).
    """

    grammar: str | None = None
    logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A validated request, ready to run.

    Attributes
    ----------
    tokens : prompt tokens, BOS included; shape (n_prompt,).
    max_tokens : most tokens to generate.
    stop : stop strings.
    sampling : ``temp``, ``top_p``, ``top_k``, ``min_p``, ``repeat_penalty``.
    seed : RNG seed, or ``None`` for a random one.
    ignore_eos : keep going past end-of-generation tokens.
    extras : grammar, logprobs, penalties and logit bias.
    prefix_len : leading tokens that depend only on the system message (cacheable).
    """

    tokens: tuple[int, ...]
    max_tokens: int
    stop: tuple[str, ...]
    sampling: dict[str, float | int]
    seed: int | None = None
    ignore_eos: bool = False
    extras: Extras = field(default_factory=Extras)
    prefix_len: int = 0


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
                "fetch one with `emily model pull ORG/REPO/FILE.gguf`"
            )
        self.config = config
        self.path = model_path
        self.name = config.model_name or model_path.stem
        _logger.set_verbose(False)  # llama.cpp's own log lines only for errors
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if config.n_gpu_layers < 0 else config.n_gpu_layers
        self.extra_buffers = extra_buffers(config.cpu_amx)
        params.use_extra_bufts = self.extra_buffers
        try:
            self.model = _internals.LlamaModel(
                path_model=str(model_path), params=params, verbose=False
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {model_path}: {exc}") from exc
        self.vocab = self.model.vocab
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
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
            "loaded %s (%s) on %s, %d threads, n_ctx=%d, %d slots, chat format %s",
            self.name,
            model_path,
            self.backend.describe(),
            config.threads,
            config.n_ctx,
            config.slots,
            self.chat_format,
        )

    def _chat_format(self) -> tuple[ChatFormat, TemplateFormatter | None]:
        template = self.model.metadata().get("tokenizer.chat_template")
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
            bos = self.token_text(self.model.token_bos())
            eos = self.token_text(self.model.token_eos())
            return "template", TemplateFormatter(template, bos, eos)
        return "fewshot", None

    def token_text(self, token: int) -> str:
        """The vocabulary's text of ``token`` (control tokens spelled out); "" for -1."""
        return self.model.token_get_text(token) if token >= 0 else ""

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends a generation (EOS, EOT, ``<end_of_turn>``...)."""
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int) -> bytes:
        """The bytes ``token`` stands for in generated text (control tokens give b"")."""
        buf = (ctypes.c_char * 256)()
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 256, 0, False)
        return buf.raw[: max(n, 0)]

    def tokenize(self, text: str, *, special: bool, bos: bool = False) -> list[int]:
        """Tokens of ``text``; ``special`` parses control-token spellings as tokens."""
        tokens: list[int] = self.model.tokenize(text.encode("utf-8"), bos, special)
        return tokens

    def prompt_tokens(self, prompt: str | Prompt) -> tuple[list[int], int]:
        """BOS and the tokens of ``prompt``, and how many lead tokens are its cacheable prefix.

        A raw string is the caller's whole prompt, markup included (``/v1/completions``,
        ``inference/generate``): control-token spellings in it become tokens. In a
        :class:`Prompt` only the template's markup may; the messages' text never does.
        """
        bos = self.model.token_bos()
        head = [bos] if bos >= 0 and self.model.add_bos_token() else []
        if isinstance(prompt, str):
            return head + self.tokenize(prompt, special=True), 0
        parts = prompt.parts or ((prompt.text, True),)
        tokens, seen, prefix = head, 0, 0
        for text, markup in parts:
            tokens = tokens + self.tokenize(text, special=markup)
            seen += len(text)
            if seen <= prompt.prefix_chars:
                prefix = len(tokens)
        return tokens, prefix

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

    def plan(
        self,
        prompt: str | Prompt,
        sampling: Sampling,
        *,
        extra_stop: Sequence[str] = (),
        extras: Extras | None = None,
    ) -> Plan:
        """Validate a request against the context and merge it with the defaults.

        Raises
        ------
        BadRequest
            If prompt tokens plus ``max_tokens`` exceed the context (the message gives
            both counts), or a grammar does not parse.
        """
        cfg = self.config
        tokens, prefix = self.prompt_tokens(prompt)
        extras = extras or Extras()
        if isinstance(prompt, Prompt):
            extra_stop = (*prompt.stop, *extra_stop)
        max_tokens = sampling.max_tokens or cfg.max_tokens
        if len(tokens) + max_tokens > cfg.n_ctx:
            raise BadRequest(
                f"prompt is {len(tokens)} tokens and max_tokens is {max_tokens}: together "
                f"they exceed the context of {cfg.n_ctx} tokens; shorten the prompt or "
                "lower max_tokens"
            )
        if extras.grammar is not None:
            check_grammar(self.vocab, extras.grammar)

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
            extras=extras,
            prefix_len=prefix,
        )
