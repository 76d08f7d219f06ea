"""The terminal adapter: the same conversation core, typed in a console.

Buttons are pressed by typing their text or «#N»; a document is sent by typing a file path.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from handlers.core import ConversationCore
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

EXIT_WORDS = {"exit", "quit", "выход", "/exit", "/quit"}
INTRO = (
    "Консольный режим: тот же бот, что в Telegram, но в терминале.\n"
    "Кнопки нажимаются вводом их текста или номера со знаком #, например «#1».\n"
    "Чтобы приложить документ, введите путь к файлу. Выход — «выход» или Ctrl+D.\n"
)


class ConsoleFileFetcher:
    """In the console a document's file id is a local path."""

    async def fetch(self, file_id: str, dest: Path) -> None:
        shutil.copyfile(file_id, dest)


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

    def to_event(self, line: str) -> Incoming:
        text = line.strip()
        path = Path(text.strip("'\"")).expanduser()
        if len(text) > 2 and ("/" in text or "\\" in text or path.suffix) and path.is_file():
            document = IncomingDocument(
                file_id=str(path.resolve()), file_name=path.name, size=path.stat().st_size
            )
            return Incoming(self.user, EventKind.DOCUMENT, document=document)
        if text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            return Incoming(self.user, EventKind.COMMAND, text, command.lower(), args.strip())
        button = self._button(text)
        if button is not None:
            return Incoming(self.user, EventKind.BUTTON, button.text, payload=button.payload)
        return Incoming(self.user, EventKind.TEXT, line)

    def _button(self, text: str) -> Button | None:
        if text.startswith("#") and text[1:].isdigit():
            index = int(text[1:]) - 1
            return self.buttons[index] if 0 <= index < len(self.buttons) else None
        wanted = _plain(text)
        for button in self.buttons:
            if wanted and _plain(button.text) == wanted:
                return button
        return None

    def show(self, messages: list[Outgoing]) -> None:
        for message in messages:
            if isinstance(message, OutFile):
                print(
                    f"📄 Файл: {message.filename} ({message.path}) {message.caption}", file=self.out
                )
                continue
            assert isinstance(message, OutText)
            print(message.text, file=self.out)
            if message.buttons:
                self.buttons = [button for row in message.buttons for button in row]
                numbered = (f"[#{i}] {b.text}" for i, b in enumerate(self.buttons, start=1))
                print("   " + "   ".join(numbered), file=self.out)
            print(file=self.out)

    async def send(self, line: str) -> list[Outgoing]:
        messages = await self.core.handle(self.to_event(line))
        self.show(messages)
        return messages

    async def run(self, read_line: Callable[[], str | None]) -> None:
        print(INTRO, file=self.out)
        await self.send("/resume")
        while True:
            line = read_line()
            if line is None or line.strip().lower() in EXIT_WORDS:
                print(
                    "До свидания! Ответы сохранены — продолжить можно в любой момент.",
                    file=self.out,
                )
                return
            if line.strip():
                await self.send(line)


def _plain(text: str) -> str:
    """Letters, digits and single spaces only, so «назад» presses «◀ Назад»."""
    kept = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text.casefold())
    return " ".join(kept.split())


def stdin_reader(stream: TextIO = sys.stdin, prompt: str = "> ") -> Callable[[], str | None]:
    def read() -> str | None:
        if stream.isatty():
            try:
                return input(prompt)
            except EOFError:
                return None
        line = stream.readline()
        return line if line else None

    return read
