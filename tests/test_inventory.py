"""Inventory: the stock-changed signal is sent once per committed write, never for a rolled-back one, and no
code outside storefront/inventory/ updates a variant's on_hand or reserved."""

import ast
import re
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from storefront.catalog.models import Category, Product, Variant
from storefront.inventory import services as inventory
from storefront.inventory.models import StockMovement

ROOT = Path(__file__).resolve().parent.parent
STOCK_COLUMNS = {"on_hand", "reserved"}


@pytest.fixture
def committing(app):
    """Sessions that really commit (as requests and jobs do), and two variants of 10 units, removed after."""
    Session = sessionmaker(bind=app.extensions["db_engine"], expire_on_commit=False)
    suffix = uuid.uuid4().hex[:8]
    with Session() as db:
        category = Category(slug=f"inv-{suffix}", name="Inventory")
        product = Product(slug=f"inv-{suffix}", name="Inv", category=category, price_from=Decimal("5.00"))
        for n in (1, 2):
            product.variants.append(
                Variant(sku=f"INV-{suffix}-{n}", name=str(n), price=Decimal("5.00"), on_hand=10)
            )
        db.add(product)
        db.commit()
        ids = [variant.id for variant in product.variants]
        product_id, category_id = product.id, category.id
    try:
        yield Session, ids
    finally:
        with Session() as db:
            db.execute(delete(StockMovement).where(StockMovement.variant_id.in_(ids)))
            db.execute(delete(Variant).where(Variant.id.in_(ids)))
            db.execute(delete(Product).where(Product.id == product_id))
            db.execute(delete(Category).where(Category.id == category_id))
            db.commit()


@pytest.fixture
def received():
    """Every stock_changed signal sent while the test runs, as the sets of variant ids it carried."""
    signals: list[frozenset[int]] = []

    def receiver(_sender, variant_ids):
        signals.append(variant_ids)

    inventory.stock_changed.connect(receiver)
    try:
        yield signals
    finally:
        inventory.stock_changed.disconnect(receiver)


def test_a_committed_reservation_sends_one_signal_with_every_variant_id(committing, received):
    Session, (first, second) = committing
    with Session() as db:
        assert inventory.reserve(db, [(second, 2, "Two"), (first, 1, "One")]) == []
        assert received == []  # not inside the transaction
        db.commit()
    assert received == [frozenset({first, second})]


def test_the_signal_comes_after_the_commit_so_other_connections_already_see_the_stock(committing, received):
    Session, (first, _second) = committing
    seen = []
    with Session() as other:

        def look(_sender, variant_ids):
            seen.append(other.scalar(select(Variant.reserved).where(Variant.id == first)))
            other.rollback()

        inventory.stock_changed.connect(look)
        try:
            with Session() as db:
                inventory.reserve(db, [(first, 3, "One")])
                db.commit()
        finally:
            inventory.stock_changed.disconnect(look)
    assert seen == [3]


def test_a_rolled_back_write_sends_no_signal_even_when_the_session_commits_later(committing, received):
    Session, (first, second) = committing
    with Session() as db:
        inventory.adjust(db, db.get(Variant, first), "received", 5, "test")
        db.rollback()
        db.commit()
        assert received == []
        inventory.release(db, [(second, 0)])
        db.commit()
    assert received == [frozenset({second})]


def test_a_failed_reservation_rolled_back_sends_nothing(committing, received):
    Session, (first, _second) = committing
    with Session() as db:
        assert inventory.reserve(db, [(first, 11, "One")]) == [inventory.Shortage("One", 11, 10)]
        db.rollback()
    assert received == []


def test_a_savepoint_sends_nothing_until_the_outer_transaction_commits(committing, received):
    Session, (first, second) = committing
    with Session() as db:
        inventory.consume(db, [(first, 0)])
        with db.begin_nested():
            inventory.adjust(db, db.get(Variant, second), "received", 1, "test")
        assert received == []
        rolled_back = db.begin_nested()
        inventory.adjust(db, db.get(Variant, second), "received", 1, "test")
        rolled_back.rollback()
        db.commit()
    # The rolled-back savepoint's variant was also changed by the released one, so both ids come, once.
    assert received == [frozenset({first, second})]


def test_a_failing_receiver_does_not_undo_or_hide_the_committed_stock(committing, received, caplog):
    Session, (first, _second) = committing

    def broken(_sender, variant_ids):
        raise RuntimeError("receiver down")

    inventory.stock_changed.connect(broken)
    try:
        with Session() as db:
            inventory.adjust(db, db.get(Variant, first), "damaged", 4, "test")
            db.commit()
    finally:
        inventory.stock_changed.disconnect(broken)
    with Session() as db:
        assert db.scalar(select(Variant.on_hand).where(Variant.id == first)) == 6
    assert "stock_changed receiver failed" in caplog.text


def _python_files():
    for folder in ("storefront", "jobs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "inventory" not in path.relative_to(ROOT).parts:
                yield path


_SQL_UPDATE = re.compile(r"\bUPDATE\b.*\bSET\b.*\b(on_hand|reserved)\b", re.IGNORECASE | re.DOTALL)


def stock_writes(tree: ast.AST) -> list[int]:
    """Line numbers where code updates on_hand / reserved: ORM or Core .values(on_hand=...), an attribute
    assignment (variant.on_hand = ..., flushed as an UPDATE), setattr(x, "on_hand", ...) or raw SQL."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            keys = {keyword.arg for keyword in node.keywords}
            keys |= {
                key.value
                for arg in node.args
                if isinstance(arg, ast.Dict)
                for key in arg.keys
                if isinstance(key, ast.Constant)
            }
            if name == "values" and keys & STOCK_COLUMNS:
                lines.append(node.lineno)
            if (
                name == "setattr"
                and len(node.args) > 1
                and getattr(node.args[1], "value", None) in STOCK_COLUMNS
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Attribute) and target.attr in STOCK_COLUMNS for target in targets):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_UPDATE.search(node.value)
        ):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_inventory_updates_on_hand_or_reserved():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _python_files()
        for line in stock_writes(ast.parse(path.read_text(), str(path)))
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "update(Variant).values(on_hand=Variant.on_hand - 1)",
        "update(t).values({'reserved': t.c.reserved + 1})",
        "variant.on_hand -= 1",
        "setattr(variant, 'reserved', 0)",
        "text('update variants set reserved = reserved - :q where id = :id')",
    ],
)
def test_the_stock_write_check_catches_each_kind_of_update(source):
    assert stock_writes(ast.parse(source)) == [1]


def test_the_stock_write_check_allows_reads_and_inserts():
    source = "select(Variant.on_hand - Variant.reserved)\nVariant(sku='A', on_hand=3, reserved=0)"
    assert stock_writes(ast.parse(source)) == []
