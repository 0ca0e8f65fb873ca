"""Fact extraction by the language model: ``inference/generate`` with a JSON schema.

The model is asked, with a few examples, for ``{"facts": [{"subject", "relation",
"value"}, ...]}``; the schema is enforced by a grammar in the inference service, so the
reply always parses. A small model still invents things, so a triple is kept only when
its value is in the statement, and subjects and relations are folded to the
deterministic extractor's names ("I" is ``me``, "lives in" is ``lives_in``). Memory
reaches inference over the bus alone, from its own session.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import zenoh
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emily.bus import Keys
from emily.bus.endpoints import GENERATE
from emily.bus.schemas.inference import GenerateRequest
from emily.errors import BusError, PayloadError
from emily.memory.extract import ME, Triple

log = logging.getLogger(__name__)
#: Most facts asked of the model per statement.
MAX_FACTS = 4
_TERM = {"type": "string", "minLength": 1, "maxLength": 64}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "maxItems": MAX_FACTS,
            "items": {
                "type": "object",
                "properties": {"subject": _TERM, "relation": _TERM, "value": _TERM},
                "required": ["subject", "relation", "value"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["facts"],
    "additionalProperties": False,
}
_PROMPT = """Extract the facts the speaker states, as JSON. The speaker is "me".
Text: My cat is called Tom.
JSON: {"facts": [{"subject": "cat", "relation": "name", "value": "Tom"}]}
Text: I live in Rome and I work at a bank.
JSON: {"facts": [{"subject": "me", "relation": "lives_in", "value": "Rome"}, \
{"subject": "me", "relation": "works_at", "value": "bank"}]}
Text: The weather is nice today.
JSON: {"facts": []}
Text: %s
JSON: """
_SELF = {"i", "me", "my", "myself", "user", "speaker", "the speaker", "the user"}
_RELATIONS = {
    "is called": "name",
    "called": "name",
    "named": "name",
    "name is": "name",
    "has name": "name",
    "live in": "lives_in",
    "lives in": "lives_in",
    "lives": "lives_in",
    "moved to": "lives_in",
    "location": "lives_in",
    "work at": "works_at",
    "works at": "works_at",
    "works for": "works_at",
    "work for": "works_at",
    "employer": "works_at",
    "is": "is",
}


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=64)
    relation: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=64)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facts: list[_Item] = Field(max_length=MAX_FACTS)


class ExtractionFailed(RuntimeError):
    """The model could not be asked, or answered something the schema does not allow."""


def parse(text: str) -> list[_Item]:
    """The items of one reply; raises :class:`ExtractionFailed` unless it fits the schema."""
    try:
        return _Reply.model_validate(json.loads(text)).facts
    except (ValueError, ValidationError) as exc:
        raise ExtractionFailed(f"the model's reply is not the asked JSON: {exc}") from exc


def normalise(item: _Item, statement: str) -> Triple | None:
    """``item`` in the deterministic extractor's terms; ``None`` when its value is not in
    ``statement`` (the model made it up) or a term is empty."""
    subject = " ".join(item.subject.casefold().split())
    subject = ME if subject in _SELF else re.sub(r"^(?:my|the|a|an) ", "", subject)
    relation = " ".join(item.relation.casefold().replace("_", " ").split())
    relation = _RELATIONS.get(relation, relation).replace(" ", "_")
    value = item.value.strip(" .,!;:\"'")
    if not subject or not relation or not value:
        return None
    if value.casefold() not in statement.casefold() or value.casefold() == subject:
        return None
    return Triple(subject, relation, value)


@dataclass
class LlmExtractor:
    """Asks ``inference/generate`` on ``session`` for the facts of a statement.

    Attributes
    ----------
    session, keys : memory's own bus session and node.
    timeout_s : deadline of one request, in seconds.
    max_tokens : most tokens the model may write per statement (tokens).
    """

    session: zenoh.Session
    keys: Keys
    timeout_s: float = 30.0
    max_tokens: int = 96

    def request(self, statement: str) -> GenerateRequest:
        """The request for ``statement``: greedy, schema-constrained."""
        return GenerateRequest(
            prompt=_PROMPT % statement.replace("\n", " "),
            max_tokens=self.max_tokens,
            temperature=0.0,
            json_schema=SCHEMA,
        )

    def extract(self, statement: str) -> list[Triple]:
        """The facts of ``statement`` the model gives and :func:`normalise` keeps.

        Raises
        ------
        ExtractionFailed
            Inference did not answer, or its reply does not fit :data:`SCHEMA` (a reply
            cut by ``max_tokens`` does not).
        """
        try:
            chunk = GENERATE.call(
                self.session, self.keys, self.request(statement), timeout_s=self.timeout_s
            )
        except (BusError, PayloadError) as exc:
            raise ExtractionFailed(f"inference/generate failed: {exc}") from exc
        out: list[Triple] = []
        for item in parse(chunk.text):
            triple = normalise(item, statement)
            if triple is not None and triple not in out:
                out.append(triple)
        return out
