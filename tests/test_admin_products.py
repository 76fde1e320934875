"""Staff products: list and search, create and edit, archive, variants, images, categories, CSV export/import."""

import io
import re
import struct
import zlib
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from storefront.audit.models import AuditEntry
from storefront.catalog import csvio, images
from storefront.catalog.models import Category, Product, ProductImage, Variant
from storefront.inventory.models import StockMovement
from tests.factories import make_category, make_product
from tests.helpers import ODD_VALUES, csrf_token

HTMX = {"HX-Request": "true"}


@pytest.fixture
def token(client, staff) -> str:
    return csrf_token(client, "/admin/products/import")


def counts(session) -> dict[str, int]:
    """Rows in every table a staff product change could touch."""
    tables = (Category, Product, Variant, ProductImage, StockMovement, AuditEntry)
    return {table.__name__: session.scalar(select(func.count()).select_from(table)) for table in tables}


def audit_entries(session, action: str) -> list[AuditEntry]:
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
    )


def png(width: int = 3, height: int = 2) -> bytes:
    """A real, decodable PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xd4\xaf\x37" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def uploads(app) -> set[str]:
    folder = Path(app.config["MEDIA_FOLDER"]) / "uploads"
    return {path.name for path in folder.glob("*")} if folder.exists() else set()


def new_product_form(token: str, category: Category, **overrides) -> dict:
    return {
        "csrf_token": token,
        "name": "Luna Hoops",
        "slug": "",
        "category_id": str(category.id),
        "description": "Light hoops.",
        "variant-sku": "LUNA-GOLD",
        "variant-name": "Gold",
        "variant-price": "24.00",
        "variant-per_customer_limit": "",
        "variant-on_hand": "12",
    } | overrides


# Products


def test_staff_create_a_product_whose_first_stock_is_booked_as_received(client, session, staff, token):
    category = make_category(session, slug="hoops", name="Hoops")
    response = client.post("/admin/products/new", data=new_product_form(token, category))
    assert response.status_code == 303
    product = session.scalar(select(Product).where(Product.slug == "luna-hoops"))
    assert response.headers["Location"] == f"/admin/products/{product.id}"
    variant = product.variants[0]
    assert (variant.sku, variant.price, variant.on_hand, product.price_from) == (
        "LUNA-GOLD",
        Decimal("24.00"),
        12,
        Decimal("24.00"),
    )
    movement = session.scalar(select(StockMovement).where(StockMovement.variant_id == variant.id))
    assert (movement.reason, movement.delta, movement.on_hand_after, movement.user_id) == (
        "received",
        12,
        12,
        staff.id,
    )
    assert audit_entries(session, "product.create")[0].after["slug"] == "luna-hoops"
    created = audit_entries(session, "variant.create")[0]
    assert created.after["price"] == "24.00" and created.after["on_hand"] == 12
    assert created.user_email == staff.email
    assert client.get("/products/luna-hoops").status_code == 200


def test_a_taken_slug_or_sku_is_refused_and_nothing_is_made(client, session, staff, token):
    existing = make_product(session, slug="luna-hoops", variants=[{"sku": "TAKEN-1"}])
    before = counts(session)
    taken_slug = client.post("/admin/products/new", data=new_product_form(token, existing.category))
    assert taken_slug.status_code == 422 and "already uses the slug" in taken_slug.get_data(as_text=True)
    form = new_product_form(token, existing.category, slug="other", **{"variant-sku": "TAKEN-1"})
    taken_sku = client.post("/admin/products/new", data=form)
    assert taken_sku.status_code == 422 and "TAKEN-1 is already in use" in taken_sku.get_data(as_text=True)
    assert counts(session) == before


def test_the_list_searches_name_slug_and_sku_and_htmx_gets_only_the_results(client, session, staff):
    make_product(session, name="Celestial Ring", variants=[{"sku": "CEL-RING-7"}])
    make_product(session, name="Tidal Anklet", variants=[{"sku": "TID-ANK-1"}])
    by_sku = client.get("/admin/products?q=cel-ring").get_data(as_text=True)
    assert "Celestial Ring" in by_sku and "Tidal Anklet" not in by_sku
    by_name = client.get("/admin/products?q=anklet", headers=HTMX)
    body = by_name.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="product-results"') and "Tidal Anklet" in body
    assert "HX-Request" in by_name.headers["Vary"]
    assert "No products match" in client.get("/admin/products?q=%25_").get_data(as_text=True)  # no wildcards
    assert client.get("/admin/products?page=0").status_code == 422


def test_the_list_pages_through_many_products(client, session, staff):
    category = make_category(session)
    for n in range(51):
        make_product(session, category=category, name=f"Paged {n:02d}", images=0)
    first = client.get("/admin/products?q=paged").get_data(as_text=True)
    second = client.get("/admin/products?q=paged&page=2").get_data(as_text=True)
    assert len(re.findall(r'id="product-\d+"', first)) == 50
    assert len(re.findall(r'id="product-\d+"', second)) == 1
    assert "page=2" in first and "Older" not in second


def test_editing_a_product_is_audited_with_before_and_after(client, session, staff, token):
    product = make_product(session, name="Old Name", slug="old-name")
    old_category = product.category_id
    other = make_category(session, name="Chains")
    response = client.post(
        f"/admin/products/{product.id}",
        data={
            "csrf_token": token,
            "name": "New Name",
            "slug": "old-name",
            "category_id": other.id,
            "description": "x",
        },
    )
    assert response.status_code == 303
    session.refresh(product)
    assert (product.name, product.category_id, product.description) == ("New Name", other.id, "x")
    entry = audit_entries(session, "product.update")[0]
    assert entry.before == {"name": "Old Name", "category_id": old_category, "description": "A test product."}
    assert entry.after == {"name": "New Name", "category_id": other.id, "description": "x"}
    assert entry.entity == "product" and entry.entity_id == str(product.id)


def test_archive_hides_the_product_from_the_shop_and_unarchive_brings_it_back(client, session, staff, token):
    product = make_product(session, slug="luna-ring")
    assert client.get("/products/luna-ring").status_code == 200
    row = client.post(f"/admin/products/{product.id}/archive", data={"csrf_token": token}, headers=HTMX)
    assert row.status_code == 200
    html = row.get_data(as_text=True)
    assert html.lstrip().startswith(f'<tr id="product-{product.id}" class="archived"') and "Unarchive" in html
    assert client.get("/products/luna-ring").status_code == 404
    assert "luna-ring" not in client.get("/products").get_data(as_text=True)
    assert "luna-ring" in client.get("/admin/products").get_data(as_text=True)  # staff still see it
    plain = client.post(f"/admin/products/{product.id}/unarchive", data={"csrf_token": token})
    assert plain.status_code == 303 and plain.headers["Location"] == "/admin/products"
    assert client.get("/products/luna-ring").status_code == 200
    archived, restored = (
        audit_entries(session, "product.archive"),
        audit_entries(session, "product.unarchive"),
    )
    assert archived[0].before == {"is_active": True} and archived[0].after == {"is_active": False}
    assert restored[0].after == {"is_active": True}


def test_missing_or_mismatched_ids_answer_404(client, session, staff, token):
    product = make_product(session)
    other = make_product(session)
    variant = other.variants[0]
    for url in (
        "/admin/products/999999",
        f"/admin/products/{product.id}/variants/{variant.id}",  # a variant of another product
        f"/admin/products/{product.id}/variants/{variant.id}/edit",
        "/admin/products/999999/variants/999999/edit",
        "/admin/categories/999999",
        "/admin/categories/999999/edit",
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        "/admin/products/999999/archive",
        f"/admin/products/{product.id}/variants/{variant.id}",
        f"/admin/products/{product.id}/images/999999/delete",
        "/admin/categories/999999",
    ):
        assert client.post(url, data={"csrf_token": token, "name": "x"}).status_code == 404, url


# Variants


def variant_form(token: str, prefix: str, **overrides) -> dict:
    fields = {
        "sku": "NEW-SKU-1",
        "name": "Silver",
        "price": "19.50",
        "per_customer_limit": "",
        "on_hand": "4",
    }
    return {"csrf_token": token} | {f"{prefix}-{name}": value for name, value in (fields | overrides).items()}


def test_a_variant_is_added_inline_with_its_stock_in_the_ledger(client, session, staff, token):
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    response = client.post(
        f"/admin/products/{product.id}/variants",
        data=variant_form(token, "new", per_customer_limit="2"),
        headers=HTMX,
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="variants"') and "NEW-SKU-1" in html
    variant = session.scalar(select(Variant).where(Variant.sku == "NEW-SKU-1"))
    assert (variant.price, variant.on_hand, variant.per_customer_limit, variant.position) == (
        Decimal("19.50"),
        4,
        2,
        1,
    )
    session.refresh(product)
    assert product.price_from == Decimal("19.50")
    movement = session.scalar(select(StockMovement).where(StockMovement.variant_id == variant.id))
    assert (movement.reason, movement.delta) == ("received", 4)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price", "-1", "A price can&#39;t be negative."),
        ("price", "1e9", "Enter a price like 12.50"),
        ("price", "1000000000", "A price can be at most 100,000.00."),
        ("price", "12.345", "at most two after the point"),
        ("price", "NaN", "Enter a price like 12.50"),
        ("price", "abc", "Enter a price like 12.50"),
        ("price", "", "Enter a price."),
        ("on_hand", "-5", "Initial stock can&#39;t be negative."),
        ("on_hand", "1e9", "Initial stock must be a whole number."),
        ("on_hand", "1000000000", "Initial stock can be at most 1,000,000."),
        ("on_hand", "ten", "Initial stock must be a whole number."),
        ("per_customer_limit", "0", "Per-customer limit must be at least 1."),
        ("per_customer_limit", "2.5", "Per-customer limit must be a whole number."),
        ("sku", "has space", "A SKU must start with a letter or digit"),
        ("sku", "SKU-TAKEN", "The SKU SKU-TAKEN is already in use."),
        ("name", "", "This field is required."),
    ],
)
def test_bad_variant_input_gets_422_with_the_message_and_changes_nothing(
    client, session, staff, token, field, value, message
):
    product = make_product(session, variants=[{"sku": "SKU-TAKEN"}])
    before = counts(session)
    for headers in ({}, HTMX):
        response = client.post(
            f"/admin/products/{product.id}/variants",
            data=variant_form(token, "new", **{field: value}),
            headers=headers,
        )
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
        assert "field-error" in response.get_data(as_text=True)
    assert counts(session) == before


def test_a_price_change_is_audited_and_swapped_in_place(client, session, staff, token):
    product = make_product(session, variants=[{"sku": "RING-5", "price": Decimal("10.00")}])
    variant = product.variants[0]
    base = f"/admin/products/{product.id}/variants/{variant.id}"
    form = client.get(f"{base}/edit", headers=HTMX).get_data(as_text=True)
    assert (
        form.lstrip().startswith(f'<li id="variant-{variant.id}"') and f'name="v{variant.id}-price"' in form
    )
    assert 'value="10.00"' in form
    data = {
        "csrf_token": token,
        f"v{variant.id}-sku": "RING-5",
        f"v{variant.id}-name": variant.name,
        f"v{variant.id}-price": "12.50",
        f"v{variant.id}-per_customer_limit": "1",
    }
    saved = client.post(base, data=data, headers=HTMX)
    assert saved.status_code == 200 and "$12.50" in saved.get_data(as_text=True)
    session.refresh(variant)
    session.refresh(product)
    assert (variant.price, variant.per_customer_limit, product.price_from) == (
        Decimal("12.50"),
        1,
        Decimal("12.50"),
    )
    entry = audit_entries(session, "variant.update")[0]
    assert entry.before == {"price": "10.00", "per_customer_limit": None}
    assert entry.after == {"price": "12.50", "per_customer_limit": 1}
    assert entry.entity_id == str(variant.id)
    cancel = client.get(base, headers=HTMX).get_data(as_text=True)
    assert cancel.lstrip().startswith(f'<li id="variant-{variant.id}" class="variant-row"')
    assert client.get(base).status_code == 302  # without HTMX: the product page


def test_a_variant_edit_without_htmx_is_its_own_page_and_bad_input_changes_nothing(
    client, session, staff, token
):
    product = make_product(session, variants=[{"sku": "RING-6", "price": Decimal("10.00")}])
    variant = product.variants[0]
    base = f"/admin/products/{product.id}/variants/{variant.id}"
    assert "<html" in client.get(f"{base}/edit").get_data(as_text=True)
    bad = client.post(
        base,
        data={
            "csrf_token": token,
            f"v{variant.id}-sku": "RING-6",
            f"v{variant.id}-name": "x",
            f"v{variant.id}-price": "-3",
        },
    )
    assert bad.status_code == 422 and "can&#39;t be negative" in bad.get_data(as_text=True)
    session.refresh(variant)
    assert variant.price == Decimal("10.00") and variant.name != "x"
    assert audit_entries(session, "variant.update") == []


@pytest.mark.parametrize("value", ODD_VALUES)
def test_hostile_input_in_product_and_variant_forms_is_a_4xx_never_a_500(
    client, session, staff, token, value
):
    product = make_product(session)
    variant = product.variants[0]
    for field in ("sku", "name", "price", "per_customer_limit", "on_hand"):
        response = client.post(
            f"/admin/products/{product.id}/variants", data=variant_form(token, "new", **{field: value})
        )
        assert response.status_code in (303, 400, 422), (field, value)
    for field in ("name", "slug", "category_id", "description"):
        data = {"csrf_token": token, "name": "Fine", "slug": "fine", "category_id": product.category_id} | {
            field: value
        }
        assert client.post(f"/admin/products/{product.id}", data=data).status_code in (303, 400, 422), (
            field,
            value,
        )
    edit = {
        "csrf_token": token,
        f"v{variant.id}-sku": value,
        f"v{variant.id}-name": value,
        f"v{variant.id}-price": value,
    }
    assert client.post(f"/admin/products/{product.id}/variants/{variant.id}", data=edit).status_code in (
        400,
        422,
    )


# Images


def upload(client, token, product, content: bytes, filename: str):
    return client.post(
        f"/admin/products/{product.id}/images",
        data={"csrf_token": token, "image-file": (io.BytesIO(content), filename), "image-alt": "Gold hoop"},
        content_type="multipart/form-data",
    )


def test_a_real_png_is_stored_under_a_random_name_with_its_size(app, client, session, staff, token):
    product = make_product(session, images=0)
    before = uploads(app)
    response = upload(client, token, product, png(5, 3), "../../evil.png")
    assert response.status_code == 303
    image = session.scalar(select(ProductImage).where(ProductImage.product_id == product.id))
    assert re.fullmatch(r"uploads/[0-9a-f]{32}\.png", image.path)
    assert (image.width, image.height, image.alt) == (5, 3, "Gold hoop")
    assert uploads(app) - before == {image.path.removeprefix("uploads/")}
    assert (Path(app.config["MEDIA_FOLDER"]) / image.path).read_bytes() == png(5, 3)
    served = client.get(f"/media/{image.path}")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert audit_entries(session, "image.create")[0].after["path"] == image.path


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"just some text, honest", "photo.png", "not a PNG, JPEG or WebP"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "a.svg",
            "not a PNG, JPEG",
        ),
        (b"GIF89a\x01\x00\x01\x00", "a.gif", "not a PNG, JPEG or WebP"),
        (png(20_000, 1), "wide.png", "between 1 and 10,000 pixels"),
        (b"\xff\xd8\xff\xd9", "cut.jpg", "JPEG file is damaged"),
        (b"", "empty.png", "not a PNG, JPEG or WebP"),
    ],
)
def test_a_file_that_is_not_a_supported_image_is_refused_and_nothing_is_stored(
    app, client, session, staff, token, content, filename, message
):
    product = make_product(session, images=0)
    before, files = counts(session), uploads(app)
    response = upload(client, token, product, content, filename)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert counts(session) == before and uploads(app) == files


def test_an_oversized_image_is_refused_with_a_message_and_nothing_is_stored(
    app, client, session, staff, token, monkeypatch
):
    product = make_product(session, images=0)
    before, files = counts(session), uploads(app)
    monkeypatch.setitem(app.config, "MAX_IMAGE_BYTES", 1024)
    over_the_setting = upload(client, token, product, png(200, 200) + b"\0" * 2048, "big.png")
    assert over_the_setting.status_code == 422
    assert "larger than 1 KB" in over_the_setting.get_data(as_text=True)
    monkeypatch.setitem(app.config, "MAX_IMAGE_BYTES", 2 * 1024 * 1024)
    huge = upload(client, token, product, png() + b"\0" * (3 * 1024 * 1024), "huge.png")
    assert huge.status_code == 413 and "too large" in huge.get_data(as_text=True)
    assert counts(session) == before and uploads(app) == files


def test_an_image_as_large_as_the_setting_fits_through_the_request_cap(app, client, session, staff, token):
    product = make_product(session, images=0)
    limit = app.config["MAX_IMAGE_BYTES"]
    assert limit >= app.config["MAX_CONTENT_LENGTH"]  # without the route's own cap this would be a 413
    content = png() + b"\0" * (limit - len(png()))
    assert upload(client, token, product, content, "exact.png").status_code == 303


def test_removing_an_image_deletes_its_uploaded_file(app, client, session, staff, token):
    product = make_product(session, images=1)  # a shared demo-style path, which must never be deleted
    upload(client, token, product, png(), "a.png")
    session.refresh(product)
    shared, uploaded = product.images
    file = Path(app.config["MEDIA_FOLDER"]) / uploaded.path
    assert file.exists()
    for image in (uploaded, shared):
        response = client.post(
            f"/admin/products/{product.id}/images/{image.id}/delete", data={"csrf_token": token}
        )
        assert response.status_code == 303
    assert not file.exists()
    assert session.scalar(select(func.count()).where(ProductImage.product_id == product.id)) == 0
    assert [entry.before["path"] for entry in audit_entries(session, "image.delete")] == [
        uploaded.path,
        shared.path,
    ]


def encoded(kind: str, size: tuple[int, int], **options) -> bytes:
    """A real image file of that format, encoded by Pillow."""
    out = io.BytesIO()
    Image.new("RGB", size, (212, 175, 55)).save(out, format=kind, **options)
    return out.getvalue()


def test_jpeg_and_webp_sizes_come_from_their_headers():
    assert images.image_info(encoded("JPEG", (800, 600), progressive=True)) == ("jpg", 800, 600)
    assert images.image_info(encoded("WEBP", (1, 1), lossless=True)) == ("webp", 1, 1)
    assert images.image_info(encoded("WEBP", (320, 240))) == ("webp", 320, 240)
    assert images.image_info(encoded("WEBP", (640, 480), exif=b"Exif\x00\x00")) == ("webp", 640, 480)
    with pytest.raises(ValueError, match="WebP file is damaged"):
        images.image_info(b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\0" * 20)


# Categories


def test_categories_are_created_and_renamed_inline_and_audited(client, session, staff, token):
    created = client.post("/admin/categories", data={"csrf_token": token, "name": "Ear Cuffs", "slug": ""})
    assert created.status_code == 303
    category = session.scalar(select(Category).where(Category.slug == "ear-cuffs"))
    make_product(session, category=category)
    page = client.get("/admin/categories").get_data(as_text=True)
    assert "Ear Cuffs" in page and f'id="category-{category.id}"' in page
    form = client.get(f"/admin/categories/{category.id}/edit", headers=HTMX).get_data(as_text=True)
    assert (
        form.lstrip().startswith(f'<tr id="category-{category.id}"') and f'name="c{category.id}-name"' in form
    )
    row = client.post(
        f"/admin/categories/{category.id}",
        data={"csrf_token": token, f"c{category.id}-name": "Cuffs"},
        headers=HTMX,
    )
    assert row.status_code == 200 and "<td>Cuffs</td>" in row.get_data(as_text=True)
    assert "<td>1</td>" in row.get_data(as_text=True)  # its product count
    session.refresh(category)
    assert (category.name, category.slug) == ("Cuffs", "ear-cuffs")
    assert audit_entries(session, "category.create")[0].after["slug"] == "ear-cuffs"
    renamed = audit_entries(session, "category.rename")[0]
    assert (renamed.before, renamed.after) == ({"name": "Ear Cuffs"}, {"name": "Cuffs"})


def test_bad_category_input_changes_nothing(client, session, staff, token):
    category = make_category(session, slug="rings", name="Rings")
    before = counts(session)
    taken = client.post("/admin/categories", data={"csrf_token": token, "name": "Rings"})
    assert taken.status_code == 422 and "already uses the slug" in taken.get_data(as_text=True)
    bad_slug = client.post("/admin/categories", data={"csrf_token": token, "name": "X", "slug": "Not A Slug"})
    assert bad_slug.status_code == 422 and "A slug may only use" in bad_slug.get_data(as_text=True)
    emoji = client.post("/admin/categories", data={"csrf_token": token, "name": "💍💍"})
    assert emoji.status_code == 422 and "Give the category a slug" in emoji.get_data(as_text=True)
    empty = client.post(
        f"/admin/categories/{category.id}", data={"csrf_token": token, f"c{category.id}-name": " "}
    )
    assert empty.status_code == 422
    assert counts(session) == before


# CSV export and import

HEADER = "sku,product_slug,product_name,category_slug,variant_name,price,on_hand,per_customer_limit,active\n"


def import_csv(client, token, content: bytes | str, action: str = "dry_run", headers=None):
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        "/admin/products/import",
        data={"csrf_token": token, "action": action, "file": (io.BytesIO(data), "products.csv")},
        content_type="multipart/form-data",
        headers=headers or {},
    )


def line_errors(response) -> dict[int, str]:
    """The problems the page lists, by line number (several on one line joined)."""
    found: dict[int, str] = {}
    for line, message in re.findall(
        r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", response.get_data(as_text=True)
    ):
        found[int(line)] = f"{found.get(int(line), '')} {message}".strip()
    return found


def test_the_export_round_trips_into_a_dry_run_with_no_errors_and_no_changes(client, session, staff, token):
    category = make_category(session, slug="rings")
    make_product(
        session, category=category, name='=HYPERLINK("x")', variants=[{"sku": "RT-1", "name": "-5 mm"}]
    )
    make_product(
        session,
        category=category,
        name='Café «Ring», "quoted"\nnewline',
        is_active=False,
        variants=[{"sku": "RT-2", "price": Decimal("0.50"), "per_customer_limit": 2}, {"sku": "RT-3"}],
    )
    export = client.get("/admin/products/export.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    text = export.get_data(as_text=True)
    assert text.startswith("\ufeff" + HEADER.strip())
    assert "'=HYPERLINK" in text and "'-5 mm" in text  # a spreadsheet must not run them as formulas
    assert "RT-2,product-" in text and ",0.50,50,2,false" in text
    before = counts(session)
    response = import_csv(client, token, export.get_data())
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "no problems found" in body and "Importing would make 0 changes" in body
    assert counts(session) == before


def test_a_dry_run_lists_what_would_change_and_changes_nothing(client, session, staff, token):
    make_category(session, slug="rings")
    product = make_product(session, slug="halo-ring", name="Halo Ring", variants=[{"sku": "HALO-6"}])
    category_slug = product.category.slug
    before = counts(session)
    csv_text = HEADER + (
        f"HALO-6,halo-ring,Halo Ring,{category_slug},Option 0,12.00,40,,true\n"
        "NEW-1,new-ring,New Ring,rings,Gold,5.00,3,1,true\n"
    )
    response = import_csv(client, token, csv_text, headers=HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<section id="import-result"')
    assert "Importing would make 4 changes" in body
    assert (
        "price: 10.00" in body and "price: 12.00" in body and "on_hand: 50" in body and "on_hand: 40" in body
    )
    assert "New product" in body and "New variant" in body
    assert counts(session) == before


def test_an_import_applies_every_line_in_one_transaction_and_audits_each_change(
    client, session, staff, token
):
    make_category(session, slug="rings")
    product = make_product(
        session,
        slug="halo-ring",
        name="Halo Ring",
        variants=[{"sku": "HALO-6", "on_hand": 50, "reserved": 5}],
    )
    variant = product.variants[0]
    category_slug = product.category.slug
    csv_text = HEADER + (
        f"HALO-6,halo-ring,Halo Ring Two,{category_slug},Option 0,12.00,40,3,true\n"
        "NEW-1,new-ring,New Ring,rings,Gold,5.00,3,1,true\n"
        "NEW-2,new-ring,New Ring,rings,Silver,4.50,0,,true\n"
    )
    response = import_csv(client, token, csv_text, action="import")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/products/import"
    session.refresh(product)
    session.refresh(variant)
    assert product.name == "Halo Ring Two" and product.price_from == Decimal("12.00")
    assert (variant.price, variant.on_hand, variant.reserved, variant.per_customer_limit) == (
        Decimal("12.00"),
        40,
        5,
        3,
    )
    new = session.scalar(select(Product).where(Product.slug == "new-ring"))
    assert [(v.sku, v.price, v.on_hand, v.position) for v in new.variants] == [
        ("NEW-1", Decimal("5.00"), 3, 0),
        ("NEW-2", Decimal("4.50"), 0, 1),
    ]
    assert new.price_from == Decimal("4.50") and new.category.slug == "rings"
    movements = session.execute(
        select(
            StockMovement.variant_id, StockMovement.reason, StockMovement.delta, StockMovement.on_hand_after
        ).order_by(StockMovement.id)
    ).all()
    assert movements == [(new.variants[0].id, "received", 3, 3), (variant.id, "recount", -10, 40)]
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert sorted(actions) == sorted(
        [
            "product.update",
            "product.create",
            "variant.update",
            "variant.create",
            "variant.create",
            "stock.adjust",
        ]
    )
    price = audit_entries(session, "variant.update")[0]
    assert price.before["price"] == "10.00" and price.after["price"] == "12.00"
    stock = audit_entries(session, "stock.adjust")[0]
    assert stock.before == {"on_hand": 50} and stock.after["on_hand"] == 40
    assert all(entry.entity_id.isdigit() for entry in session.scalars(select(AuditEntry)))
    again = import_csv(client, token, csv_text)
    assert "Importing would make 0 changes" in again.get_data(as_text=True)


def test_one_bad_line_means_nothing_is_imported(client, session, staff, token):
    make_category(session, slug="rings")
    make_product(session, slug="busy", variants=[{"sku": "BUSY-1", "on_hand": 10, "reserved": 8}])
    before = counts(session)
    csv_text = HEADER + (
        "FINE-1,fine-ring,Fine Ring,rings,Gold,5.00,3,,true\nBUSY-1,busy,Busy,rings,Option 0,10.00,5,,true\n"
    )
    response = import_csv(client, token, csv_text, action="import")
    assert response.status_code == 422
    errors = line_errors(response)
    assert list(errors) == [3] and "below the 8 units reserved" in errors[3]
    assert "nothing was changed" in response.get_data(as_text=True)
    assert counts(session) == before


BAD_FILES = {
    "missing columns": (
        HEADER.replace(",per_customer_limit", "").replace("price,", "") + "A,b,c,d,e,1,true\n",
        {1: "missing columns: price, per_customer_limit"},
    ),
    "bad price on line 3": (
        HEADER + "A-1,p,P,rings,V,1.00,1,,true\nA-2,p,P,rings,V,12;50,1,,true\n",
        {3: "price: Enter a price like 12.50"},
    ),
    "unknown category": (HEADER + "A-1,p,P,nope,V,1.00,1,,true\n", {2: "Unknown category &#39;nope&#39;."}),
    "duplicate sku": (
        HEADER + "A-1,p,P,rings,V,1.00,1,,true\nA-2,p,P,rings,V,1.00,1,,true\nA-1,p,P,rings,W,1.00,1,,true\n",
        {4: "SKU A-1 is already on line 2."},
    ),
    "negative stock and bad flag": (
        HEADER + "A-1,p,P,rings,V,1.00,-4,,maybe\n",
        {2: "on_hand: Stock can&#39;t be negative."},
    ),
    "wrong field count": (HEADER + "A-1,p,P,rings\n", {2: "Expected 9 fields, found 4."}),
    "product columns disagree": (
        HEADER + "A-1,p,P,rings,V,1.00,1,,true\nA-2,p,Q,rings,V,1.00,1,,true\n",
        {3: "product_name differs from line 2 for product p."},
    ),
    "not a csv at all": ('\x89PNG garbage with "unclosed quote\n', {1: "The header line is wrong"}),
    "empty": ("", {1: "The file is empty."}),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_malformed_csv_gets_line_by_line_errors_and_changes_nothing(client, session, staff, token, case):
    make_category(session, slug="rings")
    content, expected = BAD_FILES[case]
    before = counts(session)
    for action in ("dry_run", "import"):
        response = import_csv(client, token, content, action=action)
        assert response.status_code == 422, case
        errors = line_errors(response)
        for line, message in expected.items():
            assert message in errors.get(line, ""), (case, errors)
    assert counts(session) == before


def test_non_utf8_bytes_are_reported_by_line(client, session, staff, token):
    make_category(session, slug="rings")
    content = (HEADER + "A-1,p,P,rings,V,1.00,1,,true\n").encode() + b"A-2,p,P\xe9,rings,V,1.00,1,,true\n"
    response = import_csv(client, token, content, action="import")
    assert response.status_code == 422
    assert "Save the file as &#34;CSV UTF-8&#34;" in line_errors(response)[3]
    assert session.scalar(select(func.count()).select_from(Product)) == 0


def test_a_huge_csv_is_refused_and_changes_nothing(client, session, staff, token):
    before = counts(session)
    response = import_csv(client, token, HEADER + "A-1,p,P,rings,V,1.00,1,,true\n" * 80_000, action="import")
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)
    assert counts(session) == before


def test_the_parser_caps_the_number_of_lines(monkeypatch):
    monkeypatch.setattr(csvio, "MAX_IMPORT_ROWS", 3)
    _rows, errors = csvio.parse_product_csv(
        (HEADER + "".join(f"A-{n},p,P,rings,V,1.00,1,,true\n" for n in range(5))).encode()
    )
    assert errors == [csvio.LineError(5, "The file has more than 3 lines; split it.")]


def test_no_file_is_a_clear_422(client, staff, token):
    response = client.post("/admin/products/import", data={"csrf_token": token, "action": "dry_run"})
    assert response.status_code == 422 and "Choose a CSV file first." in response.get_data(as_text=True)
