"""Outgoing messages as MAX ``NewMessageBody`` JSON, kept within MAX's limits.

Limits (source in brackets):

* text at most 4000 characters [schema.yaml ``NewMessageBody.text.maxLength``]; longer texts
  are split on line boundaries, counted in UTF-16 code units (never more than characters);
* a button label 1–128 characters [``Button.text``], a callback payload at most 1024
  [``CallbackButton.payload.maxLength``];
* at most 7 buttons a row and 30 rows [dev.max.ru, «Клавиатура»; not in schema.yaml]: a
  longer row is wrapped onto the next rows, more rows than 30 is an error of the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.text_parts import split_text, utf16_len
from handlers.types import Button, OutFile, Outgoing, OutText

MAX_TEXT_LENGTH = 4000
MAX_LABEL_LENGTH = 128
MAX_PAYLOAD_LENGTH = 1024
MAX_ROW_BUTTONS = 7
MAX_ROWS = 30


def _label(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ValueError("a button needs a label")
    return text if len(text) <= MAX_LABEL_LENGTH else text[: MAX_LABEL_LENGTH - 1] + "…"


def keyboard(rows: Sequence[Sequence[Button]]) -> dict[str, Any] | None:
    """An ``inline_keyboard`` attachment of callback buttons; ``None`` without buttons."""
    rendered: list[list[dict[str, str]]] = []
    for row in rows:
        buttons = []
        for button in row:
            if not 1 <= len(button.payload) <= MAX_PAYLOAD_LENGTH:
                raise ValueError(
                    f"button payload must be 1..{MAX_PAYLOAD_LENGTH} characters: "
                    f"{button.payload[:40]!r} (button {button.text!r})"
                )
            label = _label(button.text)
            buttons.append({"type": "callback", "text": label, "payload": button.payload})
        rendered.extend(
            buttons[i : i + MAX_ROW_BUTTONS] for i in range(0, len(buttons), MAX_ROW_BUTTONS)
        )
    if not rendered:
        return None
    if len(rendered) > MAX_ROWS:
        raise ValueError(f"{len(rendered)} button rows, MAX shows at most {MAX_ROWS}")
    return {"type": "inline_keyboard", "payload": {"buttons": rendered}}


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    keyboard: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        return {"text": self.text, "attachments": [self.keyboard] if self.keyboard else []}


@dataclass(frozen=True, slots=True)
class FilePart:
    path: Path
    filename: str
    caption: str = ""


Part = TextPart | FilePart


def texts(text: str) -> list[str]:
    return split_text(text, MAX_TEXT_LENGTH)


def render(message: Outgoing) -> list[Part]:
    """One Outgoing as API sends, validated before anything is sent."""
    if isinstance(message, OutText):
        markup = keyboard(message.buttons)
        if not message.text.strip():
            raise ValueError("an empty text cannot be sent to MAX")
        chunks = texts(message.text)
        parts: list[Part] = [TextPart(chunk) for chunk in chunks[:-1]]
        parts.append(TextPart(chunks[-1], markup))  # the keyboard goes under the last chunk
        return parts
    if isinstance(message, OutFile):
        caption = message.caption.strip()
        if utf16_len(caption) <= MAX_TEXT_LENGTH:
            return [FilePart(message.path, message.filename, caption)]
        return [FilePart(message.path, message.filename)] + [TextPart(c) for c in texts(caption)]
    raise TypeError(f"Unsupported outgoing message: {message!r}")


def edited_body(message: OutText) -> dict[str, Any]:
    """``PUT /messages`` body: an empty attachment list removes the old keyboard."""
    text = message.text
    if utf16_len(text) > MAX_TEXT_LENGTH:
        text = split_text(text, MAX_TEXT_LENGTH - 2)[0] + "\n…"
    return TextPart(text, keyboard(message.buttons)).body()
