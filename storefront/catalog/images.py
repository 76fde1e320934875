"""Product images: what an upload is (format and size), storing and discarding the file, and the rows."""

import re
import secrets
import struct
from pathlib import Path

from sqlalchemy.orm import Session

from storefront.catalog.editing import MAX_IMAGE_SIDE, Change
from storefront.catalog.models import (
    Product,
    ProductImage,
)


def image_info(data: bytes) -> tuple[str, int, int]:
    """The extension, width and height of a PNG, JPEG or WebP file; ValueError for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        extension, (width, height) = "png", struct.unpack(">II", data[16:24])
    elif data[:3] == b"\xff\xd8\xff":
        extension, (width, height) = "jpg", _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        extension, (width, height) = "webp", _webp_size(data)
    else:
        raise ValueError("That file is not a PNG, JPEG or WebP image.")
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise ValueError(f"Images must be between 1 and {MAX_IMAGE_SIDE:,} pixels on each side.")
    return extension, width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers to the frame header (SOFn), which holds the size."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            break
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    raise ValueError("That JPEG file is damaged: it has no image size.")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ValueError("That WebP file is damaged: it has no image size.")


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
