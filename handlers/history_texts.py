"""Texts of the «история» view of a response (handlers/history_flow.py), in Russian."""

from __future__ import annotations

BTN_HISTORY = "🕘 История"
BTN_NEWER = "◀ Новее"
BTN_OLDER = "Старее ▶"

TITLE = "🕘 История анкеты «{title}» ({school}), сначала новые:"
PAGE = "Страница {page} из {pages}."
EMPTY = "В анкете «{title}» ({school}) пока ничего не менялось."
NOT_AVAILABLE = (
    "Эта история недоступна: анкета не найдена или не относится к вашей школе или "
    "муниципалитету. Откройте анкету заново из списка: /status или /review."
)
NO_RESPONSE = (
    "У вас пока нет анкеты с историей изменений. Начните заполнение: /start, "
    "или откройте анкету школы из списка: /status."
)

SYSTEM = "система"
ROLES = {
    "director": "директор",
    "municipal": "муниципальный координатор",
    "regional": "региональный координатор",
    "admin": "администратор",
}
EMPTY_VALUE = "—"

ANSWER = "{question}: {old} → {new}"
NOTE = "{question}: пояснение «{old}» → «{new}»"
NOTE_ADDED = "{question}: пояснение «{new}»"
NOTE_REMOVED = "{question}: пояснение удалено"
DOCUMENT_ADDED = "{question}: добавлен документ «{name}»"
DOCUMENT_REMOVED = "{question}: удалён документ «{name}»"
DOCUMENTS_REMOVED = "{question}: удалены документы ({count})"
VERDICT_ACCEPTED = "{question}: принят"
VERDICT_RETURNED = "{question}: возвращён: {comment}"
VERDICT_RETURNED_BARE = "{question}: возвращён"
PREFILL = "взяты ответы прошлого анкетирования ({answers})"
STATUS = {
    "submitted": "анкета отправлена",
    "returned": "анкета возвращена",
    "resubmitted": "анкета исправлена и отправлена",
    "accepted": "анкета принята",
}
STATUS_COMMENT = "{status}: {comment}"
