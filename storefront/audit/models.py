"""The audit log: every staff change to prices, stock, orders, customers, staff or settings."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Kept as text too, so the record survives the staff account.
    user_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))  # e.g. product.update, stock.adjust, order.refund
    entity: Mapped[str] = mapped_column(String(32))  # product | variant | order | user | sale | setting
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    before: Mapped[dict] = mapped_column(JSON, default=dict)
    after: Mapped[dict] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(45), default="")

    __table_args__ = (Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),)
