"""Every change of an answer, a note or a document leaves an audit row (who, old → new); an
unchanged value leaves none. The «история» of a response, newest first, for the people who
may see the school, and for nobody else."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import AuditLog
from tests.pg import settings_on_both_databases
from tests.test_hot_path import statements
from tests.walk import NOTE, PDF, response_of, started

settings = settings_on_both_databases()


async def changes(services, response_id: int) -> list[tuple[str, str | None, object, object]]:
    """(action, question, old, new) of the response's audit rows, oldest first."""
    async with services.sessions() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == "response", AuditLog.entity_id == response_id)
            .order_by(AuditLog.id)
        )
        return [
            (r.action, r.details.get("question"), r.details.get("old"), r.details.get("new"))
            for r in rows
        ]


async def test_value_note_and_document_changes_are_audited_unchanged_ones_not(services, region):
    _harness, user = await started(services, region)
    await user.send("20")  # teachers_total
    response = await response_of(services, region.school_ids["S1"])
    await user.click("◀ Назад")
    with statements(services.engine) as seen:
        await user.send("20")  # the same value again
    user.expect("Сохранено")
    assert not [s for s in seen if "INSERT INTO audit_log" in s]
    await user.click("◀ Назад")
    await user.send("14")
    assert await changes(services, response.id) == [
        ("answer", "teachers_total", None, 20),
        ("answer", "teachers_total", 20, 14),
    ]


async def test_documents_added_and_removed_and_the_note_are_audited(services, region):
    _harness, user = await started(services, region, past_counts=True)
    response = await response_of(services, region.school_ids["S1"])
    before = len(await changes(services, response.id))
    await user.click("Да")  # pd_events
    await user.send_document(PDF, "приказ.pdf", "application/pdf")
    user.expect("приказ.pdf")
    await user.click("✅ Готово")
    await user.click("◀ Назад")
    await user.click("Нет")  # the document goes, a note is asked for
    await user.send(NOTE)
    await user.click("◀ Назад")
    await user.click("Нет")  # the same answer: no row; the note may be rewritten
    await user.send(NOTE + " Уточнение.")
    rows = (await changes(services, response.id))[before:]
    sha = next(r[3]["sha256"] for r in rows if r[0] == "attach")
    assert len(sha) == 64
    assert rows == [
        ("answer", "pd_events", None, True),
        ("attach", "pd_events", None, {"name": "приказ.pdf", "sha256": sha}),
        ("attachment_removed", "pd_events", {"name": "приказ.pdf", "sha256": sha}, None),
        ("answer", "pd_events", True, False),
        ("note", "pd_events", None, NOTE),
        ("note", "pd_events", NOTE, NOTE + " Уточнение."),
    ]
    async with services.sessions() as session:
        people = set(
            await session.scalars(
                select(AuditLog.person_id).where(
                    AuditLog.entity == "response", AuditLog.entity_id == response.id
                )
            )
        )
    assert len(people) == 1 and None not in people  # the director, on every row
