"""The stock ledger. The stock itself lives on the variant (catalog), written only by inventory services."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class StockMovement(Base):
    """One line of a variant's stock ledger: why on_hand changed, by how much, and who changed it."""

    __tablename__ = "stock_movements"

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    delta: Mapped[int]
    reason: Mapped[str] = mapped_column(String(24))  # received | damaged | recount | shipped | returned
    note: Mapped[str] = mapped_column(String(255), default="")
    on_hand_after: Mapped[int]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
