"""Accounts looked up by id or e-mail, for the staff pages (kept apart from services.py to merge easily)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.accounts.models import User


def get_user(session: Session, user_id: int) -> User | None:
    """One account by id."""
    return session.get(User, user_id)


def user_ids_by_email(session: Session, emails: set[str]) -> dict[str, int]:
    """The ids of the accounts with these (normalized) e-mail addresses, by address."""
    if not emails:
        return {}
    return dict(session.execute(select(User.email, User.id).where(User.email.in_(emails))).tuples().all())
