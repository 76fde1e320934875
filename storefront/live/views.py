"""The live stock streams under /stream/ (served by the gevent stream pool), and what pages need to join them."""

from flask import Blueprint, Flask, Response, abort, current_app, request

from storefront.inventory import services as inventory
from storefront.live import services as live
from storefront.security import origin

bp = Blueprint("stream", __name__)


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _stream(products: tuple[int, ...], kind: str) -> Response:
    config = current_app.config
    body = live.event_stream(live.hub(), products, kind, _last_event_id(), config)
    response = Response(body, mimetype="text/event-stream")
    response.cache_control.no_store = True
    response.headers["X-Accel-Buffering"] = "no"  # nginx must pass each event on at once
    allowed = origin(config["BASE_URL"])
    if config["STREAM_URL"] and request.headers.get("Origin") == allowed:
        # The pages live on another origin (no proxy in front, as in the tests): EventSource sends cookies.
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.vary.add("Origin")
    return response


@bp.get("/products/<int:product_id>")
def product(product_id: int):
    """A product page's stream: its variants' stock labels whenever they change."""
    return _stream((product_id,), "stock")


@bp.get("/badges")
def badges():
    """A listing's stream: the sold-out badges of the products it shows (?products=1,2,3)."""
    raw = request.args.get("products", "")
    parts = [part for part in raw.split(",") if part]
    if (
        not parts
        or len(parts) > live.MAX_PRODUCTS
        or not all(part.isdigit() and len(part) < 10 for part in parts)
    ):
        abort(400, description=f"products must be 1 to {live.MAX_PRODUCTS} product ids, comma-separated.")
    return _stream(tuple(dict.fromkeys(int(part) for part in parts)), "badges")


def stream_url(path: str) -> str:
    """Where a page's sse-connect points: /stream/... on this origin (nginx routes it), or on STREAM_URL."""
    return current_app.config["STREAM_URL"].rstrip("/") + path


def live_stock_url(kind: str, product_ids) -> str | None:
    """The stream a page joins for these products, or None when live stock is off (the page polls)."""
    if not live.live_stock_on():
        return None
    ids = [int(product_id) for product_id in product_ids][: live.MAX_PRODUCTS]
    if not ids:
        return None
    if kind == "product":
        return stream_url(f"/stream/products/{ids[0]}")
    return stream_url("/stream/badges?products=" + ",".join(map(str, ids)))


def init_pages(app: Flask) -> None:
    """Pages ask `live_stock_url(...)`; stock changes are published once inventory reports them."""
    app.jinja_env.globals.update(live_stock_url=live_stock_url, live_stock_on=live.live_stock_on)
    live.connect_publisher(inventory.stock_changed)
