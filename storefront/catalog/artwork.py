"""Product illustrations drawn as SVG from a product's own attributes, for the demo catalog.

A product's look (which shape of its kind, the stone's colour and cut, the background, the angle) comes from
a random generator seeded by its slug, so the same product always gets the same pictures, two products of a
category practically never share one, and seeding needs neither Pillow nor a download. Each product gets
2 to 4 views: the piece itself, turned, a close-up of its stone, and the piece on a jewelry box.
"""

import hashlib
import math
import random
from dataclasses import dataclass

SIZE = 800
C = SIZE // 2

METAL_COLOURS = {"Gold": "#d4af37", "Silver": "#c4c6cf", "Rose Gold": "#d49a8e"}
STONES = {
    "ruby": "#c8103f",
    "sapphire": "#1747b0",
    "emerald": "#2e9e62",
    "amethyst": "#8b5cc4",
    "citrine": "#f0b33c",
    "aquamarine": "#5cc8d8",
    "morganite": "#f2a7b6",
    "clear crystal": "#e8eef8",
    "onyx": "#2a2a33",
    "peridot": "#9ccc3c",
}
CUTS = ("round", "oval", "pear", "marquise", "emerald", "heart", "princess")
BACKGROUNDS = (
    ("#fdf2f8", "#f3e8ff"),
    ("#f0f9ff", "#e0e7ff"),
    ("#fefce8", "#fce7f3"),
    ("#ecfdf5", "#f5f3ff"),
    ("#fff7ed", "#fde68a"),
    ("#f1f5f9", "#dbeafe"),
    ("#fdf4ff", "#fae8ff"),
    ("#f7fee7", "#e0f2fe"),
)
# Which family of drawings each category's pieces use; the family has several shapes of its own.
FAMILIES = {
    "rings": "ring",
    "toe-rings": "ring",
    "necklaces": "necklace",
    "pendants": "necklace",
    "chains": "chain",
    "chokers": "chain",
    "body": "chain",
    "earrings": "earring",
    "studs": "earring",
    "piercings": "hoop",
    "hoops": "hoop",
    "bracelets": "bracelet",
    "bangles": "bracelet",
    "anklets": "bracelet",
    "watches": "bracelet",
    "charms": "motif",
    "brooches": "motif",
    "hair": "hairpiece",
    "cufflinks": "cufflink",
    "gift-sets": "giftset",
}


@dataclass(frozen=True)
class Look:
    """What a product's pictures show, drawn once from its slug."""

    family: str
    style: int
    stone: str
    cut: str
    finish: str  # "faceted", "pearl", "enamel" or "bead", from the product's material
    background: tuple[str, str]
    tilt: float
    stone_size: float
    seed: int


def _mix(colour: str, other: str, share: float) -> str:
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def look_for(slug: str, category: str, name: str) -> Look:
    """The look of a product: its family from the category, the rest from its slug and name."""
    seed = int.from_bytes(hashlib.sha256(slug.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    lowered = name.lower()
    finish = "faceted"
    if "pearl" in lowered:
        finish = "pearl"
    elif "enamel" in lowered:
        finish = "enamel"
    elif "beaded" in lowered:
        finish = "bead"
    return Look(
        family=FAMILIES.get(category, "motif"),
        style=rng.randrange(5),
        stone=rng.choice(list(STONES)),
        cut="round" if finish in ("pearl", "bead") else rng.choice(CUTS),
        finish=finish,
        background=rng.choice(BACKGROUNDS),
        tilt=rng.uniform(-14, 14),
        stone_size=rng.uniform(0.8, 1.25),
        seed=seed,
    )


# --- primitives: each returns SVG markup; fills refer to the gradients _document() defines ---


def _stone(x: float, y: float, r: float, look: Look, angle: float = 0) -> str:
    """One stone of the look's cut and finish, centred on (x, y), about r across its half."""
    if look.finish == "pearl":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="url(#pearl)" stroke="#d8d2c4" stroke-width="2"/>'
    if look.finish == "bead":
        return (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="url(#stone)"/>'
            f'<circle cx="{x - r * 0.35:.1f}" cy="{y - r * 0.35:.1f}" r="{r * 0.22:.1f}" fill="#fff" opacity=".55"/>'
        )
    outline = _cut_path(look.cut, r)
    fill = "url(#stone)" if look.finish == "faceted" else STONES[look.stone]
    facets = ""
    if look.finish == "faceted":
        facets = (
            f'<path d="M{-r * 0.5:.1f} {-r * 0.15:.1f} L0 {-r * 0.55:.1f} L{r * 0.5:.1f} {-r * 0.15:.1f} '
            f'L0 {r * 0.6:.1f} Z M{-r * 0.5:.1f} {-r * 0.15:.1f} H{r * 0.5:.1f}" fill="none" stroke="#fff" '
            f'stroke-opacity=".55" stroke-width="{max(1.5, r / 18):.1f}"/>'
            f'<ellipse cx="{-r * 0.3:.1f}" cy="{-r * 0.35:.1f}" rx="{r * 0.18:.1f}" ry="{r * 0.09:.1f}" '
            f'fill="#fff" opacity=".7" transform="rotate(-30 {-r * 0.3:.1f} {-r * 0.35:.1f})"/>'
        )
    return (
        f'<g transform="translate({x:.1f} {y:.1f}) rotate({angle:.1f})">'
        f'<path d="{outline}" fill="{fill}" stroke="url(#metal)" stroke-width="{max(3, r / 8):.1f}"/>{facets}</g>'
    )


def _cut_path(cut: str, r: float) -> str:
    if cut == "oval":
        return f"M0 {-r * 1.2:.1f} A{r * 0.85:.1f} {r * 1.2:.1f} 0 1 1 0 {r * 1.2:.1f} A{r * 0.85:.1f} {r * 1.2:.1f} 0 1 1 0 {-r * 1.2:.1f} Z"
    if cut == "pear":
        return f"M0 {-r * 1.3:.1f} C{r * 0.6:.1f} {-r * 0.5:.1f} {r:.1f} 0 {r:.1f} {r * 0.35:.1f} A{r:.1f} {r:.1f} 0 0 1 {-r:.1f} {r * 0.35:.1f} C{-r:.1f} 0 {-r * 0.6:.1f} {-r * 0.5:.1f} 0 {-r * 1.3:.1f} Z"
    if cut == "marquise":
        return f"M0 {-r * 1.35:.1f} Q{r * 1.1:.1f} 0 0 {r * 1.35:.1f} Q{-r * 1.1:.1f} 0 0 {-r * 1.35:.1f} Z"
    if cut == "emerald":
        a, b, k = r * 0.8, r * 1.1, r * 0.3
        return f"M{-a + k:.1f} {-b:.1f} H{a - k:.1f} L{a:.1f} {-b + k:.1f} V{b - k:.1f} L{a - k:.1f} {b:.1f} H{-a + k:.1f} L{-a:.1f} {b - k:.1f} V{-b + k:.1f} Z"
    if cut == "heart":
        return f"M0 {r:.1f} C{-r * 1.6:.1f} {-r * 0.1:.1f} {-r * 0.7:.1f} {-r * 1.3:.1f} 0 {-r * 0.45:.1f} C{r * 0.7:.1f} {-r * 1.3:.1f} {r * 1.6:.1f} {-r * 0.1:.1f} 0 {r:.1f} Z"
    if cut == "princess":
        return f"M{-r * 0.9:.1f} {-r * 0.9:.1f} H{r * 0.9:.1f} V{r * 0.9:.1f} H{-r * 0.9:.1f} Z"
    return f"M{-r:.1f} 0 A{r:.1f} {r:.1f} 0 1 1 {r:.1f} 0 A{r:.1f} {r:.1f} 0 1 1 {-r:.1f} 0 Z"


def _band(x: float, y: float, rx: float, ry: float, width: float, extra: str = "") -> str:
    return (
        f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{rx:.1f}" ry="{ry:.1f}" fill="none" stroke="url(#metal)" '
        f'stroke-width="{width:.1f}"{extra}/>'
        f'<ellipse cx="{x:.1f}" cy="{y - width * 0.2:.1f}" rx="{rx:.1f}" ry="{ry:.1f}" fill="none" stroke="#fff" '
        f'stroke-opacity=".35" stroke-width="{width * 0.18:.1f}"{extra}/>'
    )


def _chain(d: str, style: int, weight: float = 10) -> str:
    """A chain along a path: links drawn as a dashed double stroke, heavier or finer by style."""
    links = ("18 6", "10 5", "30 8", "6 4", "24 10")[style % 5]
    return (
        f'<path d="{d}" fill="none" stroke="url(#metal)" stroke-width="{weight:.1f}" stroke-linecap="round" '
        f'stroke-dasharray="{links}"/>'
        f'<path d="{d}" fill="none" stroke="#fff" stroke-opacity=".35" stroke-width="{weight * 0.3:.1f}" '
        f'stroke-dasharray="{links}"/>'
    )


def _stones_along(points: list[tuple[float, float]], r: float, look: Look) -> str:
    return "".join(_stone(x, y, r, look) for x, y in points)


def _arc_points(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int):
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in (start + (end - start) * i / max(n - 1, 1) for i in range(n))
    ]


# --- the families: each draws the whole piece centred on the canvas, in one of its styles ---


def _ring(look: Look) -> str:
    s = 70 * look.stone_size
    style = look.style
    if style == 0:  # solitaire
        return _band(C, C + 80, 190, 150, 34) + _stone(C, C - 90, s, look)
    if style == 1:  # halo
        halo = _stones_along(_arc_points(C, C - 90, s * 1.45, s * 1.45, 0, 330, 12), 12, look)
        return _band(C, C + 80, 190, 150, 30) + halo + _stone(C, C - 90, s, look)
    if style == 2:  # stack of three bands
        return "".join(_band(C, C + dy, 200, 120, 20) for dy in (-70, 0, 70)) + _stones_along(
            _arc_points(C, C + 70, 200, 120, 60, 120, 5), 11, look
        )
    if style == 3:  # signet
        return (
            _band(C, C + 80, 190, 150, 40)
            + f'<ellipse cx="{C}" cy="{C - 80}" rx="120" ry="85" fill="url(#metal)" stroke="#00000022" stroke-width="4"/>'
            + _stone(C, C - 80, s * 0.6, look)
        )
    return _band(C, C + 40, 210, 170, 36) + _stones_along(
        _arc_points(C, C + 40, 210, 170, 200, 340, 9), 16, look
    )  # eternity band


def _necklace(look: Look) -> str:
    s = 80 * look.stone_size
    drop_y = 470 + 20 * (look.style % 3)
    d = f"M150 120 Q{C} {drop_y * 1.3:.0f} 650 120"
    chain = _chain(d, look.style, 9)
    bail = f'<circle cx="{C}" cy="{drop_y - 12}" r="14" fill="none" stroke="url(#metal)" stroke-width="7"/>'
    if look.style == 0:
        return chain + bail + _stone(C, drop_y + s, s, look)
    if look.style == 1:  # lariat: a long drop below a knot
        return (
            chain
            + f'<path d="M{C} {drop_y - 10} V{drop_y + 170}" stroke="url(#metal)" stroke-width="8"/>'
            + _stone(C, drop_y + 190, s * 0.7, look)
        )
    if look.style == 2:  # bar pendant
        return (
            chain
            + f'<rect x="{C - 110}" y="{drop_y - 14}" width="220" height="34" rx="10" fill="url(#metal)"/>'
        )
    if look.style == 3:  # locket
        return (
            chain
            + bail
            + f'<ellipse cx="{C}" cy="{drop_y + 90}" rx="80" ry="100" fill="url(#metal)" stroke="#00000022" stroke-width="5"/>'
            + _stone(C, drop_y + 90, 22, look)
        )
    stations = _arc_points(C, 120, 250, drop_y * 1.3 - 420, 30, 150, 5)
    return chain + _stones_along(stations, s * 0.4, look)  # station necklace


def _chain_piece(look: Look) -> str:
    weight = (8, 14, 20, 11, 16)[look.style]
    if look.style in (0, 1):  # a loose chain, folded
        return _chain("M140 200 C300 80 520 80 640 220 S560 620 380 640 S140 420 300 330", look.style, weight)
    if look.style == 2:  # choker: a tight circle with beads
        return _band(C, C, 220, 200, 18) + _stones_along(_arc_points(C, C, 220, 200, 30, 150, 7), 14, look)
    return (
        _chain("M120 180 Q400 520 680 180", look.style, weight)
        + _chain("M150 260 Q400 660 650 260", look.style + 1, weight * 0.8)
        + _stone(C, 455, 30 * look.stone_size, look)
    )  # layered


def _earring(look: Look) -> str:
    s = 50 * look.stone_size
    parts = []
    for x in (C - 130, C + 130):
        if look.style in (0, 1):  # drops
            parts.append(
                f'<path d="M{x} 210 q-30 -60 0 -90" fill="none" stroke="url(#metal)" stroke-width="8"/>'
                f'<line x1="{x}" y1="210" x2="{x}" y2="{300 + 40 * look.style}" stroke="url(#metal)" stroke-width="8"/>'
                + _stone(x, 340 + 40 * look.style + s, s, look)
            )
        elif look.style == 2:  # studs
            parts.append(_stone(x, C, s * 1.2, look))
        elif look.style == 3:  # climbers
            parts.append(
                _stones_along(_arc_points(x + 60, C, 90, 150, 150, 250, 5), 16 + 6 * look.stone_size, look)
            )
        else:  # threaders
            parts.append(
                f'<path d="M{x} 150 C{x - 60} 350 {x + 60} 450 {x} 620" fill="none" stroke="url(#metal)" stroke-width="7"/>'
                + _stone(x, 620, s * 0.5, look)
            )
    return "".join(parts)


def _hoop(look: Look) -> str:
    radius, width = ((150, 16), (95, 34), (130, 10), (110, 24), (160, 20))[look.style]
    parts = []
    for x in (C - 170, C + 170):
        parts.append(_band(x, C, radius, radius, width))
        if look.style in (2, 4):
            parts.append(_stone(x, C + radius + 26, 24 * look.stone_size, look))
        if look.style == 3:
            parts.append(_stones_along(_arc_points(x, C, radius, radius, 20, 160, 6), width * 0.45, look))
    return "".join(parts)


def _bracelet(look: Look) -> str:
    if look.style == 0:  # chain with a clasp
        return _chain(f"M{C - 260} {C} A260 170 0 1 1 {C + 260} {C}", 0, 16) + _stone(C, C + 170, 26, look)
    if look.style == 1:  # solid bangle
        return _band(C, C, 250, 170, 42)
    if look.style == 2:  # tennis
        return _band(C, C, 250, 170, 12) + _stones_along(_arc_points(C, C, 250, 170, 0, 345, 24), 17, look)
    if look.style == 3:  # cuff, open at the back
        return (
            f'<path d="M{C - 230} {C - 80} A250 170 0 1 0 {C + 230} {C - 80}" fill="none" stroke="url(#metal)" stroke-width="70" stroke-linecap="round"/>'
            + _stone(C, C + 170, 34 * look.stone_size, look)
        )
    charms = _arc_points(C, C, 250, 170, 30, 150, 4)
    return _chain(f"M{C - 250} {C} A250 170 0 1 1 {C + 250} {C}", 3, 10) + "".join(
        _stone(x, y + 34, 24, look) for x, y in charms
    )  # charm bracelet


def _motif(look: Look) -> str:
    s = 95 * look.stone_size
    if look.style == 0:  # star
        points = " ".join(
            f"{C + (220 if i % 2 == 0 else 95) * math.sin(math.pi * i / 5):.1f},"
            f"{C - (220 if i % 2 == 0 else 95) * math.cos(math.pi * i / 5):.1f}"
            for i in range(10)
        )
        return (
            f'<polygon points="{points}" fill="url(#metal)" stroke="#00000022" stroke-width="6"/>'
            + _stone(C, C, s * 0.4, look)
        )
    if look.style == 1:  # crescent moon
        return (
            f'<path d="M{C + 40} {C - 220} A220 220 0 1 0 {C + 40} {C + 220} A170 190 0 1 1 {C + 40} {C - 220} Z" '
            f'fill="url(#metal)"/>' + _stone(C + 110, C - 60, s * 0.3, look)
        )
    if look.style == 2:  # flower
        petals = "".join(_stone(x, y, s * 0.55, look) for x, y in _arc_points(C, C, 140, 140, 0, 288, 5))
        return petals + f'<circle cx="{C}" cy="{C}" r="{s * 0.55:.1f}" fill="url(#metal)"/>'
    if look.style == 3:  # bow
        return (
            f'<path d="M{C} {C} L{C - 240} {C - 150} L{C - 240} {C + 150} Z M{C} {C} L{C + 240} {C - 150} '
            f'L{C + 240} {C + 150} Z" fill="url(#metal)" stroke="#00000022" stroke-width="6"/>'
            + _stone(C, C, s * 0.45, look)
        )
    return _stone(C, C, s * 1.8, look)  # a single big stone in a bezel


def _hairpiece(look: Look) -> str:
    if look.style in (0, 1):  # a bar clip set with stones
        y = C - 40 + 30 * look.style
        return f'<rect x="130" y="{y}" width="540" height="70" rx="35" fill="url(#metal)"/>' + _stones_along(
            [(200 + 100 * i, y + 35) for i in range(5)], 22, look
        )
    pins = []
    for i, dx in enumerate((-150, 0, 150)):
        angle = (-12, 0, 12)[i] + look.tilt / 2
        pins.append(
            f'<g transform="rotate({angle:.1f} {C + dx} {C})"><rect x="{C + dx - 6}" y="{C - 220}" width="12" height="420" rx="6" fill="url(#metal)"/>'
            + _stone(C + dx, C - 220, 34 if look.style != 4 else 24, look)
            + "</g>"
        )
    return "".join(pins)


def _cufflink(look: Look) -> str:
    parts = []
    for x in (C - 150, C + 150):
        if look.style % 2:
            parts.append(
                f'<rect x="{x - 90}" y="{C - 90}" width="180" height="180" rx="20" fill="url(#metal)"/>'
            )
        else:
            parts.append(f'<circle cx="{x}" cy="{C}" r="95" fill="url(#metal)"/>')
        parts.append(_stone(x, C, 36 * look.stone_size, look))
    return "".join(parts)


def _giftset(look: Look) -> str:
    box = (
        f'<rect x="120" y="330" width="560" height="320" rx="24" fill="#fff" stroke="#00000014" stroke-width="6"/>'
        f'<rect x="120" y="330" width="560" height="70" rx="24" fill="{_mix(look.background[1], "#000000", 0.08)}"/>'
    )
    ring = _band(280, 480, 85, 70, 18) + _stone(280, 410, 26, look)
    studs = _stone(470, 470, 22, look) + _stone(560, 470, 22, look)
    chain = _chain("M420 560 Q515 640 610 560", look.style, 6)
    return box + ring + studs + chain


DRAW = {
    "ring": _ring,
    "necklace": _necklace,
    "chain": _chain_piece,
    "earring": _earring,
    "hoop": _hoop,
    "bracelet": _bracelet,
    "motif": _motif,
    "hairpiece": _hairpiece,
    "cufflink": _cufflink,
    "giftset": _giftset,
}


def _document(look: Look, metal: str, body: str, background: tuple[str, str]) -> str:
    metal_hex = METAL_COLOURS.get(metal, metal)
    stone = STONES[look.stone]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">'
        "<defs>"
        f'<radialGradient id="bg" cx=".35" cy=".3" r=".9"><stop offset="0" stop-color="{background[0]}"/>'
        f'<stop offset="1" stop-color="{background[1]}"/></radialGradient>'
        f'<linearGradient id="metal" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="{_mix(metal_hex, "#ffffff", 0.55)}"/>'
        f'<stop offset=".45" stop-color="{metal_hex}"/><stop offset="1" stop-color="{_mix(metal_hex, "#000000", 0.35)}"/></linearGradient>'
        f'<radialGradient id="stone" cx=".4" cy=".35" r=".75"><stop offset="0" stop-color="{_mix(stone, "#ffffff", 0.6)}"/>'
        f'<stop offset=".55" stop-color="{stone}"/><stop offset="1" stop-color="{_mix(stone, "#000000", 0.4)}"/></radialGradient>'
        '<radialGradient id="pearl" cx=".35" cy=".3" r=".8"><stop offset="0" stop-color="#ffffff"/>'
        '<stop offset=".6" stop-color="#f4efe6"/><stop offset="1" stop-color="#d9d0c0"/></radialGradient>'
        "</defs>"
        f'<rect width="{SIZE}" height="{SIZE}" fill="url(#bg)"/>{body}</svg>'
    )


VIEWS = ("front", "turned", "detail", "boxed")


def render(look: Look, metal: str, view: str) -> str:
    """One picture of the product in one metal: the piece from the front, turned, close up, or on a box."""
    piece = DRAW[look.family](look)
    shadow = f'<ellipse cx="{C}" cy="{SIZE - 90}" rx="250" ry="26" fill="#000" opacity=".07"/>'
    background = look.background
    if view == "front":
        body = shadow + f'<g transform="rotate({look.tilt:.1f} {C} {C})">{piece}</g>'
    elif view == "turned":
        background = (look.background[1], look.background[0])
        body = shadow + (
            f'<g transform="translate({C} {C}) rotate({-look.tilt - 18:.1f}) scale(.92 .7) translate({-C} {-C})">{piece}</g>'
        )
    elif view == "detail":
        background = (_mix(look.background[0], "#ffffff", 0.5), look.background[0])
        body = f'<g transform="translate({C} {C}) scale(1.9) translate({-C} {-C + 60})">{piece}</g>'
    else:
        background = ("#f8f5f0", "#e9e1d6")
        body = (
            f'<rect x="110" y="300" width="580" height="420" rx="30" fill="{_mix(look.background[1], "#000000", 0.25)}"/>'
            f'<rect x="140" y="330" width="520" height="360" rx="20" fill="{_mix(look.background[0], "#ffffff", 0.3)}"/>'
            f'<g transform="translate({C} 510) scale(.55) translate({-C} {-C})">{piece}</g>'
        )
    return _document(look, metal, body, background)


def views_for(look: Look, metals: list[str]) -> list[tuple[str, str]]:
    """The (metal, view) pairs of a product's 2 to 4 pictures: the front in each metal first, then more views."""
    count = 2 + look.seed % 3
    pictures = [(metal, "front") for metal in metals[:count]]
    for view in VIEWS[1:]:
        if len(pictures) >= count:
            break
        pictures.append((metals[0], view))
    return pictures
