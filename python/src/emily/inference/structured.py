"""Structured output and tool calls: JSON grammars, the tool prompt, and reading a call back.

``response_format`` ``json_object``/``json_schema`` and tool calls are enforced by a
llama.cpp grammar (GBNF, built by llama-cpp-python's JSON-schema converter), so the
output parses whatever the model would rather say. Grammars here keep JSON on one line
(whitespace is at most one space), so a chat format whose answer ends at a newline
still ends it after the JSON.

A tool call is the JSON object ``{"name": ..., "arguments": {...}}``. With
``tool_choice`` ``required`` or a named function the grammar allows only calls (of that
function); with ``auto`` it allows a call or a plain-text answer that does not start
with ``{``; with ``none`` (or no tools) there is no grammar at all.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from emily.inference.errors import BadRequest

_SPACE = re.compile(r"^space ::= .*$", re.MULTILINE)
_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]')


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, description and JSON-schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """A call read back from the output; ``arguments`` is a JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str


def _rules(schema: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    """``schema`` as GBNF rules with every rule name prefixed; returns (root rule, rules)."""
    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises for schemas it cannot express
        raise BadRequest(f"the JSON schema cannot be enforced: {exc}") from exc
    gbnf = _SPACE.sub('space ::= " "?', gbnf)
    # JSON strings hold no raw control characters (a newline must be written \n)
    gbnf = gbnf.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]')
    names = set(re.findall(r"^([A-Za-z0-9-]+) ::=", gbnf, flags=re.MULTILINE))
    word = re.compile(r"[A-Za-z0-9-]+")

    def rename(span: str) -> str:
        return word.sub(lambda m: prefix + m.group(0) if m.group(0) in names else m.group(0), span)

    # rule names are renamed outside string literals and character classes only
    out, at = [], 0
    for m in _LITERAL.finditer(gbnf):
        out += [rename(gbnf[at : m.start()]), m.group(0)]
        at = m.end()
    gbnf = "".join([*out, rename(gbnf[at:])])
    return prefix + "root", gbnf


def schema_grammar(schema: Mapping[str, Any]) -> str:
    """GBNF for one JSON value that matches ``schema`` (``{"type": "object"}``: any object)."""
    root, rules = _rules(schema, "s-")
    return f"root ::= {root}\n{rules}"


def _literal(text: str) -> str:
    return json.dumps(json.dumps(text))  # a GBNF string literal of the JSON string


def tool_grammar(tools: Sequence[Tool], choice: str | None) -> str | None:
    """GBNF for the answer given ``tool_choice`` (``none``, ``auto``, ``required`` or a name)."""
    if not tools or choice == "none":
        return None
    chosen = [t for t in tools if choice in (None, "auto", "required", t.name)]
    if not chosen:
        names = ", ".join(t.name for t in tools)
        raise BadRequest(f"tool_choice names {choice!r}, which is not among the tools ({names})")
    alternatives, rules = [], []
    for i, tool in enumerate(chosen):
        root, body = _rules(tool.parameters or {"type": "object"}, f"t{i}-")
        alternatives.append(
            f'"{{" space "\\"name\\"" space ":" space {_literal(tool.name)} space "," space '
            f'"\\"arguments\\"" space ":" space {root} space "}}"'
        )
        rules.append(body)
    call = "call ::= " + " | ".join(f"( {a} )" for a in alternatives)
    root = "root ::= call" if choice not in (None, "auto") else "root ::= call | text"
    text = 'text ::= [^{ \\t\\n] [^\\n]* "\\n"?'
    return "\n".join([root, call, text, 'space ::= " "?', *rules])


def tool_prompt(tools: Sequence[Tool], choice: str | None) -> str:
    """The system text that tells the model which tools it has and how to call one."""
    lines = ["You can call these tools:"]
    for t in tools:
        params = json.dumps(t.parameters.get("properties", {}), separators=(",", ":"))
        lines.append(f"- {t.name}: {t.description or 'no description'} Parameters: {params}")
    if choice in (None, "auto"):
        lines.append(
            "To call a tool, answer with a JSON object holding the tool's name and its "
            "arguments taken from the question; otherwise answer in text."
        )
    else:
        lines.append("Answer with a JSON object holding the tool's name and its arguments.")
    return " ".join(lines)


def parse_call(text: str, tools: Sequence[Tool]) -> ToolCall | None:
    """The tool call in ``text``, or ``None`` when it is a plain answer."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    except ValueError:
        return None
    names = {t.name for t in tools}
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    args = data.get("arguments", {})
    return ToolCall(
        id=f"call_{uuid.uuid4().hex[:24]}",
        name=str(data["name"]),
        arguments=json.dumps(args, ensure_ascii=False),
    )


def call_text(name: str, arguments: str) -> str:
    """How an earlier call appears in the conversation: the JSON the model would write."""
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = arguments
    return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
