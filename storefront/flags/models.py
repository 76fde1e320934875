"""Flags (who sees a feature), switches (on or off for all) and samples (a share of calls)."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class Flag(Base):
    """On for a shopper when `everyone` says so, else when any rule matches: staff, a listed account, or the
    shopper's sticky bucket falling under `percent`. `everyone` None means "go by the rules"."""

    __tablename__ = "flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    everyone: Mapped[bool | None] = mapped_column(Boolean)
    staff: Mapped[bool] = mapped_column(default=False)
    percent: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    # Account ids, not e-mails: an address can change hands, an id cannot.
    accounts: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Switch(Base):
    __tablename__ = "switches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Sample(Base):
    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    percent: Mapped[Decimal] = mapped_column(Numeric(4, 1), default=Decimal("0"))
    note: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
