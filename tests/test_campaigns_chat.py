"""Campaign management as the director sees it, through the real Dispatcher: a closed
campaign takes no answers and no submit, a reopened one can be fixed and sent again, and
several open campaigns can be told apart by their buttons."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.vk.render import MAX_LABEL_LENGTH
from handlers.texts import human_date
from storage.admin import close_campaign, open_campaign, reopen_response
from storage.models import Answer, ResponseStatus
from tests.walk import harness_for, registered, response_of, started, walk_to_review


async def close(services, campaign_id: int) -> None:
    async with services.sessions() as session:
        await close_campaign(session, campaign_id)
        await session.commit()


async def answers(services) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Answer))


async def test_a_closed_campaign_takes_no_more_answers(services, region):
    _harness, user = await started(services, region)
    user.expect("вопрос 1 из")
    await close(services, region.campaign_id)
    await user.send("20")
    user.expect("№1", "закрыто")
    assert await answers(services) == 0


async def test_a_closed_campaign_takes_no_submit(services, region):
    _harness, user = await started(services, region)
    await walk_to_review(services, user)
    await close(services, region.campaign_id)
    await user.click("📨 Отправить анкету")
    user.expect("закрыто", "ответы больше не принимаются")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.DRAFT and response.submitted_at is None


async def test_the_start_button_of_a_closed_campaign_says_it_is_closed(services, region):
    harness = harness_for(services)
    user = await registered(harness, region)
    await close(services, region.campaign_id)
    await user.click("▶ Начать заполнение")
    user.expect("«Мониторинг 2026»", "закрыто")
    assert await response_of(services, region.school_ids["S1"]) is None


async def test_a_reopened_response_can_be_fixed_and_sent_again(services, region):
    _harness, user = await started(services, region)
    await walk_to_review(services, user)
    await user.click("📨 Отправить анкету")
    await user.click("Да, отправить")
    user.expect("отправлена")
    await user.send("/review")
    assert "📨 Отправить анкету" not in user.buttons()
    async with services.sessions() as session:
        await reopen_response(session, region.campaign_id, "S1")
        await session.commit()
    await user.send("/review")
    assert "📨 Отправить анкету" in user.buttons()
    await user.click("1")
    await user.send("20")
    user.expect("✅ Сохранено")
    await user.click("📨 Отправить анкету")
    await user.click("Да, отправить")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.RESUBMITTED  # submitted → returned → resubmitted


async def test_two_campaigns_of_one_form_are_told_apart_by_number_period_and_deadline(
    services, region
):
    today = services.conversation.today()
    async with services.sessions() as session:
        form = services.forms.latest("shnor_school")
        await open_campaign(
            session,
            form,
            today + timedelta(days=40),
            today,
            "Мониторинг 2026",  # the same title on purpose
            force=True,
        )
        await session.commit()
    harness = harness_for(services)
    user = await registered(harness, region)
    intro = user.expect("№1 «Мониторинг 2026»", "№2 «Мониторинг 2026»")
    for days in (14, 40):
        assert human_date(today + timedelta(days=days)) in intro
    labels = user.buttons()
    assert len(labels) == 2
    assert labels[0].startswith("№1") and labels[1].startswith("№2")
    shown = [label[:MAX_LABEL_LENGTH] for label in labels]  # what VK keeps
    assert shown[0] != shown[1]
    for label, days in zip(shown, (14, 40), strict=True):
        assert f"{(today + timedelta(days=days)):%d.%m.%Y}" in label
    await user.click(labels[1])
    user.expect("Анкета №2 «Мониторинг 2026»")
    user.expect("вопрос 1 из")
