"""A realistic demo catalog, built locally and deterministically: running it twice adds nothing."""

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.catalog import artwork
from storefront.catalog import services as catalog
from storefront.catalog.models import Category, Product, ProductImage, Variant
from storefront.inventory import services as inventory

FLASH_SKU = "DEMO-FLASH"
FLASH_SLUG = "aurora-crystal-drop-necklace"
METALS = list(artwork.METAL_COLOURS)
ADJECTIVES = [
    "Celestial",
    "Dainty",
    "Bold",
    "Vintage",
    "Minimal",
    "Twisted",
    "Hammered",
    "Luna",
    "Solstice",
    "Petal",
    "Orbit",
    "Halo",
    "Cascade",
    "Ember",
    "Tidal",
    "Starlit",
    "Velvet",
    "Aurora",
    "Meadow",
    "Nova",
    "Serpent",
    "Cloud",
    "Prism",
    "Ivy",
    "Coral",
    "Glimmer",
    "Harbor",
    "Juniper",
    "Marigold",
    "Opal",
    "Pebble",
    "Quartz",
    "Ripple",
    "Saffron",
    "Thistle",
    "Willow",
    "Zephyr",
    "Lotus",
    "Echo",
]
MATERIALS = ["Gold-Plated", "Sterling Silver", "Rose Gold", "Pearl", "Crystal", "Enamel", "Beaded"]


@dataclass(frozen=True)
class Kind:
    slug: str
    name: str
    code: str
    nouns: tuple[str, ...]
    sizes: tuple[str, ...] = ()


KINDS = [
    Kind("rings", "Rings", "RNG", ("Ring", "Stacking Ring", "Signet Ring"), ("5", "6", "7", "8", "9")),
    Kind(
        "necklaces",
        "Necklaces",
        "NCK",
        ("Necklace", "Pendant Necklace", "Lariat"),
        ('16"', '18"', '20"'),
    ),
    Kind("earrings", "Earrings", "EAR", ("Earrings", "Drop Earrings", "Threaders")),
    Kind("hoops", "Hoops", "HOP", ("Hoops", "Huggie Hoops", "Mini Hoops")),
    Kind("studs", "Studs", "STD", ("Studs", "Stud Set", "Climber Studs")),
    Kind(
        "bracelets",
        "Bracelets",
        "BRC",
        ("Bracelet", "Chain Bracelet", "Tennis Bracelet"),
        ("S/M", "M/L"),
    ),
    Kind("bangles", "Bangles", "BNG", ("Bangle", "Cuff", "Open Bangle"), ("S/M", "M/L")),
    Kind("anklets", "Anklets", "ANK", ("Anklet", "Chain Anklet", "Charm Anklet")),
    Kind("pendants", "Pendants", "PND", ("Pendant", "Locket", "Medallion")),
    Kind("charms", "Charms", "CHM", ("Charm", "Bead Charm", "Dangle Charm")),
    Kind(
        "chains",
        "Chains",
        "CHN",
        ("Chain", "Rope Chain", "Paperclip Chain"),
        ('16"', '18"', '20"', '24"'),
    ),
    Kind("chokers", "Chokers", "CHK", ("Choker", "Collar", "Velvet Choker")),
    Kind("brooches", "Brooches", "BRO", ("Brooch", "Pin", "Lapel Pin")),
    Kind("hair", "Hair Accessories", "HAR", ("Hair Clip", "Barrette", "Hair Pin Set")),
    Kind("body", "Body Jewelry", "BDY", ("Belly Chain", "Body Chain", "Hand Chain")),
    Kind("piercings", "Piercings", "PRC", ("Nose Stud", "Helix Hoop", "Cartilage Stud")),
    Kind("toe-rings", "Toe Rings", "TOE", ("Toe Ring", "Midi Ring", "Knuckle Ring")),
    Kind("cufflinks", "Cufflinks", "CUF", ("Cufflinks", "Tie Bar", "Collar Pins")),
    Kind("watches", "Watch Charms", "WCH", ("Watch Charm", "Fob Chain", "Watch Band")),
    Kind("gift-sets", "Gift Sets", "GFT", ("Gift Set", "Stacking Set", "Layering Set")),
]

OPENERS = [
    "Made for everyday wear and the moments in between.",
    "A small piece with a big sparkle, designed to layer.",
    "Light enough to forget you're wearing it, bright enough to be noticed.",
    "Our most-loved silhouette, reworked for this season.",
    "Hand-finished and polished to a soft shine.",
]
DETAILS = [
    "Nickel-free and hypoallergenic, plated with a thick layer that resists tarnish.",
    "Each piece is inspected by hand before it ships in a recycled gift box.",
    "Pairs well with the rest of the {adjective} collection.",
    "Water-resistant finish: wear it in the shower, take it off for the pool.",
    "Free returns within 30 days, and a one-year warranty on the finish.",
]


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


VIEW_ALTS = {"turned": "seen from the side", "detail": "close-up of the stone", "boxed": "in its gift box"}


def write_images(media_folder: Path, product: Product, category_slug: str, metals: list[str]) -> None:
    """Draw the product's own 2 to 4 pictures (kept if already drawn) and attach them to it."""
    look = artwork.look_for(product.slug, category_slug, product.name)
    folder = media_folder / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    for n, (metal, view) in enumerate(artwork.views_for(look, metals)):
        name = f"demo/{product.slug}-{n}.svg"
        target = media_folder / name
        if not target.exists():
            target.write_text(artwork.render(look, metal, view))
        alt = f"{product.name} in {metal.lower()}" + ("" if view == "front" else f", {VIEW_ALTS[view]}")
        product.images.append(
            ProductImage(path=name, alt=alt, width=artwork.SIZE, height=artwork.SIZE, position=n)
        )


def _price(rng: random.Random) -> Decimal:
    return Decimal(rng.choice([4, 6, 8, 9, 12, 14, 16, 19, 22, 24, 29, 34, 39, 45, 49])) + Decimal("0.99")


def _stock(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.12:
        return 0
    if roll < 0.3:
        return rng.randint(1, 10)
    return rng.randint(11, 300)


def _categories(session: Session) -> dict[str, Category]:
    existing = {c.slug: c for c in session.scalars(select(Category))}
    for position, kind in enumerate(KINDS):
        if kind.slug not in existing:
            category = Category(
                slug=kind.slug,
                name=kind.name,
                description=f"{kind.name} in gold, silver and rose gold, from everyday basics to statement pieces.",
                position=position,
            )
            session.add(category)
            existing[kind.slug] = category
    session.flush()
    return existing


def _product(rng, index, name, kind, category, media_folder, now) -> Product:
    adjective = name.split()[0]
    metals = rng.sample(list(METALS), k=rng.choice([1, 1, 2, 3]))
    sizes = list(kind.sizes) if kind.sizes else [""]
    base = _price(rng)
    product = Product(
        slug=slugify(name),
        name=name,
        description=f"{rng.choice(OPENERS)} {rng.choice(DETAILS).format(adjective=adjective)}\n\n"
        f"Available in {', '.join(metals).lower()}. Materials: {rng.choice(MATERIALS).lower()} on a brass core.",
        category_id=category.id,
        price_from=base,
        is_featured=rng.random() < 0.012,
        created_at=now - timedelta(minutes=rng.randint(60, 365 * 24 * 60)),
    )
    position = 0
    for metal in metals:
        for size in sizes:
            label = f"{metal} / {size}" if size else metal
            attributes = {"Metal": metal} | ({"Size": size} if size else {})
            product.variants.append(
                Variant(
                    sku=f"{kind.code}-{index:06d}-{position + 1}",
                    name=label,
                    attributes=attributes,
                    price=base + (Decimal(2) if size and size == sizes[-1] and len(sizes) > 1 else 0),
                    on_hand=_stock(rng),
                    position=position,
                )
            )
            position += 1
    write_images(media_folder, product, kind.slug, metals)
    catalog.refresh_price_from(product)
    return product


def _names(rng: random.Random, count: int) -> list[tuple[str, Kind]]:
    names: list[tuple[str, Kind]] = []
    seen: set[str] = set()
    while len(names) < count:
        kind = KINDS[len(names) % len(KINDS)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(kind.nouns)}"
        if name in seen:
            name = f"{name} No. {len(names) + 1}"
        seen.add(name)
        names.append((name, kind))
    return names


def seed_demo(
    session: Session, media_folder: Path, products: int = 1000, flash_stock: int = 100, progress=None
) -> dict:
    """Create the demo catalog's missing pieces and set the flash-sale SKU's stock; never duplicates.
    `progress(n)` (optional) hears of every n products gone through."""
    rng = random.Random(2026)
    now = datetime.now(UTC)
    categories = _categories(session)
    existing = set(session.scalars(select(Product.slug)))
    created = 0
    for index, (name, kind) in enumerate(_names(rng, products), start=1):
        # Draw every product's random values even when it exists, so a rerun builds the same catalog.
        product = _product(rng, index, name, kind, categories[kind.slug], media_folder, now)
        if progress is not None:
            progress(1)
        if product.slug in existing:
            continue
        session.add(product)
        existing.add(product.slug)
        created += 1
        if created % 500 == 0:
            session.flush()
    flash = _flash_variant(session, categories["necklaces"], media_folder, now, flash_stock)
    session.flush()
    return {"products_created": created, "flash_sku": flash.sku, "flash_on_hand": flash.on_hand}


def _flash_variant(session, category, media_folder, now, flash_stock: int) -> Variant:
    variant = session.scalar(select(Variant).where(Variant.sku == FLASH_SKU))
    if variant is None:
        product = Product(
            slug=FLASH_SLUG,
            name="Aurora Crystal Drop Necklace",
            description="This week's drop: a faceted crystal on a fine 18\" chain, in a run that won't come back."
            "\n\nGold-plated brass, nickel-free. One per customer while stock lasts.",
            category_id=category.id,
            price_from=Decimal("9.99"),
            is_featured=True,
            created_at=now,
        )
        variant = Variant(
            sku=FLASH_SKU,
            name='Gold / 18"',
            attributes={"Metal": "Gold", "Size": '18"'},
            price=Decimal("9.99"),
            on_hand=0,
            reserved=0,
        )
        product.variants.append(variant)
        write_images(media_folder, product, category.slug, ["Gold"])
        session.add(product)
    if variant.reserved > flash_stock:
        raise ValueError(f"{FLASH_SKU} has {variant.reserved} units reserved; stock cannot go below that")
    inventory.set_on_hand(session, variant, flash_stock)
    return variant
