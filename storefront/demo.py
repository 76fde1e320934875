"""A realistic demo catalog, built locally and deterministically: running it twice adds nothing."""

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.catalog import services as catalog
from storefront.catalog.models import Category, Product, ProductImage, Variant
from storefront.inventory import services as inventory

FLASH_SKU = "DEMO-FLASH"
FLASH_SLUG = "aurora-crystal-drop-necklace"
IMAGE_SIZE = 800

METALS = {"Gold": "#d4af37", "Silver": "#c0c0c8", "Rose Gold": "#c98b8b"}
GEMS = ["#e0115f", "#0f52ba", "#50c878", "#9966cc", "#ffc87c", "#e6e8fa", "#40e0d0", "#ff7f50"]
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
    shape: str
    sizes: tuple[str, ...] = ()


KINDS = [
    Kind(
        "rings", "Rings", "RNG", ("Ring", "Stacking Ring", "Signet Ring"), "ring", ("5", "6", "7", "8", "9")
    ),
    Kind(
        "necklaces",
        "Necklaces",
        "NCK",
        ("Necklace", "Pendant Necklace", "Lariat"),
        "necklace",
        ('16"', '18"', '20"'),
    ),
    Kind("earrings", "Earrings", "EAR", ("Earrings", "Drop Earrings", "Threaders"), "earrings"),
    Kind("hoops", "Hoops", "HOP", ("Hoops", "Huggie Hoops", "Mini Hoops"), "hoop"),
    Kind("studs", "Studs", "STD", ("Studs", "Stud Set", "Climber Studs"), "earrings"),
    Kind(
        "bracelets",
        "Bracelets",
        "BRC",
        ("Bracelet", "Chain Bracelet", "Tennis Bracelet"),
        "bracelet",
        ("S/M", "M/L"),
    ),
    Kind("bangles", "Bangles", "BNG", ("Bangle", "Cuff", "Open Bangle"), "bracelet", ("S/M", "M/L")),
    Kind("anklets", "Anklets", "ANK", ("Anklet", "Chain Anklet", "Charm Anklet"), "bracelet"),
    Kind("pendants", "Pendants", "PND", ("Pendant", "Locket", "Medallion"), "necklace"),
    Kind("charms", "Charms", "CHM", ("Charm", "Bead Charm", "Dangle Charm"), "gem"),
    Kind(
        "chains",
        "Chains",
        "CHN",
        ("Chain", "Rope Chain", "Paperclip Chain"),
        "necklace",
        ('16"', '18"', '20"', '24"'),
    ),
    Kind("chokers", "Chokers", "CHK", ("Choker", "Collar", "Velvet Choker"), "necklace"),
    Kind("brooches", "Brooches", "BRO", ("Brooch", "Pin", "Lapel Pin"), "gem"),
    Kind("hair", "Hair Accessories", "HAR", ("Hair Clip", "Barrette", "Hair Pin Set"), "gem"),
    Kind("body", "Body Jewelry", "BDY", ("Belly Chain", "Body Chain", "Hand Chain"), "necklace"),
    Kind("piercings", "Piercings", "PRC", ("Nose Stud", "Helix Hoop", "Cartilage Stud"), "hoop"),
    Kind("toe-rings", "Toe Rings", "TOE", ("Toe Ring", "Midi Ring", "Knuckle Ring"), "ring"),
    Kind("cufflinks", "Cufflinks", "CUF", ("Cufflinks", "Tie Bar", "Collar Pins"), "gem"),
    Kind("watches", "Watch Charms", "WCH", ("Watch Charm", "Fob Chain", "Watch Band"), "bracelet"),
    Kind("gift-sets", "Gift Sets", "GFT", ("Gift Set", "Stacking Set", "Layering Set"), "gem"),
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


def _svg(shape: str, metal: str, gem: str, background: tuple[str, str]) -> str:
    """A simple product illustration, so the demo shows real images without downloading any."""
    c = IMAGE_SIZE // 2
    shapes = {
        "ring": f'<circle cx="{c}" cy="{c + 60}" r="170" fill="none" stroke="{metal}" stroke-width="38"/>'
        f'<path d="M{c - 60} {c - 110} L{c} {c - 190} L{c + 60} {c - 110} L{c} {c - 60} Z" fill="{gem}" stroke="#fff" stroke-width="6"/>',
        "necklace": f'<path d="M170 140 Q{c} 620 630 140" fill="none" stroke="{metal}" stroke-width="14"/>'
        f'<circle cx="{c}" cy="{c + 70}" r="26" fill="{metal}"/>'
        f'<path d="M{c} {c + 95} l55 80 l-55 90 l-55 -90 Z" fill="{gem}" stroke="#fff" stroke-width="5"/>',
        "earrings": "".join(
            f'<circle cx="{x}" cy="280" r="24" fill="{metal}"/><line x1="{x}" y1="300" x2="{x}" y2="390" stroke="{metal}" stroke-width="10"/>'
            f'<path d="M{x} 390 l50 90 l-50 110 l-50 -110 Z" fill="{gem}" stroke="#fff" stroke-width="5"/>'
            for x in (280, 520)
        ),
        "hoop": f'<circle cx="290" cy="{c}" r="130" fill="none" stroke="{metal}" stroke-width="26"/>'
        f'<circle cx="510" cy="{c}" r="130" fill="none" stroke="{metal}" stroke-width="26"/>'
        f'<circle cx="290" cy="{c + 130}" r="16" fill="{gem}"/><circle cx="510" cy="{c + 130}" r="16" fill="{gem}"/>',
        "bracelet": f'<ellipse cx="{c}" cy="{c}" rx="250" ry="150" fill="none" stroke="{metal}" stroke-width="30" stroke-dasharray="46 14"/>'
        + "".join(f'<circle cx="{c + dx}" cy="{c + 150}" r="20" fill="{gem}"/>' for dx in (-80, 0, 80)),
        "gem": f'<path d="M{c} 170 L610 330 L{c} 640 L190 330 Z" fill="{gem}" stroke="{metal}" stroke-width="22"/>'
        f'<path d="M190 330 H610 M{c} 170 L330 330 L{c} 640 L470 330 Z" fill="none" stroke="#fff" stroke-opacity=".7" stroke-width="5"/>',
    }
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{IMAGE_SIZE}" height="{IMAGE_SIZE}" viewBox="0 0 {IMAGE_SIZE} {IMAGE_SIZE}">'
        f'<defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="{background[0]}"/>'
        f'<stop offset="1" stop-color="{background[1]}"/></linearGradient></defs>'
        f'<rect width="100%" height="100%" fill="url(#bg)"/>{shapes[shape]}</svg>'
    )


BACKGROUNDS = [("#fdf2f8", "#ede9fe"), ("#f0f9ff", "#e0e7ff"), ("#fefce8", "#fce7f3"), ("#ecfdf5", "#f5f3ff")]


def write_image_pool(media_folder: Path) -> dict[tuple[str, str], list[str]]:
    """Write one small set of illustrations per (shape, metal); products share them, so seeding scales."""
    pool: dict[tuple[str, str], list[str]] = {}
    folder = media_folder / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    shapes = sorted({kind.shape for kind in KINDS})
    for shape in shapes:
        for metal, colour in METALS.items():
            paths = []
            for n, gem in enumerate(GEMS[:4]):
                name = f"demo/{shape}-{slugify(metal)}-{n}.svg"
                target = media_folder / name
                if not target.exists():
                    target.write_text(_svg(shape, colour, gem, BACKGROUNDS[n % len(BACKGROUNDS)]))
                paths.append(name)
            pool[(shape, metal)] = paths
    return pool


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


def _product(rng, index, name, kind, category, pool, now) -> Product:
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
    for n, metal in enumerate(metals[:3]):
        path = rng.choice(pool[(kind.shape, metal)])
        product.images.append(
            ProductImage(
                path=path, alt=f"{name} in {metal.lower()}", width=IMAGE_SIZE, height=IMAGE_SIZE, position=n
            )
        )
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


def seed_demo(session: Session, media_folder: Path, products: int = 1000, flash_stock: int = 100) -> dict:
    """Create the demo catalog's missing pieces and set the flash-sale SKU's stock; never duplicates."""
    rng = random.Random(2026)
    now = datetime.now(UTC)
    pool = write_image_pool(media_folder)
    categories = _categories(session)
    existing = set(session.scalars(select(Product.slug)))
    created = 0
    for index, (name, kind) in enumerate(_names(rng, products), start=1):
        # Draw every product's random values even when it exists, so a rerun builds the same catalog.
        product = _product(rng, index, name, kind, categories[kind.slug], pool, now)
        if product.slug in existing:
            continue
        session.add(product)
        existing.add(product.slug)
        created += 1
        if created % 500 == 0:
            session.flush()
    flash = _flash_variant(session, categories["necklaces"], pool, now, flash_stock)
    session.flush()
    return {"products_created": created, "flash_sku": flash.sku, "flash_on_hand": flash.on_hand}


def _flash_variant(session, category, pool, now, flash_stock: int) -> Variant:
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
        product.images.append(
            ProductImage(
                path=pool[("necklace", "Gold")][0],
                alt="Aurora crystal drop necklace in gold",
                width=IMAGE_SIZE,
                height=IMAGE_SIZE,
            )
        )
        session.add(product)
    if variant.reserved > flash_stock:
        raise ValueError(f"{FLASH_SKU} has {variant.reserved} units reserved; stock cannot go below that")
    inventory.set_on_hand(session, variant, flash_stock)
    return variant
