"""PCI hygiene, last of the battery on purpose (files run in name order): after sqlmap, the slowloris and a
checkout whose form carries card numbers in stray fields, nothing that passes a Luhn check and looks like a
card number is in PostgreSQL, Redis, any log file or the outbox; and the CSP limits the payment page's scripts."""

from pathlib import Path

import redis
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from storefront.catalog.models import Product, Variant
from storefront.demo import FLASH_SKU
from tests import live
from tests.security.conftest import REDIS_DB
from tests.services import REDIS_BASE_URL

CARD = "4111111111111111"


def flash_item(database_url: str) -> tuple[str, int]:
    engine = create_engine(database_url)
    with Session(engine) as session:
        slug, variant_id = session.execute(
            select(Product.slug, Variant.id).join(Variant.product).where(Variant.sku == FLASH_SKU)
        ).one()
    engine.dispose()
    return slug, variant_id


def test_no_card_number_is_kept_anywhere(live_shop):
    slug, variant_id = flash_item(live_shop.database_url)
    shopper = live.Shopper(live_shop.url)
    try:
        shopper.open_product(slug)
        shopper.add(variant_id)
        form = shopper.open_checkout()
        stray = {
            "card_number": CARD,
            "cardNumber": "4111 1111 1111 1111",
            "card_code": "123",
            "expiry": "12/30",
        }
        placed = shopper.place_order(form, **stray)
        assert placed.status_code == 303, placed.text[-500:]
        payment_page = shopper.get(placed.headers["Location"])
    finally:
        shopper.close()
    policy = payment_page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy

    database = live.ShopDb(live_shop.database_url)
    client = redis.Redis.from_url(f"{REDIS_BASE_URL}/{REDIS_DB}")
    try:
        sources = {
            "PostgreSQL": list(database.text_values()),
            "Redis": list(live.redis_values(client)),
            "logs": list(live.file_texts(live_shop.logs)),
            "outbox": list(live.file_texts(Path(live_shop.env["MAIL_OUTBOX"])))
            if Path(live_shop.env["MAIL_OUTBOX"]).exists()
            else [],
        }
    finally:
        database.dispose()
        client.close()
    findings = live.card_findings([pair for found in sources.values() for pair in found])
    print(
        "\ncard scan: "
        + ", ".join(f"{len(values)} {name} values" for name, values in sources.items())
        + f"; {len(findings)} card numbers"
    )
    assert len(sources["PostgreSQL"]) > 20 and sources["logs"]
    assert findings == []
