"""The layering, read from the imports (ast) of storefront/ and jobs/: a rule broken anywhere fails here."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_FACTORY = "storefront/__init__.py"
GATEWAY = "storefront/payments/gateway.py"


def imported_modules(path: Path, source: str) -> set[str]:
    """Every module a file imports, at the top or inside a function, with relative imports made absolute."""
    package = ".".join(path.with_suffix("").parts[:-1] if path.name != "__init__.py" else path.parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            # `from storefront.orders import views` imports the module storefront.orders.views.
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _domain(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "storefront" else None


def violations(relative: str, modules: set[str]) -> list[str]:
    """The layering rules this file's imports break."""
    found = []
    this = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    for module in sorted(modules):
        if relative.startswith("jobs/") and module.split(".")[-1] == "views":
            found.append(f"{relative}: a job imports views ({module})")
        if (module == "storefront.admin" or module.startswith("storefront.admin.")) and not (
            relative == APP_FACTORY or this.startswith("storefront.admin")
        ):
            found.append(f"{relative}: only the app factory imports admin ({module})")
        if (
            this.endswith(".views")
            and module.endswith(".views")
            and module.startswith("storefront.")
            and _domain(module) != _domain(this)
        ):
            found.append(f"{relative}: a view imports another domain's views ({module})")
        if relative.endswith("models.py") and module.split(".")[-1] == "services":
            found.append(f"{relative}: models import services ({module})")
        if module.split(".")[0] == "authorizenet" and relative != GATEWAY:
            found.append(f"{relative}: authorizenet outside the gateway ({module})")
    return found


def _sources():
    for folder in ("storefront", "jobs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path.relative_to(ROOT)


def test_no_import_breaks_the_layering():
    found = {
        problem
        for relative in _sources()
        for problem in violations(
            relative.as_posix(), imported_modules(relative, (ROOT / relative).read_text())
        )
    }
    assert found == set()


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("jobs/emails.py", "from storefront.orders.views import view_key"),
        ("jobs/emails.py", "from storefront.orders import views"),
        ("storefront/models.py", "from storefront.admin.models import AuditEntry"),
        ("storefront/cart/services.py", "import storefront.admin"),
        ("storefront/checkout/views.py", "from storefront.accounts.views import AddressForm"),
        ("storefront/orders/models.py", "from storefront.orders import services"),
        ("storefront/payments/services.py", "from authorizenet import apicontractsv1"),
        ("storefront/payments/services.py", "from .gateway import x\nfrom ..admin import models"),
    ],
)
def test_each_rule_catches_its_import(relative, source):
    assert violations(relative, imported_modules(Path(relative), source)) != []


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        (APP_FACTORY, "from storefront import admin"),
        ("storefront/admin/stock.py", "from storefront.admin.fields import CountField"),
        (GATEWAY, "from authorizenet import apicontractsv1"),
        ("storefront/orders/views.py", "from storefront.orders import services"),
        ("jobs/emails.py", "from storefront.orders import services as orders"),
    ],
)
def test_allowed_imports_pass(relative, source):
    assert violations(relative, imported_modules(Path(relative), source)) == []
