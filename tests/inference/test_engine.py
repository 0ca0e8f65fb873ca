"""The engine against llama-cpp-python's own completion API, as an independent reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emily.bus.schemas.inference import ChatMessage, GenerateRequest
from emily.inference.config import InferenceConfig
from emily.inference.engine import Engine, Outcome, _held_back
from emily.inference.errors import BadRequest, ModelLoadError, ModelNotFound
from tests.fixtures.llm import RunningInference


@pytest.fixture(scope="module")
def engine(inference_service: RunningInference) -> Engine:
    return inference_service.service.engine


def ours(engine: Engine, prompt: str, **kw: Any) -> tuple[str, Outcome]:
    outcome = Outcome()
    plan = engine.plan(prompt, GenerateRequest(prompt=prompt, **kw))
    with engine.lock:
        text = "".join(engine.generate(plan, outcome, lambda: None))
    return text, outcome


def reference(engine: Engine, prompt: str, **kw: Any) -> dict[str, Any]:
    with engine.lock:
        engine.llm.reset()  # type: ignore[no-untyped-call]
        out: dict[str, Any] = engine.llm.create_completion(prompt, **kw)  # type: ignore[assignment]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["The capital of France is", "def fibonacci(n):", "1, 2, 3,"])
def test_greedy_text_matches_llama_cpp_create_completion(engine: Engine, prompt: str) -> None:
    text, outcome = ours(engine, prompt, max_tokens=12, temperature=0, repeat_penalty=1.0)
    ref = reference(engine, prompt, max_tokens=12, temperature=0, repeat_penalty=1.0)
    assert text == ref["choices"][0]["text"]
    assert outcome.completion_tokens == ref["usage"]["completion_tokens"]
    assert outcome.finish_reason == ref["choices"][0]["finish_reason"]


@pytest.mark.slow
def test_stop_strings_cut_like_llama_cpp(engine: Engine) -> None:
    prompt = "1, 2, 3,"
    full, _ = ours(engine, prompt, max_tokens=12, temperature=0, repeat_penalty=1.0)
    stop = full.strip()[3:6]  # a string the greedy continuation is known to contain
    text, outcome = ours(
        engine, prompt, max_tokens=12, temperature=0, repeat_penalty=1.0, stop=(stop,)
    )
    ref = reference(engine, prompt, max_tokens=12, temperature=0, repeat_penalty=1.0, stop=[stop])
    assert stop not in text and full.startswith(text)
    assert text == ref["choices"][0]["text"] and outcome.finish_reason == "stop"


@pytest.mark.slow
def test_ignore_eos_generates_exactly_max_tokens(engine: Engine) -> None:
    _, outcome = ours(engine, "The end.", max_tokens=20, ignore_eos=True)
    assert outcome.completion_tokens == 20 and outcome.finish_reason == "length"


@pytest.mark.slow
def test_seeded_sampling_is_reproducible(engine: Engine) -> None:
    a, _ = ours(engine, "My favourite animal is", max_tokens=8, temperature=1.0, seed=7)
    b, _ = ours(engine, "My favourite animal is", max_tokens=8, temperature=1.0, seed=7)
    assert a == b


@pytest.mark.slow
def test_plan_checks_context_and_model(engine: Engine) -> None:
    with pytest.raises(BadRequest, match=r"prompt is \d+ tokens and max_tokens is 1000"):
        engine.plan("x " * 100, GenerateRequest(prompt="x", max_tokens=1000))
    with pytest.raises(ModelNotFound, match="serves 'gemma-3-270m-q4_k_m'"):
        engine.check_model("other")
    engine.check_model(None)
    engine.check_model("gemma-3-270m-q4_k_m.gguf")
    plan = engine.plan("hi", GenerateRequest(prompt="hi"))
    assert plan.max_tokens == engine.config.max_tokens and plan.tokens[0] == engine.llm.token_bos()


@given(
    st.text(alphabet="ab\n:", max_size=12),
    st.lists(st.text(alphabet="ab\n:", min_size=1, max_size=4), max_size=3),
)
def test_held_back_suffix_is_the_longest_stop_prefix(text: str, stops: list[str]) -> None:
    n = _held_back(text, stops)
    assert 0 <= n <= len(text)
    prefixes = {s[:k] for s in stops for k in range(1, len(s))}
    if n:
        assert text[len(text) - n :] in prefixes
    longer = [k for k in range(n + 1, len(text) + 1) if text[len(text) - k :] in prefixes]
    assert not longer


TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.mark.slow
def test_configured_chat_template_replaces_the_fewshot_format(
    llm_model_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "chat.jinja").write_text(TEMPLATE)
    cfg = InferenceConfig(n_ctx=256, n_threads=1, chat_template_file=tmp_path / "chat.jinja")
    engine = Engine(cfg, llm_model_path)
    assert engine.chat_format == "template"
    prompt = engine.chat_prompt((ChatMessage(role="user", content="Hi"),))
    assert prompt.text == "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    plan = engine.plan(prompt.text, GenerateRequest(prompt="x", max_tokens=4))
    turn = engine.llm.tokenize(b"<start_of_turn>", add_bos=False, special=True)
    assert len(turn) == 1 and plan.tokens[1] == turn[0]  # markup is tokenized as special tokens


@pytest.mark.slow
def test_template_settings_that_cannot_work_fail_at_load(
    llm_model_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="no chat template"):
        Engine(InferenceConfig(n_ctx=256, n_threads=1, chat_format="template"), llm_model_path)
    missing = InferenceConfig(n_ctx=256, n_threads=1, chat_template_file=tmp_path / "nope.jinja")
    with pytest.raises(ModelLoadError, match="chat_template_file"):
        Engine(missing, llm_model_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        Engine(InferenceConfig(), tmp_path / "absent.gguf")
