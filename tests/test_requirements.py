"""Dependencies: every third-party package the code imports is a pinned top-level requirement."""

import ast
import importlib.metadata
import re
import sys

from storefront import ROOT

CODE = ["storefront", "jobs", "tools", "alembic", "bench", "wsgi.py", "gunicorn.conf.py"]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s#]+)")


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        if match := PIN.match(line.strip()):
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def imported_top_level_modules() -> set[str]:
    modules = set()
    for place in CODE:
        path = ROOT / place
        for source in [path] if path.is_file() else path.rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"storefront", "jobs", "tools", "bench", "tests", "wsgi"}


def test_every_imported_package_is_listed_in_requirements_in():
    listed = pins("requirements.in")
    owners = importlib.metadata.packages_distributions()
    missing = {
        module: owners.get(module)
        for module in imported_top_level_modules()
        if not any(dist.lower().replace("_", "-") in listed for dist in owners.get(module, []))
    }
    assert missing == {}


def test_requirements_in_pins_what_requirements_txt_pins():
    top, frozen = pins("requirements.in"), pins("requirements.txt")
    assert {
        name: (version, frozen.get(name)) for name, version in top.items() if frozen.get(name) != version
    } == {}
