"""Staff stock: the low-stock view, each variant's ledger, and adjustments that stay safe during a sale."""

import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import sessionmaker

from storefront.audit.models import AuditEntry
from storefront.catalog import editing
from storefront.catalog.models import Category, Product, Variant
from storefront.checkout import services as checkout
from storefront.inventory.models import StockMovement
from tests.factories import make_product
from tests.helpers import csrf_token

HTMX = {"HX-Request": "true"}


@pytest.fixture
def token(client, staff) -> str:
    return csrf_token(client, "/admin/products/import")


def stock_rows(session) -> dict[str, int]:
    tables = (Variant, StockMovement, AuditEntry)
    counts = {table.__name__: session.scalar(select(func.count()).select_from(table)) for table in tables}
    counts["on_hand"] = session.scalar(select(func.sum(Variant.on_hand))) or 0
    return counts


def adjust(client, token, variant, reason, quantity, note="", headers=None):
    return client.post(
        f"/admin/stock/{variant.id}",
        data={"csrf_token": token, "reason": reason, "quantity": quantity, "note": note},
        headers=headers or {},
    )


@pytest.mark.parametrize(
    ("reason", "quantity", "delta", "after"),
    [
        ("received", "5", 5, 15),
        ("returned", "2", 2, 12),
        ("damaged", "3", -3, 7),
        ("recount", "4", -6, 4),
        ("recount", "10", 0, 10),
    ],
)
def test_each_reason_moves_on_hand_and_writes_the_ledger_and_the_audit(
    client, session, staff, token, reason, quantity, delta, after
):
    variant = make_product(session, variants=[{"on_hand": 10, "reserved": 2}]).variants[0]
    response = adjust(client, token, variant, reason, quantity, note="Box 7")
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/stock/{variant.id}"
    session.refresh(variant)
    assert (variant.on_hand, variant.reserved) == (after, 2)
    movement = session.scalar(select(StockMovement).where(StockMovement.variant_id == variant.id))
    assert (movement.reason, movement.delta, movement.on_hand_after, movement.note, movement.user_id) == (
        reason,
        delta,
        after,
        "Box 7",
        staff.id,
    )
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "stock.adjust"))
    assert (entry.entity, entry.entity_id, entry.user_email) == ("variant", str(variant.id), staff.email)
    assert entry.before == {"on_hand": 10}
    assert entry.after == {"on_hand": after, "reason": reason, "delta": delta, "note": "Box 7"}
    page = client.get(f"/admin/stock/{variant.id}").get_data(as_text=True)
    assert f"<td>{reason}</td>" in page and f"<td>{delta:+d}</td>" in page and staff.email in page


def test_an_htmx_adjustment_swaps_the_panel_with_the_new_figures(client, session, staff, token):
    variant = make_product(session, variants=[{"sku": "PANEL-1", "on_hand": 10}]).variants[0]
    response = adjust(client, token, variant, "received", "5", headers=HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<section id="stock-panel"')
    assert "PANEL-1: on hand 10 → 15." in body and '<p class="stat">15</p>' in body


@pytest.mark.parametrize(
    ("reason", "quantity", "message"),
    [
        ("damaged", "3", "Only 2 units can be removed: 8 of the 10 on hand are reserved for open orders."),
        ("recount", "5", "8 units are reserved for open orders, so the count can&#39;t be below 8."),
    ],
)
def test_going_below_what_is_reserved_is_refused_and_changes_nothing(
    client, session, staff, token, reason, quantity, message
):
    variant = make_product(session, variants=[{"on_hand": 10, "reserved": 8}]).variants[0]
    before = stock_rows(session)
    for headers in ({}, HTMX):
        response = adjust(client, token, variant, reason, quantity, headers=headers)
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    assert stock_rows(session) == before
    assert adjust(client, token, variant, "damaged", "2").status_code == 303  # exactly what is free
    session.refresh(variant)
    assert (variant.on_hand, variant.reserved) == (8, 8)


@pytest.mark.parametrize(
    ("reason", "quantity", "message"),
    [
        ("received", "-1", "Quantity can&#39;t be negative."),
        ("damaged", "abc", "Quantity must be a whole number."),
        ("received", "1e9", "Quantity must be a whole number."),
        ("received", "2000000", "Quantity can be at most 1,000,000."),
        ("damaged", "0", "Enter at least 1 unit"),
        ("received", "", "Enter quantity."),
        ("stolen", "1", "Not a valid choice"),
    ],
)
def test_bad_adjust_input_gets_422_with_the_message_and_changes_nothing(
    client, session, staff, token, reason, quantity, message
):
    variant = make_product(session, variants=[{"on_hand": 10}]).variants[0]
    before = stock_rows(session)
    response = adjust(client, token, variant, reason, quantity)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True) and "field-error" in response.get_data(as_text=True)
    assert stock_rows(session) == before


def test_on_hand_has_a_ceiling(client, session, staff, token):
    variant = make_product(session, variants=[{"on_hand": editing.MAX_STOCK - 1}]).variants[0]
    response = adjust(client, token, variant, "received", "5")
    assert response.status_code == 422 and "On hand can be at most 1,000,000" in response.get_data(
        as_text=True
    )


def test_the_ledger_is_newest_first_and_missing_variants_are_404(client, session, staff, token):
    variant = make_product(session, variants=[{"on_hand": 10}]).variants[0]
    adjust(client, token, variant, "received", "5", note="first")
    adjust(client, token, variant, "damaged", "1", note="second")
    page = client.get(f"/admin/stock/{variant.id}").get_data(as_text=True)
    assert page.index("second") < page.index("first")
    assert client.get("/admin/stock/999999").status_code == 404
    assert adjust(client, token, type("Missing", (), {"id": 999999}), "received", "1").status_code == 404


def test_the_low_stock_view_lists_variants_at_or_under_the_threshold(app, client, session, staff):
    threshold = app.config["LOW_STOCK_THRESHOLD"]
    make_product(session, variants=[{"sku": "LOW-3", "on_hand": 5, "reserved": 2}])
    make_product(session, variants=[{"sku": "EDGE", "on_hand": threshold}])
    make_product(session, variants=[{"sku": "PLENTY", "on_hand": threshold + 1}])
    make_product(session, is_active=False, variants=[{"sku": "ARCHIVED-0", "on_hand": 0}])
    page = client.get("/admin/stock").get_data(as_text=True)
    assert "LOW-3" in page and "EDGE" in page and "PLENTY" not in page and "ARCHIVED-0" not in page
    assert page.index("LOW-3") < page.index("EDGE")  # fewest available first
    narrow = client.get("/admin/stock?threshold=3", headers=HTMX)
    body = narrow.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="low-results"') and "LOW-3" in body and "EDGE" not in body
    wide = client.get(f"/admin/stock?threshold={threshold + 1}").get_data(as_text=True)
    assert "PLENTY" in wide
    for bad in ("-1", "abc", "1e9"):
        response = client.get(f"/admin/stock?threshold={bad}")
        assert response.status_code == 422 and 'role="alert"' in response.get_data(as_text=True)


def test_concurrent_adjustments_and_checkout_reservations_never_break_the_stock_bounds(app):
    """Real threads on real PostgreSQL, each committing: shoppers reserve while staff remove and add units."""
    Session = sessionmaker(bind=app.extensions["db_engine"], expire_on_commit=False)
    suffix = uuid.uuid4().hex[:8]
    with Session() as db:
        category = Category(slug=f"race-{suffix}", name="Race")
        product = Product(slug=f"race-{suffix}", name="Race", category=category, price_from=Decimal("5.00"))
        product.variants.append(Variant(sku=f"RACE-{suffix}", name="One", price=Decimal("5.00"), on_hand=40))
        db.add(product)
        db.commit()
        variant_id, product_id, category_id = product.variants[0].id, product.id, category.id
    tally = {"reserved": 0, "sold_out": 0, "damaged": 0, "received": 0, "refused": 0}
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def count(key: str) -> None:
        with lock:
            tally[key] += 1

    def shopper() -> None:
        start.wait()
        for _ in range(15):
            with Session() as db:
                try:
                    checkout.reserve(db, [(variant_id, 1, "Race")])
                    db.commit()
                    count("reserved")
                except checkout.OutOfStock:
                    db.rollback()
                    count("sold_out")

    def staff(reason: str) -> None:
        start.wait()
        for _ in range(12):
            with Session() as db:
                try:
                    editing.adjust_stock(db, db.get(Variant, variant_id), reason, 1, "race")
                    db.commit()
                    count(reason)
                except editing.StockRefused:
                    db.rollback()
                    count("refused")

    def guarded(target, *args):
        def run():
            try:
                target(*args)
            except BaseException as error:  # a CHECK violation or a deadlock would land here
                failures.append(error)

        return threading.Thread(target=run)

    threads = [guarded(shopper) for _ in range(5)] + [guarded(staff, "damaged") for _ in range(2)]
    threads.append(guarded(staff, "received"))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        with Session() as db:
            on_hand, reserved = db.execute(
                select(Variant.on_hand, Variant.reserved).where(Variant.id == variant_id)
            ).one()
            ledger = db.execute(
                select(StockMovement.delta, StockMovement.on_hand_after)
                .where(StockMovement.variant_id == variant_id)
                .order_by(StockMovement.id)
            ).all()
        assert 0 <= reserved <= on_hand
        assert reserved == tally["reserved"]
        assert on_hand == 40 + tally["received"] - tally["damaged"]
        assert tally["reserved"] + tally["sold_out"] == 75 and tally["damaged"] + tally["refused"] == 24
        # The ledger is a chain: each line's on_hand_after is the one before it plus its delta.
        running = 40
        for delta, on_hand_after in ledger:
            running += delta
            assert on_hand_after == running
        assert running == on_hand and len(ledger) == tally["damaged"] + tally["received"]
    finally:
        with Session() as db:
            db.execute(delete(StockMovement).where(StockMovement.variant_id == variant_id))
            db.execute(delete(Variant).where(Variant.id == variant_id))
            db.execute(delete(Product).where(Product.id == product_id))
            db.execute(delete(Category).where(Category.id == category_id))
            db.commit()
