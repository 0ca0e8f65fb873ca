"""LLM fact extraction: the reply's schema and normalisation, then the real embedded
Gemma 3 270M over the bus (its facts need only parse and fit the schema: a model that
small is not held to the patterns' accuracy), and a consolidation pass that uses it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from emily.bus.endpoints import GENERATE, STORE
from emily.bus.schemas.memory import EpisodeIn, StoreRequest
from emily.memory.consolidate import Consolidator
from emily.memory.extract import ME, Triple
from emily.memory.llm_extract import SCHEMA, ExtractionFailed, LlmExtractor, normalise, parse
from tests.fixtures.llm import RunningInference
from tests.memory.conftest import KEYS, Running
from tests.memory.helpers import T0


def test_parse_takes_only_the_schema() -> None:
    (item,) = parse('{"facts": [{"subject": "I", "relation": "lives in", "value": "Rome"}]}')
    assert normalise(item, "I live in Rome.") == Triple(ME, "lives_in", "Rome")
    for bad in ["", "[]", '{"facts": [{"subject": "x"}]}', '{"facts": [], "more": 1}']:
        with pytest.raises(ExtractionFailed):
            parse(bad)


def test_a_value_the_statement_does_not_hold_is_dropped() -> None:
    (item,) = parse('{"facts": [{"subject": "my dog", "relation": "called", "value": "Max"}]}')
    assert normalise(item, "My dog is called Max") == Triple("dog", "name", "Max")
    assert normalise(item, "My dog is called Rex") is None


def test_the_schema_bounds_the_reply() -> None:
    facts = SCHEMA["properties"]["facts"]
    assert facts["maxItems"] >= 1 and facts["items"]["additionalProperties"] is False
    assert len(json.dumps(SCHEMA)) < 16 << 10  # the bus limit of a json_schema


@pytest.fixture
def extractor(inference_service: RunningInference) -> LlmExtractor:
    return LlmExtractor(inference_service.session, inference_service.keys, timeout_s=120)


def test_gemma_replies_fit_the_schema(
    extractor: LlmExtractor, inference_service: RunningInference
) -> None:
    for statement in ["My dog is called Rex.", "I moved to Porto and I work at a bakery."]:
        chunk = GENERATE.call(
            inference_service.session,
            inference_service.keys,
            extractor.request(statement),
            timeout_s=120,
        )
        assert chunk.finish_reason == "stop", chunk
        items = parse(chunk.text)  # raises unless it is the schema's JSON
        assert len(items) <= SCHEMA["properties"]["facts"]["maxItems"]
        for triple in extractor.extract(statement):
            assert triple.value.casefold() in statement.casefold()


def test_a_pass_with_the_model_still_gets_the_pattern_facts(
    running: Running, extractor: LlmExtractor
) -> None:
    ep = EpisodeIn(text="My cat is called Tom.", user="ana", timestamp=T0 + timedelta(hours=1))
    (stored,) = STORE.call(running.client, KEYS, StoreRequest(episodes=[ep]), timeout_s=30).ids
    reply = Consolidator(running.service.memory, llm=extractor).run()
    assert reply.episodes == 1 and reply.facts_added >= 1
    with running.service.memory.store.connection() as conn:
        rows = conn.execute(
            "SELECT f.subject, f.relation, f.value, f.extractor FROM facts f "
            "JOIN fact_sources s ON s.fact_id = f.id WHERE s.episode_id = %s",
            (stored,),
        ).fetchall()
    assert ("cat", "name", "Tom", "patterns") in rows
    assert {r[3] for r in rows} <= {"patterns", "llm"}
