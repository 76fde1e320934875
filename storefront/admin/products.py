"""Admin: products, their variants and images, categories, and the CSV export and import."""

from collections import Counter
from datetime import UTC, datetime

from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import CombinedMultiDict, FileStorage
from wtforms import (
    BooleanField,
    FileField,
    Form,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from storefront.admin import ADMIN_LINKS, bp
from storefront.admin.fields import CountField, MoneyField, strip
from storefront.audit import services as audit
from storefront.catalog import csvio, editing, images
from storefront.catalog import services as catalog
from storefront.catalog.models import Category
from storefront.db import get_session
from storefront.extensions import client_ip
from storefront.htmx import is_htmx, render

ADMIN_LINKS.append(("admin.product_list", "Products"))
ADMIN_LINKS.append(("admin.category_list", "Categories"))

# Room for the multipart framing and the other fields around an image of MAX_IMAGE_BYTES.
UPLOAD_OVERHEAD = 64 * 1024
SHOWN_CHANGES = 500


# The services' patterns, anchored at both ends (Regexp anchors only the start).
SLUG_RULE = Regexp(editing.SLUG_PATTERN.pattern + r"\Z", message=f"A slug may only {editing.SLUG_HINT}.")
SKU_RULE = Regexp(editing.SKU_PATTERN.pattern + r"\Z", message=f"A SKU must {editing.SKU_HINT}.")


class ProductForm(Form):
    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=200)])
    slug = StringField(
        "Slug (web address)", filters=[strip], validators=[Optional(), Length(max=160), SLUG_RULE]
    )
    category_id = SelectField("Category", coerce=int)
    description = TextAreaField("Description", filters=[strip], validators=[Optional(), Length(max=5000)])
    is_featured = BooleanField("Featured on the home page")


class VariantForm(Form):
    sku = StringField(
        "SKU",
        filters=[strip],
        validators=[DataRequired(), Length(max=64), SKU_RULE],
    )
    name = StringField("Variant name", filters=[strip], validators=[DataRequired(), Length(max=120)])
    price = MoneyField("Price", render_kw={"inputmode": "decimal", "autocomplete": "off"})
    per_customer_limit = CountField(
        "Per-customer limit",
        minimum=1,
        maximum=editing.MAX_PER_CUSTOMER_LIMIT,
        optional=True,
        render_kw={"inputmode": "numeric", "placeholder": "No limit"},
    )


class NewVariantForm(VariantForm):
    on_hand = CountField("Initial stock", default=0, render_kw={"inputmode": "numeric"})


class ImageForm(Form):
    file = FileField("Image (PNG, JPEG or WebP)", render_kw={"accept": "image/png,image/jpeg,image/webp"})
    alt = StringField(
        "Alt text (what the photo shows)", filters=[strip], validators=[Optional(), Length(max=255)]
    )


class CategoryForm(Form):
    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=120)])
    slug = StringField(
        "Slug (web address)", filters=[strip], validators=[Optional(), Length(max=80), SLUG_RULE]
    )
    description = TextAreaField("Description", filters=[strip], validators=[Optional(), Length(max=2000)])


class RenameForm(Form):
    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=120)])


class ProductSearchForm(Form):
    q = StringField("Name, slug or SKU", validators=[Optional(), Length(max=100)])
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=10_000)])


def log_changes(session, *changes) -> None:
    """Write each change to the audit log in the caller's transaction; None means nothing changed."""
    actor = current_user._get_current_object()
    for change in changes:
        if change is not None:
            audit.record(
                session,
                actor,
                change.action,
                change.entity,
                change.entity_id if change.entity_id is not None else change.label,
                change.before,
                change.after,
                ip=client_ip(),
            )


def see_other(endpoint: str, **values):
    """303 to the next page after a change; HTMX gets HX-Redirect, never a 3xx."""
    target = url_for(endpoint, **values)
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


def _product_or_404(session, product_id: int):
    product = editing.staff_product(session, product_id)
    if product is None:
        abort(404)
    return product


def _variant_or_404(session, product_id: int, variant_id: int):
    variant = editing.staff_variant(session, variant_id)
    if variant is None or variant.product_id != product_id:
        abort(404)
    return variant


def _product_form(session, formdata=None, obj=None) -> ProductForm:
    form = ProductForm(formdata, obj=obj)
    form.category_id.choices = [SelectChoice(c.id, c.name) for c in catalog.list_categories(session)]
    return form


def _slug_free(session, form: ProductForm, product_id: int | None = None) -> str | None:
    """The product's slug (typed, or made from the name) if it is usable and free; else a field error."""
    slug = form.slug.data or editing.make_slug(form.name.data or "")
    if not slug:
        form.slug.errors.append(f"Give the product a slug: {editing.SLUG_HINT}.")
        return None
    if editing.slug_taken(session, slug, product_id):
        form.slug.errors.append(f"Another product already uses the slug {slug!r}.")
        return None
    return slug


def _sku_free(session, form: VariantForm, variant_id: int | None = None) -> bool:
    if editing.sku_taken(session, form.sku.data, variant_id):
        form.sku.errors.append(f"The SKU {form.sku.data} is already in use.")
        return False
    return True


def _product_values(form: ProductForm, slug: str) -> dict:
    return {
        "name": form.name.data,
        "slug": slug,
        "category_id": form.category_id.data,
        "description": form.description.data or "",
        "is_featured": form.is_featured.data,
    }


def _variant_values(form: VariantForm) -> dict:
    return {field: getattr(form, field).data for field in editing.VARIANT_FIELDS}


# Products


@bp.get("/products")
def product_list():
    """Every product, archived ones too, searched by name, slug or SKU; HTMX swaps only the results."""
    form = ProductSearchForm(request.args)
    products, has_next = [], False
    if form.validate():
        products, has_next = editing.staff_products(get_session(), form.q.data or "", form.page.data or 1)
    return render(
        "admin/products/list.html",
        "admin/products/_results.html",
        status=422 if form.errors else 200,
        form=form,
        products=products,
        has_next=has_next,
        page=form.page.data or 1,
    )


@bp.get("/products/new")
def product_new():
    """The new-product form: the product and its first variant."""
    session = get_session()
    return render_template(
        "admin/products/new.html", form=_product_form(session), variant_form=NewVariantForm(prefix="variant")
    )


@bp.post("/products/new")
def product_create():
    """Create a product with its first variant, whose stock is booked as received."""
    session = get_session()
    form = _product_form(session, request.form)
    variant_form = NewVariantForm(request.form, prefix="variant")
    valid = form.validate() & variant_form.validate()  # both, so every message shows at once
    slug = _slug_free(session, form) if valid else None
    if not (slug and _sku_free(session, variant_form)):
        return render_template("admin/products/new.html", form=form, variant_form=variant_form), 422
    product, created = editing.create_product(session, _product_values(form, slug))
    added = editing.add_variant(
        session, product, _variant_values(variant_form), variant_form.on_hand.data, current_user.id
    )
    log_changes(session, created, added)
    session.commit()
    flash(f"Created {product.name}.", "success")
    return see_other("admin.product_edit", product_id=product.id)


def _edit_page(session, product, status: int = 200, form=None, new_variant=None, image_form=None):
    return render_template(
        "admin/products/edit.html",
        product=product,
        form=form or _product_form(session, obj=product),
        new_variant=new_variant or NewVariantForm(prefix="new"),
        image_form=image_form or ImageForm(prefix="image"),
        max_image_kb=current_app.config["MAX_IMAGE_BYTES"] // 1024,
    ), status


@bp.get("/products/<int:product_id>")
def product_edit(product_id: int):
    """A product's details, variants and images, each editable."""
    session = get_session()
    return _edit_page(session, _product_or_404(session, product_id))


@bp.post("/products/<int:product_id>")
def product_update(product_id: int):
    """Save a product's name, slug, category, description and featured flag."""
    session = get_session()
    product = _product_or_404(session, product_id)
    form = _product_form(session, request.form)
    slug = _slug_free(session, form, product.id) if form.validate() else None
    if not slug:
        return _edit_page(session, product, 422, form=form)
    log_changes(session, editing.update_product(session, product, _product_values(form, slug)))
    session.commit()
    flash("Saved.", "success")
    return see_other("admin.product_edit", product_id=product.id)


def _set_active(product_id: int, active: bool):
    session = get_session()
    product = _product_or_404(session, product_id)
    log_changes(session, editing.set_product_active(session, product, active))
    session.commit()
    if is_htmx():
        return render_template("admin/products/_row.html", product=product)
    flash(f"{product.name} is {'back in the shop' if active else 'archived'}.", "success")
    if request.form.get("back") == "edit":
        return redirect(url_for("admin.product_edit", product_id=product.id), 303)
    return redirect(url_for("admin.product_list"), 303)


@bp.post("/products/<int:product_id>/archive")
def product_archive(product_id: int):
    """Hide a product from the shop (its page answers 404); orders and stock keep it."""
    return _set_active(product_id, False)


@bp.post("/products/<int:product_id>/unarchive")
def product_unarchive(product_id: int):
    """Put an archived product back in the shop."""
    return _set_active(product_id, True)


# Variants: edited in place with HTMX, or on their own page without it.


@bp.post("/products/<int:product_id>/variants")
def variant_create(product_id: int):
    """Add a variant; its initial stock goes into the ledger as received."""
    session = get_session()
    product = _product_or_404(session, product_id)
    form = NewVariantForm(request.form, prefix="new")
    if not (form.validate() and _sku_free(session, form)):
        if is_htmx():
            return render_template("admin/products/_variants.html", product=product, new_variant=form), 422
        return _edit_page(session, product, 422, new_variant=form)
    log_changes(
        session,
        editing.add_variant(session, product, _variant_values(form), form.on_hand.data, current_user.id),
    )
    session.commit()
    if is_htmx():
        return render_template(
            "admin/products/_variants.html", product=product, new_variant=NewVariantForm(prefix="new")
        )
    flash("Variant added.", "success")
    return redirect(url_for("admin.product_edit", product_id=product.id), 303)


@bp.get("/products/<int:product_id>/variants/<int:variant_id>")
def variant_row(product_id: int, variant_id: int):
    """One variant as a list item (what Cancel swaps back in); without HTMX, its product's page."""
    variant = _variant_or_404(get_session(), product_id, variant_id)
    if is_htmx():
        return render_template("admin/products/_variant.html", variant=variant)
    return redirect(url_for("admin.product_edit", product_id=product_id, _anchor=f"variant-{variant.id}"))


@bp.get("/products/<int:product_id>/variants/<int:variant_id>/edit")
def variant_edit(product_id: int, variant_id: int):
    """A variant's edit form, in place for HTMX or as its own page."""
    variant = _variant_or_404(get_session(), product_id, variant_id)
    form = VariantForm(obj=variant, prefix=f"v{variant.id}")
    template = "admin/products/_variant_form.html" if is_htmx() else "admin/products/variant_edit.html"
    return render_template(template, variant=variant, form=form)


@bp.post("/products/<int:product_id>/variants/<int:variant_id>")
def variant_update(product_id: int, variant_id: int):
    """Save a variant's SKU, name, price and per-customer limit; the price change is audited."""
    session = get_session()
    variant = _variant_or_404(session, product_id, variant_id)
    form = VariantForm(request.form, prefix=f"v{variant.id}")
    if not (form.validate() and _sku_free(session, form, variant.id)):
        template = "admin/products/_variant_form.html" if is_htmx() else "admin/products/variant_edit.html"
        return render_template(template, variant=variant, form=form), 422
    log_changes(session, editing.update_variant(session, variant, _variant_values(form)))
    session.commit()
    if is_htmx():
        return render_template("admin/products/_variant.html", variant=variant, saved=True)
    flash(f"Saved {variant.sku}.", "success")
    return redirect(url_for("admin.product_edit", product_id=product_id), 303)


# Images


@bp.url_value_preprocessor
def image_upload_cap(endpoint, _values):
    """Size this request's cap to MAX_IMAGE_BYTES; it runs before CSRF protection reads the body."""
    if endpoint == "admin.image_upload":
        request.max_content_length = current_app.config["MAX_IMAGE_BYTES"] + UPLOAD_OVERHEAD


@bp.post("/products/<int:product_id>/images")
def image_upload(product_id: int):
    """Store a PNG, JPEG or WebP (checked by its bytes and size) under a random name, and attach it."""
    session = get_session()
    product = _product_or_404(session, product_id)
    form = ImageForm(CombinedMultiDict((request.files, request.form)), prefix="image")
    limit = current_app.config["MAX_IMAGE_BYTES"]
    upload = form.file.data
    image = None
    if form.validate():
        if not isinstance(upload, FileStorage) or not upload.filename:
            form.file.errors.append("Choose an image file.")
        else:
            data = upload.stream.read(limit + 1)
            try:
                if len(data) > limit:
                    raise ValueError(f"The image is larger than {limit // 1024:,} KB; make it smaller.")
                image = (data, *images.image_info(data))
            except ValueError as error:
                form.file.errors.append(str(error))
    if image is None:
        return _edit_page(session, product, 422, image_form=form)
    data, extension, width, height = image
    media = current_app.config["MEDIA_FOLDER"]
    path = images.store_upload(media, data, extension)
    try:
        log_changes(
            session, images.add_image(session, product, path, width, height, form.alt.data or product.name)
        )
        session.commit()
    except Exception:
        images.discard_upload(media, path)  # the row never existed, so neither should the file
        raise
    flash("Image added.", "success")
    return redirect(url_for("admin.product_edit", product_id=product.id, _anchor="images"), 303)


@bp.post("/products/<int:product_id>/images/<int:image_id>/delete")
def image_delete(product_id: int, image_id: int):
    """Remove an image from a product, and its uploaded file once the change is committed."""
    session = get_session()
    product = _product_or_404(session, product_id)
    image = next((image for image in product.images if image.id == image_id), None)
    if image is None:
        abort(404)
    path = image.path
    log_changes(session, images.remove_image(session, image))
    session.commit()
    images.discard_upload(current_app.config["MEDIA_FOLDER"], path)
    flash("Image removed.", "success")
    return redirect(url_for("admin.product_edit", product_id=product.id, _anchor="images"), 303)


# CSV export and import


@bp.get("/products/export.csv")
def product_export():
    """Download every variant as CSV, in the columns the import reads."""
    # The byte-order mark makes spreadsheet programs read the file as UTF-8; the import skips it.
    response = make_response("\ufeff" + csvio.export_products_csv(get_session()))
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    response.headers["Content-Disposition"] = f'attachment; filename="products-{stamp}.csv"'
    response.cache_control.no_store = True
    return response


@bp.get("/products/import")
def product_import_form():
    """The CSV import page: choose a file, check it with a dry run, then import it."""
    return render_template("admin/products/import.html", **_import_context())


def _import_context(errors=(), changes=(), applied=False, checked=False) -> dict:
    return {
        "columns": csvio.CSV_COLUMNS,
        "errors": list(errors)[: editing.MAX_REPORTED_ERRORS],
        "error_count": len(errors),
        "changes": list(changes)[:SHOWN_CHANGES],
        "change_count": len(changes),
        "summary": Counter(change.action for change in changes),
        "applied": applied,
        "checked": checked,
    }


@bp.post("/products/import")
def product_import():
    """Check an uploaded CSV line by line (dry run), or apply it all in one transaction; errors change nothing."""
    upload = request.files.get("file")
    apply = request.form.get("action") == "import"
    if upload is None or not upload.filename:
        errors, rows = [csvio.LineError(0, "Choose a CSV file first.")], []
    else:
        rows, errors = csvio.parse_product_csv(upload.read())
    session = get_session()
    changes = []
    if not errors:
        changes, errors = csvio.import_products(session, rows, current_user.id, apply=apply)
    if errors or not apply:
        session.rollback()
        context = _import_context(errors, changes, checked=True)
        return render(
            "admin/products/import.html",
            "admin/products/_import_result.html",
            status=422 if errors else 200,
            **context,
        )
    log_changes(session, *changes)
    session.commit()
    if is_htmx():
        return render_template(
            "admin/products/_import_result.html", **_import_context((), changes, True, True)
        )
    flash(f"Imported {len(rows)} lines: {len(changes)} changes.", "success")
    return redirect(url_for("admin.product_import_form"), 303)


# Categories


def _categories_page(form: CategoryForm, status: int = 200):
    rows = editing.categories_with_counts(get_session())
    return render_template("admin/products/categories.html", rows=rows, form=form), status


def _category_or_404(session, category_id: int) -> tuple[Category, int]:
    found = editing.categories_with_counts(session, only=category_id)
    if not found:
        abort(404)
    return found[0]


@bp.get("/categories")
def category_list():
    """Every category with its product count, a rename action per row, and the new-category form."""
    return _categories_page(CategoryForm())


@bp.post("/categories")
def category_create():
    """Add a category at the end of the menu."""
    session = get_session()
    form = CategoryForm(request.form)
    if form.validate():
        slug = form.slug.data or editing.make_slug(form.name.data)
        if not slug:
            form.slug.errors.append(f"Give the category a slug: {editing.SLUG_HINT}.")
        elif editing.category_slug_taken(session, slug):
            form.slug.errors.append(f"Another category already uses the slug {slug!r}.")
        else:
            category, change = editing.create_category(
                session, form.name.data, slug, form.description.data or ""
            )
            log_changes(session, change)
            session.commit()
            flash(f"Added the category {category.name}.", "success")
            return see_other("admin.category_list")
    return _categories_page(form, 422)


@bp.get("/categories/<int:category_id>")
def category_row(category_id: int):
    """One category's table row (what Cancel swaps back in); without HTMX, the category list."""
    category, count = _category_or_404(get_session(), category_id)
    if is_htmx():
        return render_template("admin/products/_category_row.html", category=category, count=count)
    return redirect(url_for("admin.category_list", _anchor=f"category-{category.id}"))


@bp.get("/categories/<int:category_id>/edit")
def category_edit(category_id: int):
    """The rename form, in place for HTMX or as its own page."""
    category, count = _category_or_404(get_session(), category_id)
    form = RenameForm(obj=category, prefix=f"c{category.id}")
    template = "admin/products/_category_form.html" if is_htmx() else "admin/products/category_edit.html"
    return render_template(template, category=category, count=count, form=form)


@bp.post("/categories/<int:category_id>")
def category_rename(category_id: int):
    """Rename a category; its slug and so its shop URL stay the same."""
    session = get_session()
    category, count = _category_or_404(session, category_id)
    form = RenameForm(request.form, prefix=f"c{category.id}")
    if not form.validate():
        template = "admin/products/_category_form.html" if is_htmx() else "admin/products/category_edit.html"
        return render_template(template, category=category, count=count, form=form), 422
    log_changes(session, editing.rename_category(session, category, form.name.data))
    session.commit()
    if is_htmx():
        return render_template("admin/products/_category_row.html", category=category, count=count)
    flash("Category renamed.", "success")
    return redirect(url_for("admin.category_list"), 303)
