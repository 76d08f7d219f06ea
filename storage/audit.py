"""The audit log: who changed what, with the old and the new value («история», the
«Журнал изменений» sheet). Re-exported by :mod:`storage.repo` as ``repo.audit``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditLog


async def audit(
    session: AsyncSession,
    action: str,
    entity: str,
    entity_id: int | None,
    person_id: int | None = None,
    **details: Any,
) -> None:
    session.add(
        AuditLog(
            action=action, entity=entity, entity_id=entity_id, person_id=person_id, details=details
        )
    )


def same_value(a: Any, b: Any) -> bool:
    """Equality of stored answer values that does not confuse True with 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def document_ref(name: str | None, sha256: str | None) -> dict[str, Any]:
    """A document as the audit log keeps it, in ``old`` or ``new``."""
    return {"name": name, "sha256": sha256}
