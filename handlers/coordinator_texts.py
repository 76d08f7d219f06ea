"""What the coordinator's review of a response says (handlers/coordinator_review.py)."""

from __future__ import annotations

from storage.models import ResponseStatus

NOT_FOR_DIRECTORS = (
    "Проверка анкет доступна координаторам и администраторам. "
    "Вы можете заполнить и отправить анкету своей школы: /resume, посмотреть ответы: /review."
)
NOT_FOUND = (
    "Эта анкета вам недоступна: её нет или она относится к школе вне вашей зоны. "
    "Список анкет на проверке: /check"
)
STALE = "Эта кнопка устарела. Список анкет на проверке: /check"

LIST_TITLE = "📥 Анкеты на проверке: {total}"
LIST_PAGE = "Страница {page} из {pages}."
LIST_LINE = "{number}. {school} ({municipality}) — №{campaign} «{title}», {status} {when}"
LIST_HINT = "Нажмите на школу, чтобы открыть её анкету."
LIST_EMPTY = (
    "Анкет на проверке нет. Когда школа отправит анкету, я пришлю уведомление "
    "с кнопкой «Открыть анкету»."
)

STATUS = {
    ResponseStatus.DRAFT: "заполняется школой",
    ResponseStatus.SUBMITTED: "отправлена на проверку",
    ResponseStatus.RETURNED: "возвращена на доработку",
    ResponseStatus.RESUBMITTED: "исправлена и отправлена снова",
    ResponseStatus.ACCEPTED: "принята",
}
LIST_STATUS = {ResponseStatus.SUBMITTED: "отправлена", ResponseStatus.RESUBMITTED: "исправлена"}

HEADER_SCHOOL = "🏫 {school}\n{municipality}"
HEADER_CAMPAIGN = "Анкета №{number} «{title}»"
HEADER_STATUS = "Статус: {status}"
HEADER_SENT = "Отправлена {when}{by}"
HEADER_PAGE = "Страница {page} из {pages}"
NOT_SENT = "не отправлялась"

ANSWER = "{number}. {label}: {value}"
NOTE = "   Пояснение: {note}"
DOC_STORED = "   📎 {name}"
DOC_PENDING = "   ⏳ {name} — ещё загружается, пришлю при следующем открытии"
DOC_FAILED = "   ⚠️ {name} — не удалось получить файл; попросите школу прислать его заново"
DOC_MISSING = "   ⚠️ {name} — файл не найден на сервере; сообщите администратору"
VERDICT_ACCEPTED = "   ✅ Принято"
VERDICT_RETURNED = "   ↩️ Возвращено: {comment}"
CHANGED = "   ✏️ изменено после возврата"
WAS = "   было: {value}"
NOT_ANSWERED = "нет ответа"

REVIEW_HINT = (
    "Проверьте ответы и документы: «✅ Принять» или «↩️ Вернуть» с комментарием у каждого "
    "ответа, затем «Принять всё» или «Вернуть на доработку»."
)
VIEW_ONLY = "Анкета {status}: проверять её сейчас не нужно."
FILE_CAPTION = "Ответ {number}: {label}"

BTN_ACCEPT = "✅ Принять {number}"
BTN_RETURN = "↩️ Вернуть {number}"
BTN_PREV = "‹ Назад"
BTN_NEXT = "Далее ›"
BTN_ACCEPT_ALL = "✅ Принять всё"
BTN_RETURN_ALL = "↩️ Вернуть на доработку"
BTN_HISTORY = "🕓 История"
BTN_LIST = "📥 К списку"
BTN_CANCEL = "Отмена"

ACCEPTED_ONE = "✅ Ответ {number} принят."
RETURNED_ONE = (
    "↩️ Ответ {number} отмечен к возврату. Когда отметите всё, нажмите «Вернуть на доработку»."
)
ASK_COMMENT = (
    "↩️ Ответ {number}: {label}\n\n"
    "Напишите комментарий для школы: что исправить или какой документ прислать "
    "(от {low} до {high} символов)."
)
COMMENT_TOO_SHORT = (
    "⚠️ Комментарий слишком короткий: нужно хотя бы {low} символов. Напишите, что именно исправить."
)
COMMENT_TOO_LONG = (
    "⚠️ Комментарий слишком длинный: {length} символов, можно до {high}. Сократите его."
)
COMMENT_CANCELLED = "Возврат ответа отменён."

ALREADY = {
    ResponseStatus.DRAFT: "Школа ещё не отправила эту анкету: проверять пока нечего.",
    ResponseStatus.RETURNED: (
        "Анкета уже возвращена на доработку. Когда школа исправит её и отправит снова, "
        "я пришлю уведомление."
    ),
    ResponseStatus.ACCEPTED: "Анкета уже принята.",
}
RETURNED_PENDING = (
    "Ответы {numbers} отмечены к возврату. Примите их или нажмите «Вернуть на доработку»."
)
NOTHING_TO_RETURN = (
    "Чтобы вернуть анкету на доработку, сначала нажмите «↩️ Вернуть» у ответа, который нужно "
    "исправить, и напишите комментарий."
)
ACCEPTED_ALL = "✅ Анкета школы «{school}» принята. Школа получит уведомление."
RETURNED_ALL = (
    "↩️ Анкета школы «{school}» возвращена на доработку: ответы {numbers}. "
    "Школа получит уведомление с комментариями."
)
RETURN_SUMMARY = "Вернуть на доработку ответы {numbers}"

DIRECTOR_ACCEPTED = "✅ Координатор принял анкету №{number} «{title}». Спасибо!"
DIRECTOR_RETURNED = (
    "↩️ Координатор вернул анкету №{number} «{title}» на доработку. Исправьте, пожалуйста, "
    "эти ответы:"
)
DIRECTOR_ITEM = "{number}. {label}\n   Комментарий: {comment}"
DIRECTOR_HINT = "Остальные ответы менять не нужно. Нажмите «Исправить ответы»."
BTN_FIX = "✏️ Исправить ответы"
