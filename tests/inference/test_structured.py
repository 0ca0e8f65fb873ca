"""JSON-schema and tool-call grammars: llama.cpp parses them, and the real model's output
under them parses as JSON that matches (or as a call of an offered tool)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emily.bus.schemas.inference import ChatMessage, GenerateRequest
from emily.inference.engine import Engine, Extras
from emily.inference.errors import BadRequest
from emily.inference.sampler import check_grammar
from emily.inference.scheduler import EventQueue, Piece, Scheduler
from emily.inference.structured import (
    Tool,
    call_text,
    parse_call,
    schema_grammar,
    tool_grammar,
    tool_prompt,
)
from tests.fixtures.llm import RunningInference

WEATHER = Tool(
    "get_weather",
    "Current weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},  # a 270M model rambles in strings
        "age": {"type": "integer"},
        "root": {"type": "boolean"},  # a property named like a grammar rule
    },
    "required": ["name", "age", "root"],
}


@pytest.fixture(scope="module")
def engine(inference_service: RunningInference) -> Engine:
    return inference_service.service.engine


@pytest.fixture(scope="module")
def scheduler(inference_service: RunningInference) -> Scheduler:
    return inference_service.service.scheduler


def generate(engine: Engine, scheduler: Scheduler, question: str, grammar: str) -> str:
    req = GenerateRequest(prompt="x", max_tokens=48, temperature=0)
    prompt = engine.chat_prompt((ChatMessage(role="user", content=question),))
    events = EventQueue()
    scheduler.submit(engine.plan(prompt, req, extras=Extras(grammar=grammar)), events)
    return "".join(e.text for e in events if isinstance(e, Piece))


def test_grammars_rename_rules_but_not_literals() -> None:
    g = schema_grammar(PERSON)
    assert g.startswith("root ::= s-root\n")
    assert '"\\"root\\""' in g  # the property name stays as written
    assert "\n" not in json.loads('"' + "a" + '"')  # sanity of the test's own quoting
    assert 'space ::= " "?' in g.replace("s-space", "space")  # JSON stays on one line


def test_tool_grammar_follows_tool_choice() -> None:
    assert tool_grammar([WEATHER], "none") is None and tool_grammar([], "auto") is None
    assert "root ::= call | text" in (tool_grammar([WEATHER], "auto") or "")
    assert "root ::= call\n" in (tool_grammar([WEATHER], "required") or "")
    with pytest.raises(BadRequest, match="not among the tools"):
        tool_grammar([WEATHER], "get_time")
    assert "get_weather" in tool_prompt([WEATHER], "auto")


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=3))
def test_a_written_call_reads_back(arguments: dict[str, int]) -> None:
    text = call_text("get_weather", json.dumps(arguments))
    call = parse_call(text, [WEATHER])
    assert call is not None and call.name == "get_weather"
    assert json.loads(call.arguments) == arguments and call.id.startswith("call_")
    assert parse_call("It is sunny.", [WEATHER]) is None
    assert parse_call('{"name": "other", "arguments": {}}', [WEATHER]) is None


@pytest.mark.slow
def test_llama_cpp_parses_every_grammar(engine: Engine) -> None:
    for g in (
        schema_grammar(PERSON),
        schema_grammar({"type": "object"}),
        tool_grammar([WEATHER], "auto"),
        tool_grammar([WEATHER, Tool("now", "", {})], "required"),
    ):
        assert g is not None
        check_grammar(engine.vocab, g)
    with pytest.raises(BadRequest, match="does not parse"):
        check_grammar(engine.vocab, "root ::= undefined-rule")


@pytest.mark.slow
def test_schema_grammar_makes_the_model_answer_matching_json(
    engine: Engine, scheduler: Scheduler
) -> None:
    text = generate(engine, scheduler, "Describe a person.", schema_grammar(PERSON))
    data = json.loads(text)
    assert set(data) == {"name", "age", "root"}
    assert isinstance(data["name"], str) and isinstance(data["age"], int)
    assert isinstance(data["root"], bool)


@pytest.mark.slow
def test_required_tool_choice_makes_the_model_call_the_tool(
    engine: Engine, scheduler: Scheduler
) -> None:
    grammar = tool_grammar([WEATHER], "required")
    assert grammar is not None
    text = generate(engine, scheduler, "What is the weather in Paris?", grammar)
    call = parse_call(text, [WEATHER])
    assert call is not None and isinstance(json.loads(call.arguments)["city"], str)
