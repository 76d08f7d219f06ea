"""Platform-neutral text pieces every channel shares: the command menu, command parsing and
splitting long texts on line boundaries (measured in UTF-16 units, the strictest count among
Telegram, VK and MAX)."""

from __future__ import annotations

TELEGRAM_TEXT_LENGTH = 4096  # UTF-16 code units

# a sticker, a voice message, a location…: what the bot can take, and what to do instead
UNSUPPORTED_TEXT = (
    "Я понимаю текст, кнопки и файлы-документы. Напишите ответ сообщением или нажмите /resume."
)

BOT_COMMANDS: list[tuple[str, str]] = [
    ("start", "Начать / ввести код приглашения"),
    ("resume", "Продолжить анкету"),
    ("review", "Проверить ответы"),
    ("help", "Помощь"),
    ("export", "Выгрузка в Excel (для координаторов)"),
    ("check", "Анкеты на проверке (для координаторов)"),
    ("status", "Ход заполнения анкет (для координаторов)"),
    ("deadlines", "Мои сроки"),
    ("link", "Связать с другим мессенджером"),
]


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(line: str, limit: int) -> tuple[str, str]:
    """Split ``line`` so that the head fits ``limit``; prefer the last space."""
    size = 0
    end = 0
    for i, ch in enumerate(line):
        size += 2 if ord(ch) > 0xFFFF else 1
        if size > limit:
            break
        end = i + 1
    head = line[:end]
    space = head.rfind(" ")
    if space > end // 2:
        return line[: space + 1], line[space + 1 :]
    return head, line[end:]


def split_text(text: str, limit: int = TELEGRAM_TEXT_LENGTH) -> list[str]:
    """Split a long text into chunks of at most ``limit`` UTF-16 units on line boundaries.

    Lines longer than ``limit`` are cut (at a space if possible). Chunks are stripped of
    surrounding newlines, and whitespace-only chunks are dropped (Telegram rejects them).
    """
    if utf16_len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if utf16_len(current) + utf16_len(line) <= limit:
            current += line
            continue
        if current:
            chunks.append(current)
            current = ""
        while utf16_len(line) > limit:
            head, line = _cut(line, limit)
            chunks.append(head)
        current = line
    if current:
        chunks.append(current)
    return [chunk.strip("\r\n") for chunk in chunks if chunk.strip()]


def parse_command(text: str) -> tuple[str, str] | None:
    """``"/start@MyBot  ABC "`` -> ``("start", "ABC")``; ``None`` if it is not a command."""
    body = text[1:] if text.startswith("/") else ""
    if not body or body[0].isspace():
        return None
    parts = body.split(maxsplit=1)
    command = parts[0].split("@", 1)[0].lower()
    if not command:
        return None
    return command, parts[1].strip() if len(parts) > 1 else ""
