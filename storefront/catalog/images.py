"""Product images: what an upload is (format and size), storing and discarding the file, and the rows."""

import io
import re
import secrets
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session

from storefront.catalog.editing import MAX_IMAGE_SIDE, Change
from storefront.catalog.models import (
    Product,
    ProductImage,
)

FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"RIFF": "WebP"}


def image_info(data: bytes) -> tuple[str, int, int]:
    """The extension, width and height of a PNG, JPEG or WebP file (Pillow reads the header only, it
    decodes no pixels); ValueError for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            extension, (width, height) = FORMATS.get(image.format or ""), image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        # Pillow could not read it: a damaged file of a kind we take says so, anything else is refused.
        kind = next((name for magic, name in MAGIC.items() if data.startswith(magic)), None)
        if kind is None or (kind == "WebP" and data[8:12] != b"WEBP"):
            raise ValueError("That file is not a PNG, JPEG or WebP image.") from None
        raise ValueError(f"That {kind} file is damaged: it has no image size.") from None
    if extension is None:
        raise ValueError("That file is not a PNG, JPEG or WebP image.")
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise ValueError(f"Images must be between 1 and {MAX_IMAGE_SIDE:,} pixels on each side.")
    return extension, width, height


def store_upload(media_folder: str, data: bytes, extension: str) -> str:
    """Write an upload under a new random name (never the sender's); the path is relative to the media folder."""
    folder = Path(media_folder) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"uploads/{secrets.token_hex(16)}.{extension}"
    with (Path(media_folder) / name).open("xb") as target:
        target.write(data)
    return name


def discard_upload(media_folder: str, path: str) -> None:
    """Delete an uploaded file; shared files outside uploads/ (the demo's) are never touched."""
    if re.fullmatch(r"uploads/[0-9a-f]{32}\.(png|jpg|webp)", path):
        (Path(media_folder) / path).unlink(missing_ok=True)


def add_image(session: Session, product: Product, path: str, width: int, height: int, alt: str) -> Change:
    """Attach a stored image as the product's last one."""
    position = max((image.position for image in product.images), default=-1) + 1
    image = ProductImage(path=path, alt=alt, width=width, height=height, position=position)
    product.images.append(image)
    session.flush()
    after = {"product_id": product.id, "path": path, "alt": alt, "width": width, "height": height}
    return Change("image.create", "image", image.id, path, {}, after)


def remove_image(session: Session, image: ProductImage) -> Change:
    """Delete an image row; the caller deletes an uploaded file after commit."""
    before = {"product_id": image.product_id, "path": image.path, "alt": image.alt}
    change = Change("image.delete", "image", image.id, image.path, before, {})
    image.product.images.remove(image)  # delete-orphan: the row goes at flush, and the list stays right
    session.flush()
    return change


# Stock is inventory's to write; the admin gets the audit log's Change for each adjustment.
