"""Shopper-facing catalog pages: home, listings, search, product, and the live stock fragment."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, url_for
from flask import session as flask_session
from flask_login import current_user
from wtforms import BooleanField, DecimalField, Form, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from storefront.catalog import search as search_service
from storefront.catalog import services as catalog
from storefront.db import get_session, read_session
from storefront.extensions import clock
from storefront.htmx import is_htmx, render
from storefront.live import services as live
from storefront.security import csrf_token

bp = Blueprint("catalog", __name__)

MAX_PRICE = 100_000
MAX_PAGE = 1_000


# --- snapshots: what a page shows, kept for CATALOG_CACHE_SECONDS and shared by the process's requests ---


def _now() -> float:
    return clock.now()  # looked up on each call, so tests can move the clock


class CatalogCache:
    """The process's snapshots of product pages and listing results (see catalog.SnapshotCache)."""

    def __init__(self) -> None:
        self.products = catalog.SnapshotCache(maxsize=1024, timer=_now)
        self.listings = catalog.SnapshotCache(maxsize=512, timer=_now)
        self.pages = catalog.SnapshotCache(maxsize=1024, timer=_now)
        self.badges: dict[int, str] = {}

    def clear(self) -> None:
        self.products.clear()
        self.listings.clear()
        self.pages.clear()
        self.badges.clear()


@bp.record_once
def setup_cache(state) -> None:
    app: Flask = state.app
    app.extensions["catalog_cache"] = CatalogCache()


def catalog_cache() -> CatalogCache:
    return current_app.extensions["catalog_cache"]


def cache_seconds() -> float:
    return current_app.config["CATALOG_CACHE_SECONDS"]


def cached_product(slug: str) -> catalog.ProductPage | None:
    """The product page's snapshot: no query while it is fresh; it ends early at a sale's start or end."""

    def load(now: float):
        found = catalog.product_page(read_session(), datetime.fromtimestamp(now, UTC), slug=slug)
        return found, found.valid_until.timestamp() if found and found.valid_until else None

    return catalog_cache().products.get(slug, cache_seconds(), load)


def cached_categories() -> tuple[catalog.CategoryInfo, ...]:
    """Every category, for filters and links."""
    return catalog_cache().listings.get(
        "categories", cache_seconds(), lambda _now: (catalog.category_infos(read_session()), None)
    )


def cached_listing(query: catalog.ListingQuery) -> catalog.Page:
    """One page of a listing; stock flags may be a few seconds old, like the product page's."""
    per_page = current_app.config["PAGE_SIZE"]
    return catalog_cache().listings.get(
        (query, per_page),
        cache_seconds(),
        lambda _now: (catalog.list_products(read_session(), query, per_page), None),
    )


def cached_search(query: catalog.ListingQuery) -> search_service.Results:
    """One page of search results with their count and match hints, cached like a listing."""
    per_page = current_app.config["PAGE_SIZE"]
    return catalog_cache().listings.get(
        ("search", query, per_page),
        cache_seconds(),
        lambda _now: (search_service.search(get_session(), query, per_page), None),
    )


class ListingForm(Form):
    """The filters of a listing, read from the query string so every view of it is a shareable URL."""

    q = StringField("Search", validators=[Optional(), Length(max=100)])
    category = StringField("Category", validators=[Optional(), Length(max=80)])
    min_price = DecimalField(
        "Min price", places=2, validators=[Optional(), NumberRange(min=0, max=MAX_PRICE)]
    )
    max_price = DecimalField(
        "Max price", places=2, validators=[Optional(), NumberRange(min=0, max=MAX_PRICE)]
    )
    in_stock = BooleanField("In stock only")
    sort = SelectField(
        "Sort by", choices=[SelectChoice(v, label) for v, label in catalog.SORTS.items()], default="newest"
    )
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=MAX_PAGE)])

    def validate_max_price(self, field):
        low = self.min_price.data
        if field.data is not None and low is not None and field.data < low:
            raise ValidationError("Max price must be at least the min price.")


def _listing(template: str, fixed_category=None, searching: bool = False, categories=None, **context):
    """Validate the filters, run the listing query and render the page or its results fragment."""
    context.update(searching=searching, category_page=fixed_category is not None)
    args = request.args.copy()
    args.setdefault("sort", "relevance" if searching else "newest")
    form = ListingForm(args)
    categories = categories if categories is not None else cached_categories()
    category = fixed_category
    if form.validate() and fixed_category is None and form.category.data:
        category = next((c for c in categories if c.slug == form.category.data), None)
        if category is None:
            form.category.errors = ["There is no such category."]
    if form.errors:
        return render(
            template,
            "catalog/_results.html",
            status=422,
            form=form,
            categories=categories,
            category=category,
            page=None,
            **context,
        )
    if searching and not form.q.data:
        return render(
            template, "catalog/_results.html", form=form, categories=categories, page=None, **context
        )
    query = catalog.ListingQuery(
        category_id=category.id if category else None,
        min_price=form.min_price.data,
        max_price=form.max_price.data,
        in_stock=form.in_stock.data,
        q=form.q.data or "",
        sort=form.sort.data,
        page=form.page.data or 1,
    )
    if searching:
        results = cached_search(query)
        page, context["results"] = results.page, results
    else:
        page = cached_listing(query)
    return render(
        template,
        "catalog/_results.html",
        form=form,
        categories=categories,
        category=category,
        page=page,
        **context,
    )


def page_url(number: int) -> str:
    """This listing's URL with every filter kept and the page replaced."""
    args = request.args.to_dict()
    args["page"] = number
    return url_for(request.endpoint, **(request.view_args or {}), **args)


@bp.app_context_processor
def listing_helpers():
    return {"page_url": page_url, "sorts": catalog.SORTS, "countdown": countdown}


@dataclass(frozen=True)
class Countdown:
    """What a drop page shows before the start: the time left in words, and when to ask the server again."""

    seconds: int
    label: str
    poll_seconds: int


def countdown(starts_at: datetime) -> Countdown:
    """The time to a sale's start by the server's clock, so every shopper sees the same and nothing drifts."""
    left = max(0, math.ceil(starts_at.timestamp() - _now()))
    days, rest = divmod(left, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        label = f"{days} d {hours} h"
    elif hours:
        label = f"{hours} h {minutes:02d} min"
    elif minutes >= 2:
        label = f"{minutes} min"
    else:
        label = f"{minutes * 60 + seconds} s"
    # Far from the start a poll every 15 s keeps minutes right; in the last two minutes it counts seconds.
    poll = 1 if left <= 120 else min(15, left - 120)
    return Countdown(left, label, max(poll, 1))


@bp.app_template_filter("stock_state")
def stock_state_filter(variant_or_available):
    available = getattr(variant_or_available, "available", variant_or_available)
    return catalog.stock_state(available, current_app.config["LOW_STOCK_THRESHOLD"])


@bp.get("/")
def home():
    """The home page: the featured drop and the categories."""
    session = read_session()
    return render_template(
        "catalog/home.html",
        drop=catalog.running_sale_products(session, datetime.now(UTC)),
        featured=catalog.featured_products(session),
        categories=catalog.list_categories(session),
    )


@bp.get("/products")
def product_list():
    """All products, filtered, sorted and paginated."""
    return _listing("catalog/list.html")


@bp.get("/categories/<slug>")
def category(slug: str):
    """One category's products, with the same filters as the full listing."""
    categories = cached_categories()
    found = next((c for c in categories if c.slug == slug), None)
    if found is None:
        abort(404)
    return _listing("catalog/list.html", fixed_category=found, categories=categories)


@bp.get("/search")
def search():
    """Full-text search: a page, or as-you-type results for HTMX."""
    return _listing("catalog/search.html", searching=True)


@bp.get("/search/suggest")
def suggest():
    """Product names for what the shopper is typing (an HTMX fragment); without HTMX, the plain search."""
    q = request.args.get("q", "")[:100]
    if not is_htmx():
        return redirect(url_for(".search", q=q), 303)
    found = catalog_cache().listings.get(
        ("suggest", q.lower()),
        cache_seconds(),
        lambda _now: (search_service.suggestions(get_session(), q), None),
    )
    response = current_app.make_response(render_template("catalog/_suggestions.html", suggestions=found, q=q))
    response.vary.add("HX-Request")
    return response


# --- the product page: rendered once per snapshot, with holes for what is the shopper's own ---
# The page is the same for every shopper but for the CSRF token and the cart badge, so it is rendered once
# (per snapshot, signed in or not) with those two cut out, and each request only fills them in again.
# The holes are HTML comments: autoescaped shop content can never contain "<!--".
CSRF_HOLE = "<!--storefront:csrf-->"
BADGE_HOLE = "<!--storefront:badge-->"


def _badge(count: int) -> str:
    badges = catalog_cache().badges
    if count not in badges:
        if len(badges) > 100:
            badges.clear()
        badges[count] = render_template("cart/_badge.html", cart_count=count)
    return badges[count]


def _product_shell(found: catalog.ProductPage) -> str:
    token, count = csrf_token(), flask_session.get("cart_count", 0)
    html = render_template("catalog/product.html", product=found, cart_count=count)
    badge = _badge(count)
    if html.count(badge) != 1:  # a template change put the badge elsewhere: never serve a wrong one
        raise RuntimeError("the product page must show the cart badge exactly once")
    return html.replace(token, CSRF_HOLE).replace(badge, BADGE_HOLE)


@bp.get("/products/<slug>")
def product(slug: str):
    """The product page: images, description, variants with price and stock (a snapshot, see above)."""
    found = cached_product(slug)
    if found is None:
        abort(404)
    if "_flashes" in flask_session or cache_seconds() <= 0:  # a message shown once is this shopper's alone
        return render_template("catalog/product.html", product=found)
    deadline = found.valid_until.timestamp() if found.valid_until else None
    shell = catalog_cache().pages.get(
        (slug, current_user.is_authenticated, live.live_stock_on()),
        cache_seconds(),
        lambda _now: (_product_shell(found), deadline),
    )
    return shell.replace(CSRF_HOLE, csrf_token()).replace(
        BADGE_HOLE, _badge(flask_session.get("cart_count", 0))
    )


@bp.get("/products/<slug>/drop")
def product_drop(slug: str):
    """The drop box of a product page, polled while it counts down; at the start it swaps in the live offer."""
    found = cached_product(slug)
    if found is None:
        abort(404)
    response = current_app.make_response(render_template("catalog/_drop.html", product=found, polled=True))
    response.cache_control.no_store = True
    return response


@bp.get("/products/<slug>/stock")
def product_stock(slug: str):
    """The live stock fragment of a product's variants, polled by the product page."""
    variants = catalog.product_stock(get_session(), slug)
    if variants is None:
        abort(404)
    response = current_app.make_response(render_template("catalog/_stock.html", variants=variants, slug=slug))
    response.cache_control.no_store = True
    return response
