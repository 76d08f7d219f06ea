"""What `/status` says, in Russian."""

from __future__ import annotations

NOT_FOR_DIRECTORS = (
    "Ход заполнения анкет по школам доступен координаторам и администраторам. "
    "Ответы вашей школы можно посмотреть командой /review."
)
NO_CAMPAIGNS = (
    "Сейчас нет открытых анкетирований для школ, которые вы курируете. "
    "Ход закрытого анкетирования покажет команда /status НОМЕР, например /status 1."
)
CHOOSE_CAMPAIGN = "Открыто несколько анкетирований. По какому показать ход заполнения?"
STALE = "Эта кнопка устарела или вам недоступна. Чтобы посмотреть ход заполнения, отправьте /status"

TITLE = "📊 Ход заполнения: анкета №{number} «{title}», срок — до {deadline}"
SCOPE_REGION = "Все школы в вашей зоне ответственности: {total}."
SCOPE_MUNICIPALITY = "{municipality}: школ — {total}."
TOTALS = (
    "• не начато: {not_started}\n"
    "• заполняется: {in_progress}\n"
    "• отправлено, ждёт проверки: {submitted}\n"
    "• возвращено на доработку: {returned}\n"
    "• принято: {accepted}"
)
RULE = (
    "«Не начато» — анкету не открывали или не дали ни одного ответа; «заполняется» — "
    "есть хотя бы один ответ. «X из Y» — сколько вопросов заполнено, как директор видит "
    "на экране «Все ответы»."
)
MUNICIPALITIES = "По муниципалитетам (не начато / заполняется / отправлено / возвращено / принято):"
MUNICIPALITY_LINE = (
    "{index}. {name} — {not_started} / {in_progress} / {submitted} / {returned} / {accepted}"
)
MUNICIPALITY_HINT = "Нажмите на муниципалитет, чтобы увидеть его школы."
CHART_TITLE = "Заполнение анкеты №{number} по муниципалитетам"
CHART_CAPTION = "Анкета №{number}: ход заполнения по муниципалитетам на {day}"
PAGE = "Страница {page} из {pages}."

SCHOOLS_TITLE = "🏫 {municipality} · анкета №{number}: школ — {total}"
SCHOOL_LINE = "{index}. {name} — {state}"
SCHOOLS_HINT = "Нажмите на школу, чтобы открыть её анкету."
NO_SCHOOLS = "В этом муниципалитете анкета никому не назначена."

STATE_NAMES = {
    "not_started": "не начато",
    "in_progress": "заполняется",
    "submitted": "отправлено, ждёт проверки",
    "returned": "возвращено на доработку",
    "accepted": "принято",
}
STATUS_RESUBMITTED = "отправлено повторно, ждёт проверки"
PROGRESS = "{done} из {total}"

SCHOOL_TITLE = "🏫 {school}\n{municipality} · анкета №{number} «{title}»"
SCHOOL_STATE = "Состояние: {state}."
SCHOOL_PROGRESS = "Заполнено: {done} из {total}."
SCHOOL_SUBMITTED = "Отправлена: {when}."
SCHOOL_NOT_STARTED = "Школа ещё не начала заполнять анкету."

MISSING_TITLE = "📎 Ответы «да» без принятого документа · анкета №{number}"
MISSING_TOTALS = "Всего: ответов {answers}, школ {schools}."
MISSING_RULE = (
    "Учтены отправленные анкеты (не черновики): документа нет, или он ещё не принят координатором."
)
MISSING_NONE = (
    "Во всех отправленных анкетах документы к ответам «да» приняты. Черновики сюда не входят."
)
MISSING_SCHOOL = "🏫 {school} ({municipality})"
MISSING_LINE = "   • {question} — {reason}"
REASONS = {
    "missing": "нет документа",
    "returned": "документ возвращён на доработку",
    "unchecked": "документ не проверен",
}

BTN_MISSING = "📎 Без документа"
BTN_NEXT = "Дальше ▶"
BTN_PREV = "◀ Назад"
BTN_SCHOOLS = "🏫 Школы"
BTN_BACK_TO_SCHOOLS = "◀ К списку школ"
BTN_BACK_TO_SUMMARY = "◀ К сводке"
BTN_REVIEW = "Проверить анкету"
CAMPAIGN_BUTTON = "№{number} · до {deadline} · {title}"
