"""The orders transition table: every allowed move is made, every other one is refused and changes nothing."""

import pytest
from sqlalchemy import select

from storefront.orders import services as orders
from storefront.orders.models import OrderEvent
from tests.factories import make_order

STATUSES = sorted(orders.TRANSITIONS)
ALLOWED = [(start, to) for start in STATUSES for to in sorted(orders.TRANSITIONS[start])]
REFUSED = [(start, to) for start in STATUSES for to in STATUSES if to not in orders.TRANSITIONS[start]]


def test_the_table_names_every_status_it_leads_to():
    assert {to for targets in orders.TRANSITIONS.values() for to in targets} <= set(STATUSES)
    assert set(orders.LABELS) == set(STATUSES)


@pytest.mark.parametrize(("start", "to"), ALLOWED)
def test_an_allowed_transition_moves_the_order_and_records_it(session, start, to):
    order = make_order(session, status=start, reserve=False)
    assert orders.move(session, order, to)
    assert order.status == to
    event = session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)).one()
    assert (event.kind, event.data["from"], event.data["to"]) == ("status", start, to)
    assert event.message == f"{orders.LABELS[start]} → {orders.LABELS[to]}"
    assert (order.paid_at is not None) == (to == "paid")


@pytest.mark.parametrize(("start", "to"), REFUSED)
def test_a_refused_transition_raises_and_changes_nothing(session, start, to):
    order = make_order(session, status=start, reserve=False)
    with pytest.raises(orders.InvalidTransition):
        orders.move(session, order, to)
    session.expire_all()
    assert order.status == start
    assert session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)).all() == []
