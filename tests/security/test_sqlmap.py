"""sqlmap (PyPI, pinned) at level 2 / risk 1 against every link and form it finds on the shop, as a stranger,
a signed-in shopper and a staff member (CSRF tokens refreshed by sqlmap itself): no parameter injectable.
The same run finds the deliberately injectable route of a test-only app, so a clean result means something."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.conftest import SHOPPER_EMAIL, STAFF_EMAIL, signed_in
from tests.security.vulnerable_app import Server

SQLMAP = Path(sys.executable).parent / "sqlmap"
# Each scan of the shop is bounded (the login form alone costs a scrypt hash per try); the battery as a whole
# has its own bound in the Makefile.
SHOP_SECONDS = int(os.environ.get("SECURITY_SQLMAP_SECONDS", "240"))
# Never crawled: the forms that sign the scanner out (the rest of the scan would run anonymous).
EXCLUDE = r"logout|sign-out|/static/|/media/"


def sqlmap(target: str, output: Path, seconds: float, *extra: str) -> tuple[str, bool]:
    """sqlmap's output, and whether it finished within `seconds` (else it is stopped and its output so far
    is what was tested)."""
    command = [
        str(SQLMAP), "-u", target, "--batch", "--level=2", "--risk=1", "--timeout=10",
        "--retries=1", "--flush-session", "--disable-coloring", f"--output-dir={output}", *extra,
    ]  # fmt: skip
    log_path = output / "sqlmap.log"
    with log_path.open("w") as log:
        scan = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            scan.wait(timeout=seconds)
            finished = True
        except subprocess.TimeoutExpired:
            os.killpg(scan.pid, signal.SIGTERM)
            scan.wait(timeout=10)
            finished = False
    return log_path.read_text(errors="replace"), finished


def parameters_tried(log: str) -> set[str]:
    return set(re.findall(r"testing if (\w+ parameter '[^']+') is dynamic", log)) | set(
        re.findall(r"(\w+ parameter '[^']+') does not seem to be injectable", log)
    )


def injectable(log: str) -> set[str]:
    return set(re.findall(r"(\w+ parameter '[^']+') is (?:vulnerable|'[^']+' injectable)", log))


def test_sqlmap_finds_the_deliberately_injectable_route(tmp_path):
    server = Server()
    try:
        log, _finished = sqlmap(f"{server.url}/items?id=1", tmp_path, 300)
    finally:
        server.stop()
    print(f"\nsqlmap on the injectable test app: {sorted(injectable(log))}")
    assert "GET parameter 'id'" in injectable(log), log[-3000:]


@pytest.mark.parametrize("who", ["stranger", "shopper", "staff"])
def test_no_parameter_of_the_shop_is_injectable(live_shop, tmp_path, who):
    extra = [
        "--crawl=2",
        "--forms",
        f"--crawl-exclude={EXCLUDE}",
        "--csrf-token=csrf_token",
        "--dbms=PostgreSQL",
    ]
    start = f"{live_shop.url}/"
    if who != "stranger":
        browser = signed_in(live_shop.url, SHOPPER_EMAIL if who == "shopper" else STAFF_EMAIL)
        cookies = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
        extra += [f"--cookie={cookies}", "--drop-set-cookie"]
        start = f"{live_shop.url}/account" if who == "shopper" else f"{live_shop.url}/admin/"
    log, finished = sqlmap(start, tmp_path, SHOP_SECONDS, *extra)
    tested = parameters_tried(log)
    print(
        f"\nsqlmap as {who}: {len(tested)} parameters tested, {len(injectable(log))} injectable"
        + ("" if finished else f" (scan stopped at its {SHOP_SECONDS} s bound)")
        + f": {', '.join(sorted(tested))}"
    )
    assert tested, log[-3000:]
    assert injectable(log) == set(), log[-3000:]
