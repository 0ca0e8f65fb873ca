"""Who said something, what kind of utterance it was, and whose memory it belongs to.

Every episode and fact belongs to a **user** (and optionally an **agent** acting for
that user); a recall or a fact query names the user it reads for and never sees
another user's memories. On a laptop there is one user, :data:`DEFAULT_USER`.

An episode's **role** says who said it; its **act** is the dialogue act: a
``statement`` asserts something, a ``question`` asks, a ``command`` asks for an action,
an ``answer`` is the assistant's reply to a question. Only statements (and the facts
drawn from them) are ever given back as answers. A **session** groups the turns of one
conversation; ``reply_to`` links a turn to the episode it answers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

#: The user every request reads and writes for when it names none.
DEFAULT_USER = "default"

#: A user or agent name: 1..64 characters of letters, digits and ``_.@-``.
ScopeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
#: A conversation id: 1..128 characters of letters, digits and ``_.:@-``.
SessionId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]

Role = Literal["user", "assistant", "system"]
Act = Literal["statement", "question", "command", "answer"]
#: Explicit feedback on the agent's last answer.
Feedback = Literal["good", "bad"]
