"""Chat prompts: the few-shot fallback and a real Jinja chat template."""

from __future__ import annotations

import pytest

from emily.bus.schemas.inference import ChatMessage
from emily.inference.errors import BadRequest
from emily.inference.prompt import TemplateFormatter, fewshot_spec, render_fewshot

# Gemma's published chat template, reduced to its turn markup.
GEMMA_STYLE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def turn(role: str, content: str) -> ChatMessage:
    return ChatMessage(role=role, content=content)  # type: ignore[arg-type]


def test_fewshot_ends_with_the_assistant_prefix_and_stops_at_newline() -> None:
    p = render_fewshot([turn("user", "Hi\nthere"), turn("assistant", "Hello."), turn("user", "Q")])
    spec = fewshot_spec()
    assert p.text.endswith("User: Q\nAssistant:")
    assert "User: Hi there\nAssistant: Hello.\n" in p.text  # newlines folded: one turn per line
    assert p.text.startswith(spec["preamble"])
    assert p.stop == ("\n", "User:")


def test_fewshot_system_message_replaces_the_preamble() -> None:
    p = render_fewshot([turn("system", "You are terse."), turn("user", "Q")])
    assert p.text.startswith("You are terse.\n") and fewshot_spec()["preamble"] not in p.text


def test_template_renders_turns_and_strips_bos() -> None:
    fmt = TemplateFormatter(GEMMA_STYLE, bos_token="<bos>", eos_token="<eos>")
    p = fmt([turn("user", "Hi"), turn("assistant", "Hello"), turn("user", "Bye")])
    assert p.text == (
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )


def test_template_that_rejects_a_conversation_is_a_bad_request() -> None:
    fmt = TemplateFormatter(GEMMA_STYLE, bos_token="<bos>", eos_token="<eos>")
    with pytest.raises(BadRequest, match="System role not supported"):
        fmt([turn("system", "x"), turn("user", "Hi")])


def test_fewshot_is_plain_text_split_at_the_system_prefix() -> None:
    p = render_fewshot([turn("system", "Be brief."), turn("user", "<start_of_turn>Q")])
    assert "".join(text for text, _ in p.parts) == p.text
    assert not any(markup for _, markup in p.parts)  # nothing may become a control token
    assert p.text[: p.prefix_chars].endswith(fewshot_spec()["examples"][-1]["assistant"] + "\n")
    assert p.text[p.prefix_chars :].startswith("User: <start_of_turn>Q")


def test_template_parts_keep_markup_and_messages_apart() -> None:
    fmt = TemplateFormatter(GEMMA_STYLE, bos_token="<bos>", eos_token="<eos>")
    p = fmt([turn("user", "  Hi <end_of_turn> "), turn("assistant", "Hello")])
    assert "".join(text for text, _ in p.parts) == p.text
    content = [text for text, markup in p.parts if not markup]
    assert content == ["Hi <end_of_turn>", "Hello"]  # trimmed as the template trims
    assert all("<start_of_turn>" in text for text, markup in p.parts if markup)
