"""Answers to a user's question from what memory holds: current facts and statements.

Only facts and the user's own statements (or, for "what did you tell me about X", the
assistant's earlier answers) are ever used; a remembered question or command never is,
even an old one stored before episodes carried their act (:func:`usable` re-checks
every hit's text). With the language model available the answer is composed by it from
numbered notes (:func:`compose_messages`), and it must use the best current fact when
there is one (:func:`uses_fact`), else the plain template answers. Without the model:
the best current fact in a template ("Your dog's name is Rex."), else the most recent of
the best-matching statements quoted back, else "I don't know".

Texts and templates live in ``data/prompts.json``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from emily.bus.schemas.facts import Fact
from emily.bus.schemas.inference import ChatMessage
from emily.bus.schemas.memory import Hit
from emily.cognition.actions import prompts

#: Subjects that name the user themself.
SELF = frozenset({"me", "user", "i", "my", "myself", "self", "you"})
#: Statements whose score is within this of the best count as equally relevant; the
#: most recent of them is the one quoted (a newer statement replaces an older one).
TIE_MARGIN = 0.1
#: A statement must match at least this well (cosine) to be quoted as an answer.
MIN_STATEMENT_SCORE = 0.35
_TOLD_ME = re.compile(
    r"\bwhat (did|have|had) you (tell|told|say|said|answer|answered)\b"
    r"|\bwhat you (told|said to) me\b|\bdid you (tell|say)\b|\byou told me\b",
    re.IGNORECASE,
)

#: Decides whether a text is a question or a command (the dialogue-act classifier).
IsAsking = Callable[[str], bool]


def asks_what_i_said(text: str) -> bool:
    """Whether ``text`` asks what the assistant itself said ("what did you tell me...")."""
    return bool(_TOLD_ME.search(text))


def about_the_user(text: str) -> bool:
    """Whether ``text`` speaks of the user's own things ("my", "mine", "do I ...")."""
    return bool(re.search(r"\b(my|mine|(do|did|have|was) i)\b", text, re.IGNORECASE))


def usable(hits: Sequence[Hit], is_asking: IsAsking, role: str = "user") -> list[Hit]:
    """The hits an answer may draw on: spoken by ``role``, a statement (``user``) or an
    answer (``assistant``), and not a question or command by their text either."""
    act = "statement" if role == "user" else "answer"
    return [
        h
        for h in hits
        if h.episode.role == role and h.episode.act == act and not is_asking(h.episode.text)
    ]


def current(facts: Sequence[Fact]) -> list[Fact]:
    """The facts no newer value has superseded, in the given (best-first) order."""
    return [f for f in facts if f.current]


def fact_sentence(fact: Fact) -> str:
    """A plain sentence for ``fact``, addressed to the user ("Your dog's name is Rex.",
    "You live in Lyon."); verb relations have their own templates, any other relation
    reads as a noun ("Your favourite colour is green.")."""
    p = prompts()
    subject = fact.subject.strip()
    if subject.lower().startswith(("my ", "your ")):
        subject = subject.split(" ", 1)[1]
    key = fact.relation.strip().lower().replace(" ", "_")
    relation = key.replace("_", " ")
    value = fact.value.strip()
    mine = subject.lower() in SELF
    verbs: dict[str, str] = p["fact_self_relations" if mine else "fact_relations"]
    template = verbs.get(key) or str(p["fact_self" if mine else "fact"])
    return template.format(subject=subject, relation=relation, value=value)


def best_statement(hits: Sequence[Hit]) -> Hit | None:
    """The most recent hit among those within :data:`TIE_MARGIN` of the best score, if
    the best scores at least :data:`MIN_STATEMENT_SCORE`."""
    if not hits:
        return None
    top = max(h.score for h in hits)
    if top < MIN_STATEMENT_SCORE:
        return None
    near = [h for h in hits if h.score >= top - TIE_MARGIN]
    return max(near, key=lambda h: h.episode.timestamp)


@dataclass(frozen=True)
class Composed:
    """An answer: its text, the fact and episode ids it used, and how it was made
    (``fact``, ``statement``, ``told`` or ``unknown``)."""

    text: str
    cited: list[uuid.UUID] = field(default_factory=list)
    kind: str = "unknown"


def template_answer(facts: Sequence[Fact], hits: Sequence[Hit], told: bool) -> Composed:
    """The answer without the language model (see the module docstring)."""
    p = prompts()
    now = current(facts)
    if now and not told:
        return Composed(fact_sentence(now[0]), [now[0].id], "fact")
    best = best_statement(hits)
    if best is not None:
        key = "told_you" if told else "you_told_me"
        return Composed(p[key].format(text=best.episode.text), [best.episode.id], "statement")
    return Composed(p["dont_know_told" if told else "dont_know"], [], "unknown")


def compose_messages(
    question: str, facts: Sequence[Fact], hits: Sequence[Hit], told: bool, max_notes: int = 5
) -> tuple[list[ChatMessage], list[uuid.UUID]]:
    """The chat that asks the model to answer ``question`` from the notes, and the ids
    of the facts and episodes given to it (in note order).

    Facts come first (current only), then statements newest first, each dated, so the
    model can tell a newer value from an older one.
    """
    p = prompts()
    lines: list[str] = []
    cited: list[uuid.UUID] = []
    for f in current(facts)[:max_notes]:
        lines.append(f"- {fact_sentence(f)} (current fact)")
        cited.append(f.id)
    ranked = sorted(hits, key=lambda h: h.episode.timestamp, reverse=True)
    for h in ranked[: max(0, max_notes - len(cited))]:
        who = p["note_assistant"] if told else p["note_user"]
        day = h.episode.timestamp.date().isoformat()
        lines.append(f"- {day}, {who}: {h.episode.text}")
        cited.append(h.episode.id)
    system = f"{p['answer_system']}\n\n{p['answer_notes']}\n" + "\n".join(lines)
    msgs = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=question)]
    return msgs, cited


def uses_fact(answer: str, facts: Sequence[Fact]) -> bool:
    """Whether ``answer`` holds the value of the best current fact (true without one)."""
    now = current(facts)
    return not now or now[0].value.strip().lower() in answer.lower()


def parrots(answer: str, question: str) -> bool:
    """Whether ``answer`` merely repeats ``question``."""

    def norm(s: str) -> str:
        return re.sub(r"[^a-z0-9 ]", "", s.lower()).strip()

    a, q = norm(answer), norm(question)
    return not a or a == q or (len(q) > 8 and q in a and len(a) < len(q) + 15)
