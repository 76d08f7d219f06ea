"""Button payloads: short strings, at most 64 bytes (Telegram's limit).

Every payload that touches a response names it, and the core checks on every press
that the response belongs to the sender; a forged payload cannot reach another school.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PAYLOAD_BYTES = 64
SEP = "|"
MAX_ID = 2**31 - 1  # the ids a button names are INTEGER columns (32-bit in PostgreSQL)
_PLAIN_NUMBER = re.compile(r"[0-9]{1,19}")  # no sign, no spaces, no digits of other scripts


class Action:
    ANSWER = "a"  # a|<response>|<question>|<row>|<value>
    DOCS_DONE = "d"  # d|<response>
    NOTE_KEEP = "k"  # k|<response>
    BACK = "b"  # b|<response>
    SKIP = "s"  # s|<response>
    REVIEW = "v"  # v|<response>
    EDIT = "e"  # e|<response>|<question>|<row>
    SUBMIT = "S"  # S|<response>
    CONFIRM = "C"  # C|<response>
    CONTINUE = "n"  # n|<response>
    CAMPAIGN = "c"  # c|<campaign>
    START = "go"  # go: start or resume the questionnaire
    REMOVE_FILE = "rf"  # rf|<response>|<attachment>
    FIX = "fx"  # fx|<response>: walk through the answers in conflict
    # coordinators (handlers/coordinator_review.py): open a response for review, at a page
    COORD_REVIEW = "cr"  # cr|<response>|<page>


@dataclass(frozen=True, slots=True)
class Payload:
    action: str
    args: tuple[str, ...] = ()

    def encode(self) -> str:
        text = SEP.join((self.action, *self.args))
        if len(text.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"button payload too long: {text!r}")
        return text

    def int_arg(self, index: int) -> int | None:
        """A non-negative integer argument an id column can hold, or None for anything a client
        could forge."""
        if index >= len(self.args) or not _PLAIN_NUMBER.fullmatch(self.args[index]):
            return None
        value = int(self.args[index])
        return value if value <= MAX_ID else None

    def str_arg(self, index: int) -> str | None:
        return self.args[index] if index < len(self.args) else None


def encode(action: str, *args: object) -> str:
    return Payload(action, tuple(str(a) for a in args)).encode()


def decode(raw: str | None) -> Payload | None:
    if not raw or len(raw.encode()) > MAX_PAYLOAD_BYTES:
        return None
    action, *args = raw.split(SEP)
    return Payload(action, tuple(args))
