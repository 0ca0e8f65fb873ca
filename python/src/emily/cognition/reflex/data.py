"""The versioned reflex-intent data set (``data/intents.jsonl``) and the canned responses."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from emily.cognition.errors import ReflexDataError

OOS = "oos"


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance: ``intent`` is an intent name or ``"oos"``."""

    text: str
    intent: str
    split: str


def data_path(name: str) -> Path:
    """Path of a file in ``emily/cognition/data``."""
    return Path(str(resources.files("emily.cognition") / "data" / name))


def load_intents(path: Path | None = None) -> list[Utterance]:
    """Read and validate the intent file.

    Raises
    ------
    ReflexDataError
        A line is not a JSON object with ``text``, ``intent`` and ``split``
        (``train``/``heldout``), or an intent lacks one of the two splits.
    """
    path = path or data_path("intents.jsonl")
    rows: list[Utterance] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReflexDataError(f"cannot read the intent data {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            text, intent, split = obj["text"], obj["intent"], obj["split"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReflexDataError(
                f"{path}:{number}: expected {{'text', 'intent', 'split'}}: {exc}"
            ) from exc
        if not isinstance(text, str) or not text.strip() or split not in ("train", "heldout"):
            raise ReflexDataError(f"{path}:{number}: empty text or split not train/heldout")
        rows.append(Utterance(text=text, intent=str(intent), split=split))
    splits: dict[str, set[str]] = {}
    for r in rows:
        splits.setdefault(r.intent, set()).add(r.split)
    missing = sorted(i for i, s in splits.items() if s != {"train", "heldout"})
    if missing:
        raise ReflexDataError(f"{path}: intents {missing} need both a train and a heldout split")
    return rows


def fingerprint(rows: list[Utterance]) -> str:
    """Short SHA-256 of the data set, used to key a cached trained model."""
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.text}\t{r.intent}\t{r.split}\n".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class CannedResponse:
    """What the reflex does for one intent: an action kind and a response text."""

    action: str
    text: str

    def render(self, now: datetime | None = None) -> str:
        """The text with ``{time}``, ``{date}`` and ``{weekday}`` filled in (local time)."""
        now = now or datetime.now().astimezone()
        return self.text.format(
            time=now.strftime("%H:%M"), date=now.strftime("%d %B %Y"), weekday=now.strftime("%A")
        )


def load_responses(path: Path | None = None) -> dict[str, CannedResponse]:
    """Read ``data/responses.json``: intent name -> :class:`CannedResponse`."""
    path = path or data_path("responses.json")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return {k: CannedResponse(**v) for k, v in obj["intents"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ReflexDataError(f"cannot read the reflex responses {path}: {exc}") from exc
