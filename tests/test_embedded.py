"""The embedded default: SQLite under instance/, no Redis, the demo catalog, the operator commands."""

import json

import pytest
from sqlalchemy import func, select

from storefront import create_app
from storefront.catalog.models import Product, Variant
from tests.helpers import ADDRESS, migrate


@pytest.fixture
def sqlite_app(tmp_path):
    url = f"sqlite:///{tmp_path / 'storefront.db'}"
    migrate(url)
    return create_app({"SECRET_KEY": "x", "DATABASE_URL": url, "MEDIA_FOLDER": str(tmp_path / "media")})


def test_embedded_shop_serves_every_page_on_sqlite(sqlite_app):
    runner = sqlite_app.test_cli_runner()
    result = runner.invoke(args=["seed-demo", "--products", "60", "--flash-stock", "7"])
    assert result.exit_code == 0, result.output
    client = sqlite_app.test_client()
    for url in [
        "/",
        "/products",
        "/products?sort=price_asc&in_stock=y&min_price=5",
        "/categories/rings",
        "/search?q=gold",
        "/search?q=zzzz",
        "/products/aurora-crystal-drop-necklace",
        "/products/aurora-crystal-drop-necklace/stock",
    ]:
        assert client.get(url).status_code == 200, url
    assert "Aurora" in client.get("/search?q=auro").get_data(as_text=True)
    image = client.get("/media/demo/aurora-crystal-drop-necklace-0.svg")
    assert image.status_code == 200 and b"<svg" in image.data


def test_seed_demo_twice_creates_no_duplicates(sqlite_app):
    runner = sqlite_app.test_cli_runner()
    first = json.loads(runner.invoke(args=["seed-demo", "--products", "40"]).output)
    second = json.loads(runner.invoke(args=["seed-demo", "--products", "40", "--flash-stock", "12"]).output)
    assert first["products_created"] == 40 and second["products_created"] == 0
    with sqlite_app.app_context():
        from storefront.db import get_session

        session = get_session()
        assert session.scalar(select(func.count(Product.id))) == 41
        skus = session.scalars(select(Variant.sku)).all()
        assert len(skus) == len(set(skus))
        assert session.scalar(select(Variant.on_hand).where(Variant.sku == "DEMO-FLASH")) == 12


def test_seed_demo_if_empty_leaves_an_existing_catalog_alone(sqlite_app):
    runner = sqlite_app.test_cli_runner()
    runner.invoke(args=["seed-demo", "--products", "5"])
    result = runner.invoke(args=["seed-demo", "--if-empty", "--flash-stock", "1"])
    assert "nothing to do" in result.output
    stock = json.loads(runner.invoke(args=["stock", "DEMO-FLASH"]).output)
    assert stock["on_hand"] == 100


def test_stock_command_prints_the_variant_as_json(sqlite_app):
    runner = sqlite_app.test_cli_runner()
    runner.invoke(args=["seed-demo", "--products", "5", "--flash-stock", "25"])
    stock = json.loads(runner.invoke(args=["stock", "DEMO-FLASH"]).output)
    assert stock == {
        "sku": "DEMO-FLASH",
        "url": "/products/aurora-crystal-drop-necklace",
        "on_hand": 25,
        "reserved": 0,
        "available": 25,
        "sold": 0,
    }
    result = runner.invoke(args=["stock", "NOPE"])
    assert result.exit_code != 0 and "no variant" in result.output


def test_embedded_default_generates_and_keeps_a_secret_key(tmp_path, monkeypatch):
    from storefront.config import load_config

    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("STOREFRONT_ENV", raising=False)
    first = load_config(str(tmp_path))["SECRET_KEY"]
    assert len(first) >= 32 and load_config(str(tmp_path))["SECRET_KEY"] == first
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
    assert load_config(str(tmp_path))["DATABASE_URL"].startswith("sqlite:///")
    assert load_config(str(tmp_path))["RATELIMIT_STORAGE_URI"] == "memory://"


def test_embedded_checkout_places_and_pays_an_order_on_sqlite(sqlite_app):
    """The whole purchase on the embedded defaults: SQLite, jobs run in-process, the test gateway."""
    import re

    from storefront.orders.models import Order

    assert sqlite_app.test_cli_runner().invoke(args=["seed-demo", "--products", "20"]).exit_code == 0
    client = sqlite_app.test_client()
    page = client.get("/products/aurora-crystal-drop-necklace").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    variant = re.search(r'name="variant_id" value="(\d+)"', page)[1]
    added = client.post("/cart/add", data={"csrf_token": token, "variant_id": variant, "quantity": 2})
    assert added.status_code == 303
    form = client.get("/checkout").get_data(as_text=True)
    key = re.search(r'name="idempotency_key"[^>]*value="([^"]+)"', form)[1]
    placed = client.post(
        "/checkout",
        data={
            "csrf_token": token,
            "idempotency_key": key,
            **ADDRESS,
            "dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT",
            "dataValue": "test-approve",
        },
    )
    assert placed.status_code == 303, placed.get_data(as_text=True)[-400:]
    assert "Your order is paid" in client.get(placed.headers["Location"]).get_data(as_text=True)
    with sqlite_app.app_context():
        from storefront.db import get_session

        order = get_session().scalar(select(Order))
        assert order.status == "paid" and len(order.lines) == 1 and order.lines[0].quantity == 2


def test_seed_demo_draws_two_to_four_pictures_per_product_and_no_two_products_of_a_category_alike(
    sqlite_app, tmp_path
):
    runner = sqlite_app.test_cli_runner()
    assert runner.invoke(args=["seed-demo", "--products", "80"]).exit_code == 0
    with sqlite_app.app_context():
        from storefront.db import get_session

        products = get_session().scalars(select(Product)).all()
        first_pictures: dict[int, set[bytes]] = {}
        for product in products:
            assert 2 <= len(product.images) <= 4, product.slug
            pictures = [(tmp_path / "media" / image.path).read_bytes() for image in product.images]
            assert len(set(pictures)) == len(pictures), f"{product.slug} shows one picture twice"
            assert all(b"<svg" in picture for picture in pictures)
            seen = first_pictures.setdefault(product.category_id, set())
            assert pictures[0] not in seen, f"{product.slug} looks like another product of its category"
            seen.add(pictures[0])
