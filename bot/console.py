"""The terminal adapter: the same conversation core, typed in a console.

Buttons are pressed by typing their text or «#N». A document is sent by typing a file path,
but only while the bot is waiting for one: any other line is an ordinary answer, however
much it looks like a path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

from bot import COMMAND
from handlers import callbacks as cb
from handlers.core import ConversationCore
from handlers.texts import ERROR
from handlers.types import (
    Button,
    EventKind,
    Incoming,
    IncomingDocument,
    OutFile,
    Outgoing,
    OutText,
    Platform,
    UserRef,
)

log = logging.getLogger(__name__)

DEMO_DATABASE = "demo.sqlite3"  # in DATA_DIR
EXIT_WORDS = {"exit", "quit", "выход", "/exit", "/quit"}
MAX_LINE = 4096  # what one Telegram message holds: the console is the same bot
INTRO = (
    "Консольный режим: тот же бот, что в Telegram, но в терминале.\n"
    "Кнопки нажимаются вводом их текста или номера со знаком #, например «#1».\n"
    "Когда бот просит документ, введите путь к файлу.\n"
    "Выход — «выход», Ctrl+D или Ctrl+C. Пройти демо заново: "
    f"{COMMAND} console --reset\n"
)
GOODBYE = "До свидания! Ответы сохранены — продолжить можно в любой момент."
FILE_NOT_FOUND = (
    "Файл не найден: {path}\n"
    "Проверьте путь и введите его снова (файл можно перетащить в окно терминала) "
    "или нажмите кнопку."
)
LINE_TOO_LONG = (
    "Сообщение слишком длинное: {length} символов, а в одном сообщении помещается {limit}. "
    "Сократите его, пожалуйста."
)

# An escape sequence (arrow keys in a terminal without line editing), then other controls.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b.?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_COMMAND = re.compile(r"/[A-Za-z_]\w*(?:@\w+)?")
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,6}$")
_DOCUMENT_EXTENSIONS = {
    ".pdf", ".doc", ".docx", ".odt", ".rtf", ".txt", ".xls", ".xlsx", ".ods",
    ".jpg", ".jpeg", ".png", ".zip", ".rar", ".7z",
}  # fmt: skip
# How the core asks for a file: «Пришлите файл…», «Прикрепите документ…», «пришлите ещё»,
# «Пришлите PDF, DOC/DOCX…».
_FILE_PROMPT = re.compile(
    r"\b(?:пришлите|прикрепите|приложите)\b[^\n]{0,60}?(?:файл|документ|ещё|снова|PDF)",
    re.IGNORECASE,
)


class ConsoleFileFetcher:
    """In the console a document's file id is a local path."""

    async def fetch(self, file_id: str, dest: Path) -> None:
        shutil.copyfile(file_id, dest)


def offers_document(message: OutText) -> bool:
    """Whether a reply asks for a file: a «Готово» for documents, or the core's request."""
    for row in message.buttons:
        for button in row:
            payload = cb.decode(button.payload)
            if payload is not None and payload.action == cb.Action.DOCS_DONE:
                return True
    return bool(_FILE_PROMPT.search(message.text))


def clean(line: str) -> str:
    """The typed line without terminal escapes, control characters or broken UTF-8."""
    text = line.encode("utf-8", "replace").decode("utf-8")
    text = _ESCAPES.sub("", text).replace("\t", " ")
    return _CONTROLS.sub("", text).strip()


def is_command(text: str) -> bool:
    return _COMMAND.fullmatch(text.split(maxsplit=1)[0]) is not None if text else False


def looks_like_path(text: str) -> bool:
    raw = text.strip("'\"")
    if not raw:
        return False
    if raw.startswith(("/", "~", "./", "../", ".\\", "..\\")) or re.match(r"[A-Za-z]:[\\/]", raw):
        return True
    if not any(ch.isspace() for ch in raw):
        return "/" in raw or "\\" in raw or _EXTENSION.search(raw) is not None
    return Path(raw).suffix.lower() in _DOCUMENT_EXTENSIONS


def existing_file(text: str) -> Path | None:
    """The readable file a typed path names, or None; never raises, whatever was typed."""
    raw = text.strip().strip("'\"")
    for candidate in dict.fromkeys((raw, raw.replace("\\ ", " "))):
        try:
            path = Path(candidate).expanduser()
            if path.is_file() and os.access(path, os.R_OK):
                return path.resolve()
        except (OSError, RuntimeError, ValueError):  # too long, no home directory, NUL
            continue
    return None


class ConsoleSession:
    def __init__(
        self,
        core: ConversationCore,
        user_id: str,
        out: TextIO = sys.stdout,
        display_name: str = "Пользователь консоли",
    ) -> None:
        self.core = core
        self.user = UserRef(Platform.CONSOLE, user_id, user_id, display_name)
        self.out = out
        self.buttons: list[Button] = []
        self.expects_document = False

    def to_event(self, line: str) -> Incoming | str:
        """The event a typed line stands for, or a console message when it cannot be sent."""
        text = clean(line)
        if len(text) > MAX_LINE:
            return LINE_TOO_LONG.format(length=len(text), limit=MAX_LINE)
        if is_command(text):
            command, _, args = text[1:].partition(" ")
            command = command.partition("@")[0]
            return Incoming(self.user, EventKind.COMMAND, text, command.lower(), args.strip())
        if self.expects_document and looks_like_path(text):
            path = existing_file(text)
            if path is None:
                return FILE_NOT_FOUND.format(path=text.strip("'\""))
            document = IncomingDocument(
                file_id=str(path), file_name=path.name, size=path.stat().st_size
            )
            return Incoming(self.user, EventKind.DOCUMENT, document=document)
        button = self._button(text)
        if button is not None:
            return Incoming(self.user, EventKind.BUTTON, button.text, payload=button.payload)
        return Incoming(self.user, EventKind.TEXT, text)

    def _button(self, text: str) -> Button | None:
        if text.startswith("#") and text[1:].isdigit() and len(text) < 6:
            index = int(text[1:]) - 1
            return self.buttons[index] if 0 <= index < len(self.buttons) else None
        wanted = _plain(text)
        for button in self.buttons:
            if wanted and _plain(button.text) == wanted:
                return button
        return None

    def show(self, messages: list[Outgoing]) -> None:
        replies = [m for m in messages if isinstance(m, OutText)]
        if replies:
            self.expects_document = any(offers_document(m) for m in replies)
        for message in messages:
            if isinstance(message, OutFile):
                print(
                    f"📄 Файл: {message.filename} ({message.path}) {message.caption}", file=self.out
                )
                continue
            print(message.text, file=self.out)
            if message.buttons:
                self.buttons = [button for row in message.buttons for button in row]
                numbered = (f"[#{i}] {b.text}" for i, b in enumerate(self.buttons, start=1))
                print("   " + "   ".join(numbered), file=self.out)
            print(file=self.out)
        self.out.flush()

    async def send(self, line: str) -> list[Outgoing]:
        event = self.to_event(line)
        if isinstance(event, str):
            print(event, file=self.out, end="\n\n", flush=True)
            return []
        try:
            messages = await self.core.handle(event)
        except Exception:
            log.exception("console: the core failed on a %s event", event.kind)
            messages = [OutText(ERROR)]
        self.show(messages)
        return messages

    async def run(self, read_line: Callable[[], str | None]) -> None:
        print(INTRO, file=self.out)
        await self.send("/resume")
        while True:
            line = read_line()
            if line is None or clean(line).lower() in EXIT_WORDS:
                print(GOODBYE, file=self.out, flush=True)
                return
            if clean(line):
                await self.send(line)


def _plain(text: str) -> str:
    """Letters, digits and single spaces only, so «назад» presses «◀ Назад»."""
    kept = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text.casefold())
    return " ".join(kept.split())


def stdin_reader(stream: TextIO = sys.stdin, prompt: str = "> ") -> Callable[[], str | None]:
    # Bytes that are not UTF-8 become «�» instead of ending the console.
    for each in (stream, sys.stdout):
        if hasattr(each, "reconfigure"):
            each.reconfigure(errors="replace")

    def read() -> str | None:
        if stream.isatty():
            try:
                return input(prompt)
            except EOFError:
                return None
        line = stream.readline()
        return line if line else None

    return read


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_interactive(main: Coroutine[Any, Any, None], out: TextIO = sys.stdout) -> int:
    """Run the console until it ends; the first Ctrl-C ends it cleanly (exit code 130).

    asyncio's own SIGINT handler only cancels the task, and a blocking read of the terminal
    does not notice: the first press would be lost. With a handler of our own in place,
    asyncio leaves SIGINT alone and the read is interrupted at once.
    """
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"\n{GOODBYE}", file=out, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def reset_demo(data_dir: Path) -> bool:
    """Delete the console's demo database (answers included); True when there was one."""
    database = data_dir / DEMO_DATABASE
    existed = database.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    return existed
