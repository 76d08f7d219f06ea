"""Outgoing messages as JSON, for rows that carry them: the outbox, notices, broadcasts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from handlers.types import Button, OutFile, Outgoing, OutText


def encode(message: Outgoing) -> dict[str, Any]:
    if isinstance(message, OutText):
        return {
            "kind": "text",
            "text": message.text,
            "buttons": [[[b.text, b.payload] for b in row] for row in message.buttons],
        }
    if isinstance(message, OutFile):
        return {
            "kind": "file",
            "path": str(message.path),
            "filename": message.filename,
            "caption": message.caption,
        }
    raise TypeError(f"Unsupported outgoing message: {message!r}")


def decode(data: Mapping[str, Any]) -> Outgoing:
    if data["kind"] == "text":
        rows = [[Button(text, payload) for text, payload in row] for row in data["buttons"]]
        return OutText(data["text"], rows)
    if data["kind"] == "file":
        return OutFile(Path(data["path"]), data["filename"], data.get("caption") or "")
    raise ValueError(f"unknown outgoing kind {data['kind']!r}")
