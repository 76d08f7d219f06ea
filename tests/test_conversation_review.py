"""Review, gaps, conflicts and resuming: the director always knows what is left to do."""

from __future__ import annotations

from bot.app import create_services
from storage.models import ResponseStatus
from tests.walk import (
    NOTE,
    PDF,
    harness_for,
    position,
    registered,
    response_of,
    started,
    walk_to_review,
)

DESCRIPTION = "при ответе «да» прикрепите"


def _marked(review: str) -> list[str]:
    """The numbered review lines that carry a ❗ mark."""
    return [line for line in review.splitlines() if line[:1].isdigit() and "❗" in line]


# --- item 2: conflicts after an edit -------------------------------------------------------------


async def test_lowering_the_total_marks_every_conflict_and_offers_to_fix_them(services, region):
    _harness, user = await started(services, region)
    await walk_to_review(services, user)  # 20 teachers, 5 in each of the seven counts
    await user.click("1")
    await user.send("3")
    review = user.expect("✅ Сохранено", "Ваши ответы")
    marked = _marked(review)
    assert [line.split(".")[0] for line in marked] == ["2", "3", "4", "5", "6", "7", "8"]
    assert all("ответом 1" in line for line in marked)
    assert "не сходятся" in review
    assert "🛠 Исправить по очереди" in user.buttons()
    await user.click("🛠 Исправить по очереди")
    user.expect("вопрос 2 из 17", "(3)")
    for number in range(3, 9):
        await user.send("2")
        user.expect(f"вопрос {number} из 17", "(3)")
    await user.send("1")
    review = user.expect("Ваши ответы", "Противоречий больше нет")
    assert "❗" not in review
    await user.click("📨 Отправить анкету")
    user.expect("Отправить анкету «Мониторинг 2026»?")


async def test_a_conflict_in_the_walk_is_caught_at_once(services, region):
    _harness, user = await started(services, region)
    for text in ("20", "5", "5"):
        await user.send(text)
    await user.click("◀ Назад")
    await user.click("◀ Назад")
    await user.click("◀ Назад")
    await user.send("4")  # the two counts given so far (5) are now above the total
    review = user.expect("не сходятся")
    assert [line.split(".")[0] for line in _marked(review)] == ["2", "3"]


# --- item 3: gaps after a blocked submit ----------------------------------------------------------


async def test_a_blocked_submit_walks_every_gap_before_the_review(services, region):
    _harness, user = await started(services, region, past_counts=True)
    await user.click("📋 Все ответы")
    await user.click("📨 Отправить анкету")
    user.expect("Не заполнено: 9, 10, 11", "вопрос 9 из 17")
    answered = await walk_to_review(services, user, yes=True)
    assert answered == 9  # every gap in turn, and only then the review
    user.expect("Заполнено: 17 из 17")


async def test_continue_goes_to_the_first_unanswered_question(services, region):
    _harness, user = await started(services, region)
    for text in ("20", "5", "5"):
        await user.send(text)
    await user.click("◀ Назад")
    await user.click("◀ Назад")
    user.expect("вопрос 2 из 17")
    await user.click("📋 Все ответы")
    await user.click("Продолжить заполнение")
    user.expect("вопрос 4 из 17")


async def test_yes_and_no_typed_on_the_review_are_understood(services, region):
    _harness, user = await started(services, region)
    await walk_to_review(services, user)
    await user.send("нет")
    text = user.expect("не отправлена")
    assert "Нет ответа с номером" not in text
    mode, _ = await position(services, "tg", "1001")
    assert mode == "review"
    await user.send("может быть")
    user.expect("напишите его номер (от 1 до 17)", "«отправить»")
    await user.send("Да")
    user.expect("Отправить анкету «Мониторинг 2026»?")
    await user.send("да")
    user.expect("отправлена")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.SUBMITTED


# --- item 4: resuming shows the question ----------------------------------------------------------


async def _restarted(settings, services):
    await services.close()
    restarted = await create_services(settings)
    return restarted, harness_for(restarted).user(1001, "Анна")


async def test_resume_in_the_middle_of_a_note_shows_its_question(settings, region):
    _harness, user = await started(region.services, region, past_counts=True)
    await user.click("Нет")
    restarted, again = await _restarted(settings, region.services)
    try:
        await again.send("/resume")
        again.expect("вопрос 9 из 17", "Вовлечена ли ОУ", "Текущий ответ: Нет", "записку")
        await again.send(NOTE)
        again.expect("Записка сохранена", "вопрос 10 из 17")
    finally:
        await restarted.close()


async def test_resume_in_the_middle_of_documents_shows_its_question_and_files(settings, region):
    _harness, user = await started(region.services, region, past_counts=True)
    await user.click("Да")
    await user.send_document(PDF, "приказ.pdf", "application/pdf")
    restarted, again = await _restarted(settings, region.services)
    try:
        await again.send("/resume")
        again.expect("Вовлечена ли ОУ", "Текущий ответ: Да", "📎 приказ.pdf", "Прикрепите")
    finally:
        await restarted.close()


# --- item 6: the form's description ---------------------------------------------------------------


async def test_the_form_description_is_shown_once_when_starting(services, region):
    harness = harness_for(services)
    user = await registered(harness, region)
    await user.click("▶ Начать заполнение")
    user.expect(DESCRIPTION)
    await user.send("20")
    await user.send("/start")
    await user.click("▶ Начать заполнение")
    assert not any(DESCRIPTION in text for text in user.texts())
    user.expect("вопрос 2 из 17")
