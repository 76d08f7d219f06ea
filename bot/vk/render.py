"""Outgoing messages shaped for VK: inline callback keyboards within VK's limits, text split.

VK's limits (dev.vk.com, «Клавиатуры для ботов» and ``messages.send``):

* an inline keyboard has at most 10 buttons, at most 6 rows of at most 5 buttons;
* a button label is at most 40 characters, a payload at most 255 bytes of JSON;
* a message is at most 4096 characters.

A keyboard that does not fit one inline keyboard is split into pages, one message each: the
first page goes under the text, the next ones follow as «Ещё…» messages. The pages are plain
messages, so nothing has to be remembered between a press and the next one (a restart, or
another worker, sees the same buttons the user sees).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vkbottle import Callback, Keyboard

from bot.text_parts import split_text
from handlers.types import Button, OutFile, Outgoing, OutText

MAX_TEXT_LENGTH = 4096
MAX_BUTTONS = 10
MAX_ROWS = 6
MAX_ROW_WIDTH = 5
MAX_LABEL_LENGTH = 40
MAX_PAYLOAD_BYTES = 255
PAYLOAD_KEY = "c"  # {"c": "<core payload>"}: VK wants a JSON object as the payload
MORE_TEXT = "Ещё…"


def shorten_label(text: str, limit: int = MAX_LABEL_LENGTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def button_payload(button: Button) -> dict[str, str]:
    payload = {PAYLOAD_KEY: button.payload}
    size = len(json.dumps(payload).encode())
    if not button.payload or size > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"Button payload must be 1..{MAX_PAYLOAD_BYTES} bytes as JSON, got {size}: "
            f"{button.payload!r} (button {button.text!r})"
        )
    return payload


def paginate(rows: Sequence[Sequence[Button]]) -> list[list[list[Button]]]:
    """Lay button rows out as pages that each fit one inline keyboard.

    A grid wider than 5 (rows of the same width, the last one maybe shorter: the review's
    answer numbers) is re-flowed five to a row; rows are never split between pages unless a
    single row holds more than a page can take.
    """
    wrapped: list[list[Button]] = []
    for grid in _grids(rows):
        for start in range(0, len(grid), MAX_ROW_WIDTH):
            wrapped.append(grid[start : start + MAX_ROW_WIDTH])
    pages: list[list[list[Button]]] = []
    current: list[list[Button]] = []
    count = 0
    for row in wrapped:
        if current and (count + len(row) > MAX_BUTTONS or len(current) == MAX_ROWS):
            pages.append(current)
            current, count = [], 0
        current.append(row)
        count += len(row)
    if current:
        pages.append(current)
    return pages


def _grids(rows: Sequence[Sequence[Button]]) -> list[list[Button]]:
    """Rows as they are, except a run of equally wide rows over 5 joined into one list, with
    the shorter row that ends it when the run has two rows or more (a grid's remainder, not
    the navigation row after one wide row)."""
    out: list[list[Button]] = []
    width = 0  # the width of the grid being joined, 0 when none
    joined = 0  # how many rows it has
    for row in rows:
        row = list(row)
        if width and (len(row) == width or (joined >= 2 and len(row) < width)):
            out[-1].extend(row)
            joined += 1
            if len(row) < width:
                width = 0
            continue
        out.append(row)
        width, joined = (len(row), 1) if len(row) > MAX_ROW_WIDTH else (0, 0)
    return out


def keyboard_json(page: Sequence[Sequence[Button]]) -> str:
    keyboard = Keyboard(inline=True)
    for index, row in enumerate(page):
        if index:
            keyboard.row()
        for button in row:
            if not button.text.strip():
                raise ValueError(f"Button with payload {button.payload!r} has empty text")
            keyboard.add(Callback(shorten_label(button.text), payload=button_payload(button)))
    return keyboard.get_json()


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    keyboard: str | None = None


@dataclass(frozen=True, slots=True)
class FilePart:
    path: Path
    filename: str
    caption: str = ""


Part = TextPart | FilePart


def render(message: Outgoing) -> list[Part]:
    """Turn one Outgoing into VK sends; validates everything before the first send."""
    if isinstance(message, OutText):
        if not message.text.strip():
            raise ValueError("OutText with empty text cannot be sent to VK")
        keyboards = [keyboard_json(page) for page in paginate(message.buttons)]
        chunks = split_text(message.text, MAX_TEXT_LENGTH)
        parts: list[Part] = [TextPart(chunk) for chunk in chunks[:-1]]
        parts.append(TextPart(chunks[-1], keyboards[0] if keyboards else None))
        parts.extend(TextPart(MORE_TEXT, keyboard) for keyboard in keyboards[1:])
        return parts
    if isinstance(message, OutFile):
        caption = message.caption.strip()
        if len(caption) <= MAX_TEXT_LENGTH:
            return [FilePart(message.path, message.filename, caption)]
        return [FilePart(message.path, message.filename)] + [
            TextPart(chunk) for chunk in split_text(caption, MAX_TEXT_LENGTH)
        ]
    raise TypeError(f"Unsupported outgoing message: {message!r}")


def random_id(dedup: str | None, part: int) -> int:
    """VK's ``random_id``: the same (message, part) always gets the same id, so a resend is
    dropped by VK instead of shown twice. A positive int32."""
    if dedup is None:
        return secrets.randbelow(2**31 - 1) + 1
    digest = hashlib.sha256(f"{dedup}\x00{part}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1
