"""The repository stands alone: a clone with nothing beside it has everything its code and tests read."""

import re
import subprocess

from storefront import ROOT
from tools import anet_loopback


def tracked_files(*patterns: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def test_the_loopback_validates_against_the_schema_kept_in_the_repository(monkeypatch):
    monkeypatch.delenv("ANET_XSD_PATH", raising=False)
    path = anet_loopback.xsd_path()
    assert path.is_relative_to(ROOT) and path.is_file()
    assert anet_loopback.load_schema(path) is not None


# `../shared/...` or a path built as `... / "shared" / ...`: the folder that sits beside the developers' checkout.
OUTSIDE = re.compile(r"\.\./shared\b|[\"']shared[\"']\s*/")


def test_no_code_reads_from_outside_the_repository():
    readers = tracked_files("*.py", "Makefile", ".ci/run", "*.ini", "*.toml", "*.cfg", "Procfile")
    outside = [
        name
        for name in readers
        if name != "tests/test_repository.py" and OUTSIDE.search((ROOT / name).read_text(errors="replace"))
    ]
    assert outside == []
