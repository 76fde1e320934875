"""Shopper-facing catalog pages: home, listings, search, product, and the live stock fragment."""

from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, render_template, request, url_for
from wtforms import BooleanField, DecimalField, Form, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from storefront.catalog import services as catalog
from storefront.db import get_session
from storefront.htmx import render

bp = Blueprint("catalog", __name__)

MAX_PRICE = 100_000
MAX_PAGE = 1_000


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


def _listing(template: str, fixed_category=None, searching: bool = False, **context):
    """Validate the filters, run the listing query and render the page or its results fragment."""
    context.update(searching=searching, category_page=fixed_category is not None)
    session = get_session()
    args = request.args.copy()
    args.setdefault("sort", "relevance" if searching else "newest")
    form = ListingForm(args)
    categories = catalog.list_categories(session)
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
    page = catalog.list_products(session, query, current_app.config["PAGE_SIZE"])
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
    return {"page_url": page_url, "sorts": catalog.SORTS}


@bp.app_template_filter("stock_state")
def stock_state_filter(variant_or_available):
    available = getattr(variant_or_available, "available", variant_or_available)
    return catalog.stock_state(available, current_app.config["LOW_STOCK_THRESHOLD"])


@bp.get("/")
def home():
    """The home page: the featured drop and the categories."""
    session = get_session()
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
    found = catalog.get_category(get_session(), slug)
    if found is None:
        abort(404)
    return _listing("catalog/list.html", fixed_category=found)


@bp.get("/search")
def search():
    """Full-text search: a page, or as-you-type results for HTMX."""
    return _listing("catalog/search.html", searching=True)


@bp.get("/products/<slug>")
def product(slug: str):
    """The product page: images, description, variants with price and stock."""
    session = get_session()
    found = catalog.get_product(session, slug)
    if found is None:
        abort(404)
    prices = catalog.sale_prices(session, [v.id for v in found.variants], datetime.now(UTC))
    return render_template("catalog/product.html", product=found, sale_prices=prices)


@bp.get("/products/<slug>/stock")
def product_stock(slug: str):
    """The live stock fragment of a product's variants, polled by the product page."""
    variants = catalog.product_stock(get_session(), slug)
    if variants is None:
        abort(404)
    response = current_app.make_response(render_template("catalog/_stock.html", variants=variants, slug=slug))
    response.cache_control.no_store = True
    return response
