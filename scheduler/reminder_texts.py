"""What reminders say: the message templates and the small Russian wording helpers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from handlers.texts import human_date

MAX_LISTED = 15  # names listed in a digest line before "и ещё N"

ITEMS_TITLE = "⏰ Сроки по дорожной карте «{roadmap}»:"
ITEM_LINE = "• {when}: п. {number}. {action}"
EVIDENCE_LINE = "  Подтверждение: {evidence}"
ITEMS_HINT = "Когда пункт выполнен, отметьте его и приложите документ: /deadlines"
DIGEST_TITLE = "📋 Сроки по дорожной карте «{roadmap}» ({scope}):"
DIGEST_OWN = "  Ваша отметка о выполнении: ещё нет."
DIGEST_SCHOOLS = "  Отметили школы: {done} из {total}. Не отметили: {names}"
DIGEST_MUNICIPALITIES = "  Отметили муниципалитеты: {done} из {total}. Не отметили: {names}"
DIGEST_INFO = "  Исполнители: {executors}"
OVERDUE_TITLE = "⚠️ Просрочено по дорожной карте «{roadmap}» ({scope}):"
OVERDUE_LINE = "• п. {number}. {action} — срок был {due}"
OVERDUE_SCHOOLS = "  Не отметили выполнение ({count}): {names}"
UNREACHABLE_LINE = "🔕 Не получают напоминания (заблокировали бота): {names}"
CAMPAIGN_TEXT = (
    "⏰ Анкета «{title}»: {left} (срок — {deadline}), заполнено {done} из {total}. "
    "Пожалуйста, завершите и отправьте её."
)
CAMPAIGN_TEXT_NO_PROGRESS = (
    "⏰ Анкета «{title}»: {left} (срок — {deadline}). Пожалуйста, заполните и отправьте её."
)
CAMPAIGN_OVERDUE_TITLE = "⚠️ Срок анкеты «{title}» прошёл ({deadline}). Не отправили ({count}):"
BTN_CONTINUE = "▶ Продолжить заполнение"
BTN_START = "▶ Начать заполнение"


def plural(n: int, one: str, few: str, many: str) -> str:
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def days_left(days: int) -> str:
    """«осталось 3 дня», «остался 1 день», «сегодня последний день»."""
    if days <= 0:
        return "сегодня последний день"
    verb = "остался" if plural(days, "1", "", "") == "1" else "осталось"
    return f"{verb} {days} {plural(days, 'день', 'дня', 'дней')}"


def when_text(due_on: date, today: date) -> str:
    days = (due_on - today).days
    if days == 0:
        return f"сегодня, {human_date(due_on)}"
    if days == 1:
        return f"завтра, {human_date(due_on)}"
    if days > 1:
        return f"до {human_date(due_on)} (через {days} {plural(days, 'день', 'дня', 'дней')})"
    return f"срок был {human_date(due_on)}"


def listed(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" и ещё {len(names) - limit}"
    return shown


def shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
