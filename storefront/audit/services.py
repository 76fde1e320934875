"""The audit log: record a staff change with its before and after, and browse the record."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.audit.models import AuditEntry


def _plain(values: dict) -> dict:
    """JSON-safe copies: money and dates as text."""
    return {
        key: value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        for key, value in values.items()
    }


def record(
    session: Session,
    actor,
    action: str,
    entity: str,
    entity_id,
    before: dict | None = None,
    after: dict | None = None,
    ip: str = "",
) -> AuditEntry:
    """Write who changed what, from what to what. Part of the same transaction as the change itself."""
    entry = AuditEntry(
        user_id=actor.id,
        user_email=actor.email,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=_plain(before or {}),
        after=_plain(after or {}),
        ip=ip[:45],
    )
    session.add(entry)
    return entry


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the fields that changed, on both sides."""
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    entity: str = ""
    entity_id: str = ""
    user: str = ""
    since: datetime | None = None
    until: datetime | None = None


def entries(
    session: Session, wanted: AuditFilter, page: int, per_page: int = 50
) -> tuple[list[AuditEntry], bool]:
    """One page of the log, newest first, and whether there is another."""
    stmt = select(AuditEntry)
    if wanted.action:
        stmt = stmt.where(AuditEntry.action.startswith(wanted.action))
    if wanted.entity:
        stmt = stmt.where(AuditEntry.entity == wanted.entity)
    if wanted.entity_id:
        stmt = stmt.where(AuditEntry.entity_id == wanted.entity_id)
    if wanted.user:
        stmt = stmt.where(AuditEntry.user_email.ilike(f"%{wanted.user}%"))
    if wanted.since:
        stmt = stmt.where(AuditEntry.created_at >= wanted.since)
    if wanted.until:
        stmt = stmt.where(AuditEntry.created_at < wanted.until)
    rows = list(
        session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(per_page + 1).offset((page - 1) * per_page))
    )
    return rows[:per_page], len(rows) > per_page
