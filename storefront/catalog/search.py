"""Search beyond the listing: how many products match, where each matched (name, materials, description),
close matches for a misspelt word (PostgreSQL's pg_trgm), and suggestions as the shopper types.

The listing itself (filters, full-text match, ranking, one page of cards) stays services.list_products; this
adds what a search page says about it. SQLite, the embedded default, has no pg_trgm: it gets the plain path
(exact words only, no close matches).
"""

import re
from dataclasses import dataclass

from sqlalchemy import func, literal, select, text
from sqlalchemy.orm import Session

from storefront.catalog import services as catalog
from storefront.catalog.models import Product

# Counting stops here: "1,000+ results" says as much as 91,500 and costs a bounded scan (bench/README.md).
COUNT_CAP = 1000
SUGGESTIONS = 6
# pg_trgm's word_similarity of the query to a product name at which it counts as a close match. The default
# (0.6) misses a swapped pair of letters in a short word ("neckalce" is 0.44 from "Necklace").
NEAR_THRESHOLD = 0.4
MATERIALS = re.compile(r"materials?:\s*([^\n]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Results:
    """A page of search results and what the page says about them."""

    page: catalog.Page
    total: int  # capped at COUNT_CAP + 1: more than COUNT_CAP reads "1,000+"
    matched_in: dict  # product id -> "name" | "materials" | "description"
    near: bool = False  # nothing matched every word: these are close matches of a misspelling

    @property
    def capped(self) -> bool:
        return self.total > COUNT_CAP


def search(session: Session, query: catalog.ListingQuery, per_page: int) -> Results:
    """One page of products for the query with their count, or close matches when no product matches."""
    terms = catalog.search_terms(query.q)
    page = catalog.list_products(session, query, per_page)
    if not terms:
        return Results(page, 0, {})
    dialect = session.get_bind().dialect.name
    total = count(session, query, terms, dialect)
    if total == 0 and dialect == "postgresql":
        near_page, near_total = _near_matches(session, query, per_page)
        if near_total:
            return Results(near_page, near_total, {}, near=True)
    return Results(page, total, matched_in(session, [card.product.id for card in page.cards], terms))


def count(session: Session, query: catalog.ListingQuery, terms: list[str], dialect: str) -> int:
    """How many products match, counted up to COUNT_CAP + 1."""
    matching = catalog.apply_search(catalog.filtered(query, Product.id), terms, dialect, rank=False)
    return session.scalar(select(func.count()).select_from(matching.limit(COUNT_CAP + 1).subquery()))


def _near_matches(session: Session, query: catalog.ListingQuery, per_page: int) -> tuple[catalog.Page, int]:
    """Products whose name is close to the query (the trigram index on name answers `<%`), closest first."""
    # Transaction-local, so no other query of this connection sees the lower threshold.
    session.execute(
        text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"), {"t": str(NEAR_THRESHOLD)}
    )
    wanted = " ".join(catalog.search_terms(query.q))
    close = literal(wanted).op("<%")(Product.name)
    stmt = (
        catalog.filtered(query, Product.id, Product.slug, Product.name, Product.price_from)
        .where(close)
        .order_by(func.word_similarity(wanted, Product.name).desc(), Product.id)
        .limit(per_page + 1)
        .offset((query.page - 1) * per_page)
    )
    page = catalog.page_of(session, session.execute(stmt).all(), query.page, per_page)
    total = session.scalar(
        select(func.count()).select_from(
            catalog.filtered(query, Product.id).where(close).limit(COUNT_CAP + 1).subquery()
        )
    )
    return page, total


def matched_in(session: Session, product_ids: list[int], terms: list[str]) -> dict[int, str]:
    """Where each shown product matched the words: its name, else its materials, else its description."""
    if not product_ids:
        return {}
    words = [re.compile(rf"\b{re.escape(term)}", re.IGNORECASE) for term in terms]
    found = {}
    rows = session.execute(
        select(Product.id, Product.name, Product.description).where(Product.id.in_(product_ids))
    )
    for product_id, name, description in rows:
        materials = " ".join(MATERIALS.findall(description or ""))
        for where, text_ in (("name", name), ("materials", materials), ("description", description or "")):
            if any(word.search(text_) for word in words):
                found[product_id] = where
                break
    return found


def suggestions(session: Session, q: str, limit: int = SUGGESTIONS) -> list[tuple[str, str]]:
    """(slug, name) of a few products whose name starts words like the query, for as-you-type suggestions."""
    terms = catalog.search_terms(q)
    if not terms:
        return []
    names = select(Product.slug, Product.name).where(Product.is_active)
    for term in terms:
        # Name words only: a suggestion is a product the shopper can recognise by what they typed.
        names = names.where(Product.name.ilike(f"{term}%") | Product.name.ilike(f"% {term}%"))
    # No ORDER BY: a common word matches thousands of names, and sorting them all costs more than it helps.
    return [tuple(row) for row in session.execute(names.limit(limit))]
