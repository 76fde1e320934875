"""The ceilings' minimal Flask app, served by gunicorn with the shop's settings (bench/ceilings/gunicorn.conf.py).

No extensions, no session, no CSRF, no limits, no security headers: only what each ceiling names.
- GET /page: a Jinja template rendered to the product page's size (the framework ceiling);
- GET /row: the same page after reading one variant row through the SQLAlchemy ORM (the one-query ceiling);
- POST /order: place-order's SQL (bench/ceilings/sql.py) in one transaction, then one RQ enqueue, then a 303
  (the checkout ceiling). The variant comes from the form, so the bench picks one hot row or many.

The engine is built like the shop's (`storefront.db.make_engine`: pool size, pre-ping), from
BENCH_CEILING_DATABASE_URL; the template folder and the number of list items come from the environment.
"""

import os
import uuid

import redis
from flask import Flask, abort, redirect, render_template, request
from rq import Queue
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

import storefront.models  # noqa: F401  (configures every mapper, as the shop does)
from bench.ceilings import sql
from bench.ceilings.page import TITLE, TOKEN, items
from storefront.catalog.models import Variant
from storefront.db import make_engine

app = Flask(__name__, template_folder=os.environ["BENCH_CEILING_TEMPLATES"])
engine = make_engine(os.environ["BENCH_CEILING_DATABASE_URL"], int(os.environ.get("DATABASE_POOL_SIZE", "5")))
Session = sessionmaker(bind=engine, expire_on_commit=False)
queue = Queue(
    "bench-ceiling",
    connection=redis.Redis.from_url(
        os.environ["BENCH_CEILING_REDIS_URL"],
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    ),
)
ROW_ID = int(os.environ.get("BENCH_CEILING_ROW_ID", "1"))
ITEMS = items(int(os.environ.get("BENCH_CEILING_ITEMS", "10")))


def noop(order_id: int) -> int:
    """The job the checkout ceiling enqueues (nothing runs it; the bench empties the queue)."""
    return order_id


@app.get("/page")
def page():
    """A template page of the product page's size."""
    return render_template("page.html", title=TITLE, token=TOKEN, items=ITEMS)


@app.get("/row")
def row():
    """The same page after one row read through the ORM."""
    with Session() as session:
        variant = session.scalar(select(Variant).where(Variant.id == ROW_ID))
    if variant is None:
        abort(404)
    return render_template("page.html", title=TITLE, token=TOKEN, items=ITEMS)


@app.post("/order")
def order():
    """Place-order's SQL in one transaction, one RQ enqueue, a 303 to the status page."""
    form = request.form
    variant_id = int(form["variant_id"])
    number = "SF-" + uuid.uuid4().hex[:10].upper()
    with Session() as session:
        session.execute(text(sql.IDEMPOTENCY), {"key": form["idempotency_key"]}).all()
        order_id = session.execute(
            text(sql.INSERT_ORDER),
            {
                "number": number,
                "key": form["idempotency_key"],
                "email": form["email"],
                "name": form["full_name"],
                "line1": form["line1"],
                "city": form["city"],
                "postal_code": form["postal_code"],
                "country": form["country"],
            },
        ).scalar_one()
        session.execute(text(sql.INSERT_LINE), {"order_id": order_id, "variant_id": variant_id}).all()
        session.execute(text(sql.INSERT_EVENT), {"order_id": order_id}).all()
        session.execute(text(sql.INSERT_ATTEMPT), {"order_id": order_id, "number": number}).all()
        session.execute(text(sql.DELETE_CART), {"cart_id": 0})
        if session.execute(text(sql.RESERVE), {"variant_id": variant_id}).rowcount != 1:
            session.rollback()
            abort(409)
        session.commit()
    queue.enqueue("bench.ceilings.app.noop", order_id)
    return redirect(f"/orders/{number}", 303)
