"""VK updates (Bots Long Poll and Callback API share the shape) -> RawEvent and Incoming.

An update is ``{"type", "object", "group_id", "event_id", "v"}``. Only private dialogs are
served: a peer id of 2e9 and above is a group chat and is ignored. A message with several
files becomes one raw event per file (keys ``<event_id>/<n>``), so each file is handled,
stored and answered like a file sent alone.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Iterable
from typing import Any

from bot.channel import RawEvent
from bot.vk.render import PAYLOAD_KEY
from handlers.types import EventKind, Incoming, IncomingDocument, Platform, UserRef

CHAT_PEER_START = 2_000_000_000
PART_FIELD = "_attachment"  # which file of a multi-file message this raw event carries
FILE_TYPES = ("doc", "photo")
GIF_DOC_TYPE = 3  # docs «type»: 3 is a GIF, not a document for us

# Typed without the slash, the whole message: the «Начать» button VK shows a new user, and
# our commands.
COMMAND_WORDS = {
    "начать": "start",
    "start": "start",
    "resume": "resume",
    "review": "review",
    "help": "help",
    "export": "export",
    "deadlines": "deadlines",
}


def _message_of(update: dict[str, Any]) -> dict[str, Any]:
    obj = update.get("object") or {}
    if update.get("type") == "message_new":
        return obj.get("message") or {}
    return obj


def peer_of(update: dict[str, Any]) -> int | None:
    obj = update.get("object") or {}
    if update.get("type") in ("message_new", "message_edit", "message_reply"):
        peer = _message_of(update).get("peer_id")
    else:
        peer = obj.get("peer_id", obj.get("user_id"))
    return int(peer) if isinstance(peer, int | str) and str(peer).lstrip("-").isdigit() else None


def _event_key(update: dict[str, Any]) -> str:
    if update.get("event_id"):
        return str(update["event_id"])
    digest = hashlib.sha256(json.dumps(update, sort_keys=True).encode()).hexdigest()[:32]
    return f"{update.get('type', '?')}:{digest}"


def _files(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in message.get("attachments") or [] if a.get("type") in FILE_TYPES]


def raw_events(updates: Iterable[dict[str, Any]]) -> list[RawEvent]:
    events: list[RawEvent] = []
    for update in updates:
        if not isinstance(update, dict):
            continue
        key = _event_key(update)
        peer = peer_of(update)
        chat = str(peer) if peer is not None else None
        files = _files(_message_of(update)) if update.get("type") == "message_new" else []
        if len(files) <= 1:
            events.append(RawEvent(Platform.VK, key, chat, update))
            continue
        for index in range(len(files)):
            payload = {**update, PART_FIELD: index}
            events.append(RawEvent(Platform.VK, f"{key}/{index}", chat, payload))
    return events


def is_private(peer: int | None) -> bool:
    return peer is not None and 0 < peer < CHAT_PEER_START


def parse_command(text: str) -> tuple[str, str] | None:
    """``"/start ABC"`` -> ``("start", "ABC")``; ``"Начать"`` -> ``("start", "")``."""
    stripped = text.strip()
    if stripped.startswith("/"):
        body = stripped[1:]
        if not body or body[0].isspace():
            return None
        head, _, rest = body.partition(" ")
        command = head.split("@", 1)[0].lower()
        return (command, rest.strip()) if command else None
    word = COMMAND_WORDS.get(stripped.lower())
    return (word, "") if word else None


def _user(message_from: int, peer: int) -> UserRef:
    return UserRef(platform=Platform.VK, user_id=str(message_from), chat_id=str(peer))


def _document(attachment: dict[str, Any]) -> IncomingDocument | None:
    doc = attachment.get("doc") or {}
    if not doc.get("url") or doc.get("type") == GIF_DOC_TYPE:
        return None
    title = str(doc.get("title") or "") or None
    ext = str(doc.get("ext") or "").lower()
    name = title
    if name and ext and not name.lower().endswith(f".{ext}"):
        name = f"{name}.{ext}"
    mime = mimetypes.guess_type(name or f"file.{ext}")[0]
    size = doc.get("size")
    return IncomingDocument(
        file_id=str(doc["url"]),
        file_name=name,
        mime_type=mime,
        size=int(size) if isinstance(size, int) else None,
        file_unique_id=f"doc{doc.get('owner_id')}_{doc.get('id')}",
    )


def _photo(attachment: dict[str, Any]) -> IncomingDocument | None:
    photo = attachment.get("photo") or {}
    sizes = [s for s in photo.get("sizes") or [] if s.get("url")]
    if not sizes:
        return None
    largest = max(sizes, key=lambda s: int(s.get("width") or 0) * int(s.get("height") or 0))
    return IncomingDocument(
        file_id=str(largest["url"]),
        mime_type="image/jpeg",
        file_unique_id=f"photo{photo.get('owner_id')}_{photo.get('id')}",
    )


def message_to_incoming(update: dict[str, Any]) -> Incoming | None:
    """A private ``message_new`` for the core; ``None`` for content the core cannot use."""
    message = _message_of(update)
    user = _user(int(message["from_id"]), int(message["peer_id"]))
    text = str(message.get("text") or "")
    ref = str(message.get("ref") or "").strip()
    if ref:  # the first message after vk.me/<group>?ref=<code>
        return Incoming(
            user=user, kind=EventKind.COMMAND, text=f"/start {ref}", command="start", args=ref
        )
    files = _files(message)
    if files:
        attachment = files[min(int(update.get(PART_FIELD) or 0), len(files) - 1)]
        caption = text if not update.get(PART_FIELD) else ""
        if attachment["type"] == "doc":
            document = _document(attachment)
            kind = EventKind.DOCUMENT
        else:
            document = _photo(attachment)
            kind = EventKind.PHOTO
        if document is None:
            return None
        return Incoming(user=user, kind=kind, text=caption, document=document)
    if not text.strip():
        return None
    command = parse_command(text)
    if command is not None:
        return Incoming(
            user=user, kind=EventKind.COMMAND, text=text, command=command[0], args=command[1]
        )
    return Incoming(user=user, kind=EventKind.TEXT, text=text)


def button_to_incoming(update: dict[str, Any]) -> Incoming:
    """A ``message_event`` (callback button press). A payload not made by us reaches the core
    as ``None``, which it treats as «where was I»."""
    obj = update["object"]
    payload = obj.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            payload = None
    core_payload = payload.get(PAYLOAD_KEY) if isinstance(payload, dict) else None
    message_id = obj.get("conversation_message_id")
    return Incoming(
        user=_user(int(obj["user_id"]), int(obj["peer_id"])),
        kind=EventKind.BUTTON,
        payload=core_payload if isinstance(core_payload, str) else None,
        message_id=str(message_id) if message_id is not None else None,
    )
