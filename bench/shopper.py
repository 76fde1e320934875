"""A shopper as a browser without JavaScript plays the shop: cookies, CSRF tokens, form posts, 303s, polling."""

import asyncio
import re
import uuid
from urllib.parse import urlencode

from bench.http import Connection, HttpError, Response, now
from bench.stats import Recorder

CSRF_BODY = re.compile(rb"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""")
CSRF_INPUT = re.compile(rb'name="csrf_token"[^>]*value="([^"]+)"')
IDEMPOTENCY_INPUT = re.compile(rb'name="idempotency_key"[^>]*value="([^"]+)"')
ORDER_LOCATION = re.compile(r"/orders/([A-Z0-9-]+)$")
ORDER_STATUS = re.compile(rb'class="order-status status-([a-z_]+)"')
SET_COOKIE = re.compile(rb"\r\nset-cookie:", re.IGNORECASE)
FINAL_STATUSES = {"paid", "payment_failed", "expired", "cancelled", "refunded", "shipped"}
NONCE_DESCRIPTOR = "COMMON.ACCEPT.INAPP.PAYMENT"
ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "1 Main St",
    "line2": "",
    "city": "Springfield",
    "region": "",
    "postal_code": "62701",
    "country": "US",
    "phone": "",
    "shipping_method": "standard",
}
FORM_HEADERS = b"Content-Type: application/x-www-form-urlencoded\r\n"
ACCEPT_HTML = b"Accept: text/html,application/xhtml+xml\r\n"


class Browser:
    """One browser tab without JavaScript: a cookie jar, the CSRF token of the last page, no redirects
    followed automatically (the caller follows the 303s it cares about, so each hop is timed on its own)."""

    def __init__(self, host: str, port: int, recorder: Recorder, timeout: float = 30.0):
        self.connection = Connection(host, port, timeout)
        self.recorder = recorder
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        # Grouped, so no run of digits in it can look like a card number to the tests' log scans.
        token = uuid.uuid4().hex
        self.email = f"shopper-{token[:4]}-{token[4:8]}-{token[8:12]}-{token[12:16]}@example.com"

    def clone(self) -> "Browser":
        """Another tab of the same browser (same cookies), e.g. the one left open on the order status."""
        other = Browser(self.connection.host, self.connection.port, self.recorder, self.connection.timeout)
        other.cookies = dict(self.cookies)
        other.csrf = self.csrf
        other.email = self.email
        return other

    def close(self) -> None:
        self.connection.close()

    def _headers(self, extra: bytes = b"") -> bytes:
        # Like a browser on http://127.0.0.1 (a "potentially trustworthy" origin), Secure cookies are sent.
        if not self.cookies:
            return ACCEPT_HTML + extra
        jar = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return ACCEPT_HTML + b"Cookie: " + jar.encode("latin-1") + b"\r\n" + extra

    def _remember(self, response: Response) -> None:
        if not SET_COOKIE.search(response.head):
            return
        for header in response.all("set-cookie"):
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            lowered = attributes.lower()
            if not value or "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    async def _send(self, method: str, path: str, label: str, extra: bytes, body: bytes | None) -> Response:
        started = now()
        try:
            response = await self.connection.request(method, path, self._headers(extra), body)
        except HttpError as error:
            self.recorder.error(label, str(error))
            raise
        self.recorder.add(label, response.status, now() - started)
        self._remember(response)
        return response

    async def get(self, path: str, label: str) -> Response:
        response = await self._send("GET", path, label, b"", None)
        if response.status == 200:
            match = CSRF_BODY.search(response.body) or CSRF_INPUT.search(response.body)
            if match:
                self.csrf = match.group(1).decode()
        return response

    async def post(self, path: str, form: dict, label: str) -> Response:
        return await self._send("POST", path, label, FORM_HEADERS, urlencode(form).encode())


# -- the steps of a visit -----------------------------------------------------------------------------


async def add_to_cart(
    browser: Browser, variant_id: int, quantity: int = 1, label: str = "add_to_cart"
) -> str:
    """POST /cart/add the no-JS way: "added" (303 to the cart), "refused" (422: sold out, limit), or "error"."""
    response = await browser.post(
        "/cart/add", {"variant_id": variant_id, "quantity": quantity, "csrf_token": browser.csrf}, label
    )
    if response.status == 303:
        return "added"
    return "refused" if response.status == 422 else "error"


async def open_checkout(browser: Browser, label: str = "checkout_page") -> dict | None:
    """GET /checkout: the hidden fields to post back (csrf_token, idempotency_key), or None."""
    response = await browser.get("/checkout", label)
    match = IDEMPOTENCY_INPUT.search(response.body) if response.status == 200 else None
    if match is None:
        return None
    return {"csrf_token": browser.csrf, "idempotency_key": match.group(1).decode()}


def checkout_form(browser: Browser, hidden: dict, nonce: str = "test-approve") -> dict:
    return {
        **hidden,
        **ADDRESS,
        "email": browser.email,
        "dataDescriptor": NONCE_DESCRIPTOR,
        "dataValue": nonce,
    }


async def place_order(browser: Browser, form: dict, label: str = "place_order") -> tuple[str, str | None]:
    """POST /checkout: ("accepted", number) on the 303 to the status page, ("refused", None) on 409, else error."""
    response = await browser.post("/checkout", form, label)
    if response.status == 303:
        match = ORDER_LOCATION.search(response.header("location") or "")
        if match:
            return "accepted", match.group(1)
    if response.status == 409:
        return "refused", None
    return f"error {response.status}", None


async def follow_status(
    browser: Browser, number: str, poll: float, max_wait: float, label: str = "order_status"
) -> tuple[str, float]:
    """Reload /orders/<number> every `poll` seconds until it is final or `max_wait` passes: (status, seconds)."""
    started = now()
    status = "unknown"
    try:
        for _ in range(int(max_wait / poll) + 2):
            try:
                response = await browser.get(f"/orders/{number}", label)
            except HttpError:
                response = None
            if response is not None and response.status == 200:
                match = ORDER_STATUS.search(response.body)
                status = match.group(1).decode() if match else "unknown"
                if status in FINAL_STATUSES:
                    break
            if now() - started + poll > max_wait:
                break
            await asyncio.sleep(poll)
    finally:
        browser.close()  # also when the tab is closed early (cancelled)
    return status, now() - started
