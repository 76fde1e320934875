"""Payments: every call we make to the gateway, recorded before it is sent, and the webhooks we received."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class PaymentAttempt(Base):
    """One gateway call. Its status runs created → sending → approved | declined | error | held | unknown,
    and an unknown one is reconciled with the gateway (by invoice number) before anything is resent."""

    __tablename__ = "payment_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # charge | capture | void | refund
    status: Mapped[str] = mapped_column(String(16), index=True)
    amount: Mapped[Decimal]
    # The gateway finds the transaction again by this invoice number when an answer was lost.
    invoice_number: Mapped[str] = mapped_column(String(20))
    # The one-time Accept.js nonce: never card data. Kept only until the charge is final.
    nonce_descriptor: Mapped[str] = mapped_column(String(64), default="")
    nonce_value: Mapped[str | None] = mapped_column(Text)
    nonce_hash: Mapped[str] = mapped_column(String(64), default="")
    trans_id: Mapped[str] = mapped_column(String(20), default="")
    ref_trans_id: Mapped[str] = mapped_column(String(20), default="")
    auth_code: Mapped[str] = mapped_column(String(8), default="")
    response_code: Mapped[str] = mapped_column(String(4), default="")
    reason_code: Mapped[str] = mapped_column(String(8), default="")
    message: Mapped[str] = mapped_column(String(255), default="")
    avs: Mapped[str] = mapped_column(String(2), default="")
    cvv: Mapped[str] = mapped_column(String(2), default="")
    account: Mapped[str] = mapped_column(String(24), default="")  # masked, e.g. "Visa XXXX1111"
    tries: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (
        # The same nonce can never make two charges for one order, however often the form is posted.
        UniqueConstraint("order_id", "kind", "nonce_hash", name="uq_payment_attempts_order_kind_nonce"),
        Index("ix_payment_attempts_status_updated_at", "status", "updated_at"),
    )


class WebhookEvent(Base):
    """An Authorize.Net webhook we accepted, kept so a repeat of the same notification is ignored."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(80))
    trans_id: Mapped[str] = mapped_column(String(20), default="")
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
