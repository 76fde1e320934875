"""Search at catalog size: median wall time of the search service calls (15 runs each, bounded), cache off.

DATABASE_URL=postgresql+psycopg2://…/big python -m bench.search    (a database seeded with
`flask --app wsgi seed-demo --products 100000`; not part of `make bench`)
"""

import statistics
import time

from sqlalchemy import func, select

from storefront import create_app
from storefront.catalog import search
from storefront.catalog.models import Product
from storefront.catalog.services import ListingQuery, list_products
from storefront.db import get_session

app = create_app({"CATALOG_CACHE_SECONDS": 0})
with app.app_context():
    session = get_session()
    print("products:", session.scalar(select(func.count(Product.id))))
    for label, call in [
        (
            "list_products q=gold (before: page only)",
            lambda: list_products(session, ListingQuery(q="gold", sort="relevance"), 24),
        ),
        (
            "search q=gold (page + capped count + hints)",
            lambda: search.search(session, ListingQuery(q="gold", sort="relevance"), 24),
        ),
        ("search q=pearl", lambda: search.search(session, ListingQuery(q="pearl", sort="relevance"), 24)),
        (
            "search q=neckalce (close matches)",
            lambda: search.search(session, ListingQuery(q="neckalce", sort="relevance"), 24),
        ),
        ("suggestions q=hal", lambda: search.suggestions(session, "hal")),
        ("suggestions q=gold ring", lambda: search.suggestions(session, "gold ring")),
        ("suggestions q=unobtainium (no match)", lambda: search.suggestions(session, "unobtainium")),
    ]:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            result = call()
            times.append((time.perf_counter() - start) * 1000)
            session.rollback()
        extra = f" total={result.total} near={result.near}" if hasattr(result, "total") else ""
        print(f"{label}: median {statistics.median(times):.1f} ms{extra}")
