"""The clients people use against OpenAI-compatible servers, against the real server:
the official ``openai`` client's structured parsing and LangChain's ``ChatOpenAI``
(``bind_tools``, ``with_structured_output`` both ways, streaming)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.fixtures.llm import RunningInference

pytestmark = pytest.mark.slow
MODEL = "gemma-3-270m-q4_k_m"


class City(BaseModel):
    """A city and the country it is in."""

    name: str = Field(max_length=24, description="the city")
    country: str = Field(max_length=24, description="its country")


@tool
def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"18 degrees and sunny in {city}"


@pytest.fixture(scope="module")
def llm(inference_service: RunningInference) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=f"{inference_service.http_url}/v1",
        api_key="unused",  # type: ignore[arg-type]
        temperature=0,
        max_tokens=48,  # type: ignore[call-arg]
        max_retries=0,
        timeout=120,
    )


def test_openai_client_parses_a_pydantic_response_format(
    inference_service: RunningInference,
) -> None:
    client = openai.OpenAI(
        base_url=f"{inference_service.http_url}/v1", api_key="unused", max_retries=0
    )
    out = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a city in France."}],
        response_format=City,
        temperature=0,
        max_tokens=48,
    )
    city = out.choices[0].message.parsed
    assert isinstance(city, City) and city.name and city.country


def test_langchain_plain_and_streaming(llm: ChatOpenAI) -> None:
    answer = llm.invoke("What is the capital of Spain?")
    assert isinstance(answer, AIMessage) and str(answer.content).strip()
    chunks = list(llm.stream("Name a colour."))
    assert len(chunks) >= 2 and "".join(str(c.content) for c in chunks).strip()


def test_langchain_bind_tools_calls_the_tool(llm: ChatOpenAI) -> None:
    forced = llm.bind_tools([get_weather], tool_choice="get_weather")
    msg = forced.invoke("What is the weather in Paris?")
    assert isinstance(msg, AIMessage) and msg.tool_calls
    call = msg.tool_calls[0]
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    # the tool's result goes back as a tool message and the model answers it
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage)
    auto = llm.bind_tools([get_weather])
    follow = auto.invoke([HumanMessage("What is the weather in Paris?"), msg, result])
    assert isinstance(follow, AIMessage) and (follow.content or follow.tool_calls)


def test_langchain_streams_tool_calls(llm: ChatOpenAI) -> None:
    forced = llm.bind_tools([get_weather], tool_choice="required")
    merged: Any = None
    for chunk in forced.stream("What is the weather in Rome?"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and merged.tool_calls
    assert merged.tool_calls[0]["name"] == "get_weather"


QUESTION = "Name a city in Italy. Answer in JSON with the keys name and country."


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(llm: ChatOpenAI, method: str) -> None:
    structured = llm.with_structured_output(City, method=method)  # type: ignore[arg-type]
    city = structured.invoke(QUESTION)
    assert isinstance(city, City) and city.name and city.country


def test_langchain_json_mode_gets_a_json_object(llm: ChatOpenAI) -> None:
    # json_mode sends no schema: the grammar guarantees an object, not its keys
    structured = llm.with_structured_output(City, method="json_mode", include_raw=True)
    out: Any = structured.invoke(QUESTION)
    assert isinstance(json.loads(str(out["raw"].content)), dict)
