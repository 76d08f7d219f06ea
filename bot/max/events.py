"""MAX updates (schema.yaml ``Update`` and its inheritors) as intake rows and core events.

* Event keys: ``message.body.mid`` for ``message_created``, ``callback.callback_id`` for
  ``message_callback`` (it identifies the pressed keyboard, so a double tap on one keyboard is
  one event), and ``<update_type>:<user or chat>:<timestamp>`` for everything else, edits
  included (an edit keeps its message's ``mid``).
* Only dialogs are served. A dialog's chat in our terms is the MAX user id: every update of a
  dialog names the user (``message.sender``, ``callback.user``, ``user``) while a callback on a
  deleted message carries no chat id at all, so replies go by ``POST /messages?user_id=``.
  Updates of group chats and channels get chat ``chat:<id>`` and mean nothing.
"""

from __future__ import annotations

from typing import Any

from bot.channel import Parsed, RawEvent
from bot.text_parts import UNSUPPORTED_TEXT, parse_command
from handlers.types import EventKind, Incoming, IncomingDocument, Platform, UserRef

EDITED_TEXT = (
    "Исправления отправленных сообщений не учитываются. "
    "Отправьте, пожалуйста, новый ответ отдельным сообщением."
)
SEVERAL_FILES_TEXT = (
    "Пришлите, пожалуйста, файлы по одному: один файл в сообщении. "
    "Ни один файл из этого сообщения не сохранён."
)
_DIALOG_UPDATES = frozenset(
    {
        "bot_started",
        "bot_stopped",
        "dialog_cleared",
        "dialog_removed",
        "dialog_muted",
        "dialog_unmuted",
    }
)
FILE_ID_LIMIT = 300  # Attachment.platform_file_id is String(300)


def _user(update: dict[str, Any]) -> dict[str, Any] | None:
    kind = update.get("update_type")
    if kind in ("message_created", "message_edited"):
        sender = (update.get("message") or {}).get("sender")
        return sender if isinstance(sender, dict) else None
    if kind == "message_callback":
        return (update.get("callback") or {}).get("user")
    user = update.get("user")
    return user if isinstance(user, dict) else None


def _is_dialog(update: dict[str, Any]) -> bool:
    message = update.get("message")
    if update.get("update_type") == "message_callback" and not message:
        return True  # a press on a message deleted meanwhile: keyboards are ours, in dialogs
    if isinstance(message, dict):
        return (message.get("recipient") or {}).get("chat_type") == "dialog"
    return update.get("update_type") in _DIALOG_UPDATES


def chat_of(update: dict[str, Any]) -> str | None:
    user = _user(update)
    if _is_dialog(update) and user and user.get("user_id") is not None:
        return str(user["user_id"])
    message = update.get("message") or {}
    chat = (message.get("recipient") or {}).get("chat_id", update.get("chat_id"))
    return f"chat:{chat}" if chat is not None else None


def key_of(update: dict[str, Any]) -> str:
    kind = str(update.get("update_type"))
    if kind == "message_created":
        mid = ((update.get("message") or {}).get("body") or {}).get("mid")
        if mid:
            return str(mid)
    if kind == "message_callback":
        callback_id = (update.get("callback") or {}).get("callback_id")
        if callback_id:
            return str(callback_id)
    if kind == "message_edited":
        mid = ((update.get("message") or {}).get("body") or {}).get("mid")
        return f"message_edited:{mid}:{update.get('timestamp')}"
    return f"{kind}:{chat_of(update)}:{update.get('timestamp')}"


def raw_events(body: Any) -> list[RawEvent]:
    """A ``GET /updates`` answer (``UpdateList``), one webhook ``Update``, or a list of them."""
    if isinstance(body, dict) and "updates" in body:
        updates = body.get("updates") or []
    elif isinstance(body, list):
        updates = body
    else:
        updates = [body]
    return [
        RawEvent(Platform.MAX, key_of(update), chat_of(update), update)
        for update in updates
        if isinstance(update, dict) and update.get("update_type")
    ]


def _user_ref(user: dict[str, Any]) -> UserRef:
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p) or None
    return UserRef(Platform.MAX, str(user["user_id"]), str(user["user_id"]), name)


def _file_id(mid: str, index: int, url: str) -> str:
    """The file's URL; a longer one is referred to by message and position instead and
    looked up again when downloaded (``MaxFileFetcher``)."""
    return url if len(url) <= FILE_ID_LIMIT else f"{mid}#{index}"


def _message(update: dict[str, Any], user: UserRef) -> Parsed:
    body = (update.get("message") or {}).get("body") or {}
    text = body.get("text") or ""
    mid = str(body.get("mid") or "")
    attachments = [a for a in body.get("attachments") or [] if isinstance(a, dict)]
    files = [(i, a) for i, a in enumerate(attachments) if a.get("type") == "file"]
    images = [(i, a) for i, a in enumerate(attachments) if a.get("type") == "image"]
    if len(files) + len(images) > 1:
        return Parsed(reply=SEVERAL_FILES_TEXT)
    if files or images:
        index, attachment = (files or images)[0]
        payload = attachment.get("payload") or {}
        url = str(payload.get("url") or "")
        if not url:
            return Parsed(reply=UNSUPPORTED_TEXT)
        is_file = bool(files)
        document = IncomingDocument(
            file_id=_file_id(mid, index, url),
            file_name=attachment.get("filename") if is_file else None,
            mime_type=None,
            size=attachment.get("size") if is_file else None,
            file_unique_id=str(payload.get("token") or payload.get("photo_id") or "") or None,
        )
        kind = EventKind.DOCUMENT if is_file else EventKind.PHOTO
        return Parsed(Incoming(user, kind, text=text, document=document, message_id=mid))
    if attachments or not text.strip():
        return Parsed(reply=UNSUPPORTED_TEXT)  # stickers, audio, video, contacts, locations…
    command = parse_command(text)
    if command is not None:
        name, args = command
        return Parsed(Incoming(user, EventKind.COMMAND, text=text, command=name, args=args))
    return Parsed(Incoming(user, EventKind.TEXT, text=text, message_id=mid))


def understand(update: dict[str, Any]) -> Parsed:
    """What one update means for the core (no I/O; answering a press is the channel's)."""
    kind = update.get("update_type")
    raw_user = _user(update)
    if not _is_dialog(update) or not raw_user or raw_user.get("user_id") is None:
        return Parsed()
    if raw_user.get("is_bot"):
        return Parsed()
    user = _user_ref(raw_user)
    if kind == "bot_started":
        payload = str(update.get("payload") or "").strip()
        text = f"/start {payload}" if payload else "/start"
        return Parsed(Incoming(user, EventKind.COMMAND, text=text, command="start", args=payload))
    if kind == "message_created":
        return _message(update, user)
    if kind == "message_edited":
        return Parsed(reply=EDITED_TEXT)
    if kind == "message_callback":
        callback = update.get("callback") or {}
        payload = callback.get("payload")
        if not payload:
            return Parsed()
        body = (update.get("message") or {}).get("body") or {}
        return Parsed(
            Incoming(
                user,
                EventKind.BUTTON,
                payload=str(payload),
                message_id=str(body["mid"]) if body.get("mid") else None,
            )
        )
    if stopped_user(update) is not None:
        return Parsed(unreachable=True)
    return Parsed()


def stopped_user(update: dict[str, Any]) -> str | None:
    """The chat (user id) that stopped the bot or removed the dialog: unreachable from now."""
    if update.get("update_type") in ("bot_stopped", "dialog_removed"):
        return chat_of(update)
    return None
