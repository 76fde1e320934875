"""The attack battery (`make security`): every test here carries the `security` marker, which `make test`
deselects so that the everyday run stays quick."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.security)


def routes(app, *, with_arguments: bool | None = None):
    """(rule, method) for every route of the app from its URL map, HEAD and OPTIONS left out."""
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint == "static" or (
            with_arguments is not None and bool(rule.arguments) != with_arguments
        ):
            continue
        found += [(rule, method) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def build(rule, values: dict) -> str:
    """The rule's URL with these values, and a harmless placeholder for any argument not given."""
    placeholders = {name: values.get(name, "1" if "id" in name else "x") for name in rule.arguments}
    return rule.build(placeholders)[1]
