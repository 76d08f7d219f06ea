"""Texts of the admin commands in chat (/people) and of a closed access."""

from __future__ import annotations

ACCESS_CLOSED = "Доступ к боту закрыт. Если это ошибка, обратитесь к администратору."
HELP_ADMIN = (
    "\n/people — кто где зарегистрирован: удалить, отключить аккаунт, новый код"
    "\n/campaigns — анкетирования: закрыть, перенести срок, вернуть анкету школы"
)
ADMIN_ONLY = "Эта команда доступна только администратору. Список команд: /help"
STALE = "Этого человека или аккаунта уже нет в списке. Откройте список заново: /people"

MUNICIPALITIES = "👥 Кто зарегистрирован: {total} чел. Выберите муниципалитет:"
NOBODY = "В боте пока никто не зарегистрирован. Коды приглашения: python3 scripts/dev.py invites"
REGION_LEVEL = "Региональный уровень"
MUNICIPALITY_BUTTON = "{name} ({count})"
PEOPLE_TITLE = "👥 {place} — {count} чел., стр. {page} из {pages}"
PEOPLE_EMPTY = "👥 {place}: пока никто не зарегистрирован."
PERSON_LINE = "{n}. {name} — {role}, {where} · {platforms} · {active}"
NEVER = "не заходил(а)"
NO_ACCOUNTS = "нет аккаунтов"

CARD = "№{id} {name} — {role}\n{where}\nАккаунты: {accounts}"
CARD_REMOVED = "\n🗑 Удалён(а) из бота: доступа и сообщений нет."
ACCOUNT = "{platform} (№{id}, {state})"
ACCOUNT_OFF = "отключён"
ACCOUNT_ACTIVE = "последняя активность {active}"

BTN_PREV = "◀"
BTN_NEXT = "▶"
BTN_MUNICIPALITIES = "🏛 Муниципалитеты"
BTN_BACK = "◀ К списку"
BTN_REISSUE = "🔑 Новый код"
BTN_ADD = "➕ Добавить координатора"
BTN_DEACTIVATE = "🚫 Отключить {platform} (№{id})"
BTN_REMOVE = "🗑 Удалить"
BTN_CONFIRM_REMOVE = "Да, удалить"
BTN_CONFIRM_DEACTIVATE = "Да, отключить"
BTN_CANCEL = "Отмена"

ASK_REMOVE = (
    "Удалить {name} ({role}, {where}) из бота? Доступ закроется на всех аккаунтах, "
    "напоминания прекратятся; ответы школы останутся."
)
ASK_DEACTIVATE = (
    "Отключить аккаунт {platform} №{id} ({name})? Бот перестанет отвечать этому аккаунту; "
    "другие аккаунты человека продолжат работать."
)
REMOVED = "✅ {name} удалён(а) из бота."
DEACTIVATED = "✅ Аккаунт {platform} №{id} отключён."
NEW_CODE = "🔑 {done}\nНовый код: {code}\nПередайте его человеку: пусть отправит боту /start {code}"
NEW_INVITE = (
    "🔑 Код для нового муниципального координатора ({where}): {code}\n"
    "Передайте его: пусть отправит боту /start {code}. Директоров и региональных "
    "координаторов добавляют командой python3 scripts/dev.py people add"
)
