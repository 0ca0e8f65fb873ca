"""Deterministic extraction of facts from first-person statements.

"my dog is called Rex", "my dog's name is Rex" and "I have a dog named Rex" all give
the triple ``(dog, name, Rex)``; "I live in Lisbon" and "I moved to Porto" give
``(me, lives_in, ...)``, so the later statement supersedes the earlier one. The speaker
is the subject ``me``. Each statement is split into clauses and each clause is matched
against a short list of patterns; a clause with a negation ("I don't live in Lisbon
any more") or a question gives nothing, since a wrong fact is worse than a missed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The subject of facts about the speaker.
ME = "me"
#: Relations a subject can hold several values of at once (one current fact per value).
MULTI = frozenset({"allergic_to", "has", "likes", "dislikes", "speaks"})


@dataclass(frozen=True)
class Triple:
    """A subject-relation-value fact as extracted (subject and relation normalised)."""

    subject: str
    relation: str
    value: str

    @property
    def multi(self) -> bool:
        """Whether the relation holds several values at once (see :data:`MULTI`)."""
        return self.relation in MULTI

    def key(self) -> tuple[str, str, str]:
        """Case-folded triple, for comparing two extractions."""
        return (self.subject.casefold(), self.relation.casefold(), self.value.casefold())


_NP = r"(?P<subj>[a-z]+(?: [a-z]+){0,2}?)"
_VAL = r"(?P<val>.+)"
_NAME = r"(?P<name>[A-Z][\w'-]*(?: [A-Z][\w'-]*)?)"
_LIVE = (
    r"(?:live|am living|'m living|reside|am based|'m based|am staying|'m staying"
    r"|have lived|'ve lived|have been living|'ve been living"
    r"|moved|have moved|'ve moved|just moved|relocated|have relocated|'ve relocated)"
)
_LIVE_PREP = r"(?:in|to|at)"
_WORK = (
    r"(?:work|am working|'m working|have worked|'ve worked|have been working|'ve been working"
    r"|started working|started a new job|got a job|got a new job|took a job|have a job"
    r"|am employed|'m employed)"
)
# "my favourite colour": American spellings and synonyms are folded to one relation
_SPELLING = {"favorite": "favourite", "color": "colour", "fav": "favourite"}
_ATTRIBUTES = {
    "name": "name",
    "age": "age",
    "birthday": "birthday",
    "email": "email",
    "email address": "email",
    "phone number": "phone_number",
    "number": "phone_number",
    "job": "occupation",
    "occupation": "occupation",
    "profession": "occupation",
    "hometown": "hometown",
    "home town": "hometown",
    "nationality": "nationality",
    "address": "address",
    "blood type": "blood_type",
    "employer": "works_at",
    "hobby": "hobby",
    "pastime": "hobby",
}
# people and animals whose name "my X is Ana" gives
_KIN_AND_PETS = (
    "dog cat puppy kitten pet horse rabbit bird parrot hamster fish turtle snake sister "
    "brother mother mom mum father dad wife husband partner son daughter boyfriend "
    "girlfriend friend boss cousin aunt uncle grandmother grandfather grandma grandpa niece "
    "nephew fiance fiancee colleague roommate neighbour neighbor baby child kid"
)
_NAMED = frozenset((*_KIN_AND_PETS.split(), "best friend"))
_NEGATION = re.compile(
    r"\b(?:not|no longer|never|don't|doesn't|didn't|isn't|aren't|wasn't|won't|haven't"
    r"|hasn't|can't|cannot|nor|neither|any ?more)\b|n't\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"^(?:what|where|who|whom|whose|which|when|why|how|do|does|did|is|are|am|can|could"
    r"|would|will|should|shall|have|has)\b",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"^(?:(?:well|oh|so|ok|okay|hey|hi|hello|yes|yeah|also|and|btw|by the way|actually"
    r"|fun fact|just so you know|for the record|fyi|anyway|remember that|note that|sorry"
    r"|these days|nowadays|in fact|it turns out(?: that)?|turns out(?: that)?|oops"
    r"|you should know that|i should mention that|i want you to know that)[,:]?\s+)+",
    re.IGNORECASE,
)
_ADVERBS = re.compile(r"\b(?:now|currently|actually|really|still|recently|also)\s+", re.IGNORECASE)
_TAIL = re.compile(
    r"(?:,?\s+(?:now|these days|at the moment|currently|right now|nowadays|for now|too"
    r"|for (?:\w+ )?(?:years?|months?|weeks?|days?)|since \w+|last (?:year|month|week)"
    r"|this (?:year|month|week)|a while ago|recently|(?:\w+ )?(?:years?|months?|weeks?) ago))+$",
    re.IGNORECASE,
)
_CLAUSES = re.compile(r"(?:[.!;]+\s+|,\s*(?:and|but)\s+|\s+and\s+(?=(?:i|my|i'm|i've)\b))", re.I)
_VALUE_END = re.compile(r"\s+(?:because|since|but|which|who|where|so|although|though)\s+.*$", re.I)


# what "my X ..." can go on with to state a fact about X
_ABOUT = (
    r"(?:lives|is living|resides|is based|moved|has moved|relocated|works|is working"
    r"|turned|is allergic) .+|is \d{1,3}(?: years old)?"
)


def _subject(raw: str) -> str:
    words = raw.casefold().split()
    # "my new doctor" is the doctor, whose name the new one replaces
    drop = ("a", "an", "the", "little", "new", "current")
    words = [_SPELLING.get(w, w) for w in words if w not in drop]
    return " ".join(words)


def _value(raw: str) -> str:
    val = _VALUE_END.sub("", raw.strip())
    val = _TAIL.sub("", val).strip(" ,.!;:\"'")
    for article in ("a ", "an ", "the "):
        if val.casefold().startswith(article) and len(val) > len(article):
            val = val[len(article) :]
    return val


def _relation(raw: str) -> str:
    return "_".join(_SPELLING.get(w, w) for w in raw.casefold().split())


def _clauses(text: str) -> list[str]:
    text = text.replace("\u2019", "'").replace("\u2018", "'").strip()
    out = []
    for part in _CLAUSES.split(text):
        part = _FILLER.sub("", part.strip()).strip()
        if part.endswith("?") or not part:
            continue
        out.append(part.rstrip(".!; "))
    return out


def _about(subject: str, rest: str) -> list[Triple]:
    """Facts of ``rest`` (``lives in Paris``, ``works at X``, ``is 30``) about ``subject``."""
    patterns: list[tuple[str, str]] = [
        (
            r"(?:lives|is living|resides|is based|moved|has moved|relocated) (?:in|to) " + _VAL,
            "lives_in",
        ),
        (r"(?:works|is working) (?:at|for|in) " + _VAL, "works_at"),
        (r"(?:is|turned) (?P<val>\d{1,3})(?: years old)?", "age"),
        (r"is allergic to " + _VAL, "allergic_to"),
        (r"(?:is called|is named|goes by|'s called|'s named) " + _VAL, "name"),
    ]
    for pattern, relation in patterns:
        m = re.fullmatch(pattern, rest, re.IGNORECASE)
        if m:
            val = _value(m["val"])
            return [Triple(subject, relation, val)] if val else []
    return []


def _clause(clause: str) -> list[Triple]:
    if _NEGATION.search(clause) or _QUESTION.match(clause):
        return []
    c = _TAIL.sub("", _ADVERBS.sub("", clause))
    i = r"(?:i|I)"
    rules: list[tuple[str, str, str | None]] = [
        # (pattern, subject or group 'subj', relation); relation None: computed below
        (rf"(?:the )?name of my {_NP} is {_VAL}", "subj", "name"),
        (rf"my {_NP}'s name is {_VAL}", "subj", "name"),
        (rf"my {_NP}(?: is|'s) (?:called|named) {_VAL}", "subj", "name"),
        (rf"my {_NP} goes by {_VAL}", "subj", "name"),
        (rf"(?:my name is|{i} am called|{i}'m called|call me|{i} go by) {_VAL}", ME, "name"),
        (rf"my (?:favourite|favorite|fav) (?P<thing>[a-z]+(?: [a-z]+)?) is {_VAL}", ME, None),
        (rf"{i}(?: am|'m| was| have been|'ve been) allergic to {_VAL}", ME, "allergic_to"),
        (
            rf"{i}(?: have|'ve got| have got| got| own) (?:a|an) {_NP} (?:called|named) {_VAL}",
            "subj",
            "name",
        ),
        (rf"{i}\s?(?:{_LIVE}) {_LIVE_PREP} {_VAL}", ME, "lives_in"),
        (rf"{i}(?: now)? (?:call|am calling|'m calling) {_VAL} home", ME, "lives_in"),
        (rf"(?:my home is|my home is in|home for me is|{i} now live in) {_VAL}", ME, "lives_in"),
        (rf"{i}(?: |'m |'ve |'d )?(?:{_WORK}) (?:at|for|with|by|in) {_VAL}", ME, "works_at"),
        (rf"{i} (?:work|am working|'m working) as (?:a |an )?{_VAL}", ME, "occupation"),
        (rf"{i}(?: am|'m) (?P<val>\d{{1,3}})(?: years old| years of age| yrs old)?", ME, "age"),
        (rf"{i} (?:just )?turned (?P<val>\d{{1,3}})", ME, "age"),
        (rf"{i} was born in {_VAL}", ME, "born_in"),
        (rf"{i}(?: am|'m) (?:originally )?from {_VAL}", ME, "from"),
        (rf"{i} (?:originally )?come from {_VAL}", ME, "from"),
        (rf"{i} (?:speak|can speak) {_VAL}", ME, "speaks"),
        (rf"{i} (?:drive|own) (?:a|an) {_VAL}", ME, "drives"),
        (rf"{i} (?:play|can play) (?:the )?{_VAL}", ME, "plays"),
        (rf"{i}(?: am|'m) (?:learning|studying) {_VAL}", ME, "learning"),
        (rf"{i} (?:learn|study) {_VAL}", ME, "learning"),
        (rf"{i}(?: am|'m) married to {_VAL}", ME, "spouse"),
    ]
    for pattern, subj, relation in rules:
        m = re.fullmatch(pattern, c, re.IGNORECASE)
        if not m:
            continue
        val = _value(m["val"])
        subject = _subject(m["subj"]) if subj == "subj" else subj
        if relation is None:
            relation = "favourite_" + _relation(m["thing"])
        if not val or not subject:
            return []
        out = [Triple(subject, relation, val)]
        if pattern.startswith(i) and subj == "subj":  # "I have a cat named Tom"
            out.append(Triple(ME, "has", subject))
        return out
    # "my sister Ana lives in Paris": a name, then facts about the person
    m = re.fullmatch(rf"(?i:my) {_NP},? {_NAME},? (?P<rest>.+)", c)
    if m and _subject(m["subj"]) in _NAMED:
        subject = _subject(m["subj"])
        return [Triple(subject, "name", m["name"]), *_about(subject, m["rest"])]
    m = re.fullmatch(rf"my {_NP} (?P<rest>{_ABOUT})", c, re.IGNORECASE)
    if m:
        return _about(_subject(m["subj"]), m["rest"])
    m = re.fullmatch(rf"my {_NP} is {_VAL}", c, re.IGNORECASE)
    if m:
        subject, val = _subject(m["subj"]), _value(m["val"])
        if subject in _ATTRIBUTES and val:  # "my birthday is in May": the month
            val = re.sub(r"^(?:in|on|at) ", "", val, flags=re.IGNORECASE)
            return [Triple(ME, _ATTRIBUTES[subject], val)]
        if subject in _NAMED and re.fullmatch(_NAME, val):
            return [Triple(subject, "name", val)]
    return []


def extract(text: str) -> list[Triple]:
    """Facts stated in ``text`` (one utterance), in the order said; duplicates once.

    >>> extract("My dog's name is Rex.")
    [Triple(subject='dog', relation='name', value='Rex')]
    """
    seen: set[tuple[str, str, str]] = set()
    out = []
    for clause in _clauses(text):
        for triple in _clause(clause):
            if triple.key() not in seen:
                seen.add(triple.key())
                out.append(triple)
    return out
