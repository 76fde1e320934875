"""A Jinja template that renders to exactly the product page's size, for the template and one-row ceilings."""

from pathlib import Path

from jinja2 import Environment, FileSystemLoader

TITLE = "Aurora Crystal Drop Necklace"
# A CSRF token of the length the shop renders (a constant: these pages check nothing).
TOKEN = "IjIwMmFkNmNjYmI3ZWViMzM0MWIyOTJlODBhZTlhM2M5ZWQyMTI2MDQi.awrsxg.g7mvaot87wKdhkXGAoBb6hMqmi4"  # noqa: S105
HEAD = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{ title }} · Storefront</title>
  <link rel="stylesheet" href="/static/css/app.css">
</head>
<body hx-headers='{"X-CSRFToken": "{{ token }}"}'>
  <main id="main" class="container">
    <h1>{{ title }}</h1>
    <ul class="products">
    {% for item in items %}
      <li><a href="/products/{{ item.slug }}">{{ item.name }}</a> <span class="price">${{ item.price }}</span></li>
    {% endfor %}
    </ul>
    <p>"""
TAIL = """</p>
  </main>
</body>
</html>
"""
FILLER = "Hand-finished and polished to a soft shine, nickel-free and made for everyday wear. "


def items(count: int) -> list[dict]:
    """The list the template loops over (the minimal app renders the same one)."""
    return [
        {
            "slug": f"celestial-gold-ring-{n}",
            "name": f"Celestial Gold-Plated Ring No. {n}",
            "price": f"{n % 40 + 4}.99",
        }
        for n in range(count)
    ]


def items_for(size: int) -> int:
    """About one list item (three variables, ~120 bytes) per 500 bytes; the rest is static markup."""
    return max(1, size // 500)


def write_template(folder: Path, size: int) -> int:
    """Write page.html into `folder` so that the minimal app's pages render `size` bytes; returns the item
    count to give the app (BENCH_CEILING_ITEMS)."""
    count = items_for(size)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "page.html"
    context = {"title": TITLE, "token": TOKEN, "items": items(count)}
    target.write_text(HEAD + TAIL)
    bare = len(
        Environment(loader=FileSystemLoader(str(folder)), autoescape=True)
        .get_template("page.html")
        .render(**context)
        .encode()
    )
    missing = max(0, size - bare)
    target.write_text(HEAD + (FILLER * (missing // len(FILLER) + 1))[:missing] + TAIL)
    return count
