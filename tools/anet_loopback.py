"""A loopback Authorize.Net: the XML API on 127.0.0.1 over the sandbox ledger, for tests, development and benchmarks.

    python -m tools.anet_loopback --host 127.0.0.1 --port 8765 --latency 0.3

Every request body is validated against the official XSD (`docs/authorizenet/AnetApiSchema.xsd` in the
repository, or $ANET_XSD_PATH). A JSON control API on the same port injects faults, settles and resets:
POST /_control/fault {"mode": "http500" | "hang" | "lost_after_charge" | "slow_after_charge" | "none", "count": 1,
"hang_seconds": 30},
POST /_control/latency {"seconds": 0.3}, POST /_control/settle, POST /_control/reset,
GET /_control/transactions, GET /_control/stats (calls in flight, and the peak), GET /_control/health.
"""

import argparse
import functools
import json
import logging
import os
import signal
import socketserver
import sys
import threading
from dataclasses import asdict, dataclass
from datetime import timedelta, timezone
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree
from lxml.builder import ElementMaker

from storefront.payments import sandbox
from storefront.payments.sandbox import CENTS, Ledger, Outcome, Txn

NS = "AnetApi/xml/v1/schema/AnetApiSchema.xsd"
API_PATH = "/xml/v1/request.api"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_LOGIN = "storefront-test"
DEFAULT_KEY = "storefront-key"  # the XSD (and so the SDK) caps transactionKey at 16 characters
BOM = b"\xef\xbb\xbf"  # real responses start with it, and the SDK drops the first 3 characters blindly
MAX_BODY = 1 << 20
MAX_HANG_SECONDS = 300.0
MAX_LATENCY_SECONDS = 60.0
DEFAULT_HANG_SECONDS = 30.0
# slow_after_charge books the charge, then waits hang_seconds before answering: the window in which a test
# kills the worker after the gateway approved but before the shop recorded it.
FAULT_MODES = ("none", "http500", "hang", "lost_after_charge", "slow_after_charge")
# The XSD types transactionType as a free xs:string; the real API checks it against this enum.
TRANSACTION_TYPES = frozenset(
    {
        "authOnlyTransaction",
        "authCaptureTransaction",
        "captureOnlyTransaction",
        "refundTransaction",
        "priorAuthCaptureTransaction",
        "voidTransaction",
        "getDetailsTransaction",
        "authOnlyContinueTransaction",
        "authCaptureContinueTransaction",
    }
)
SUPPORTED_TYPES = frozenset(
    {
        "authOnlyTransaction",
        "authCaptureTransaction",
        "priorAuthCaptureTransaction",
        "voidTransaction",
        "refundTransaction",
    }
)
# Sandbox accounts report local times in Mountain time; a fixed offset is close enough for a test double.
MERCHANT_TIME = timezone(timedelta(hours=-7))

E = ElementMaker(
    namespace=NS,
    nsmap={
        None: NS,
        "xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsd": "http://www.w3.org/2001/XMLSchema",
    },
)
log = logging.getLogger("anet_loopback")


def xsd_path() -> Path:
    """Where the official XSD lives: $ANET_XSD_PATH, else the copy kept in the repository."""
    override = os.environ.get("ANET_XSD_PATH")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "docs" / "authorizenet" / "AnetApiSchema.xsd"


@functools.cache
def load_schema(path: Path) -> etree.XMLSchema:
    """The XSD, parsed once per process (loading it takes a noticeable fraction of a second)."""
    if not path.is_file():
        raise FileNotFoundError(f"AnetApiSchema.xsd not found at {path}; set ANET_XSD_PATH")
    return etree.XMLSchema(etree.parse(str(path)))


def _q(path: str) -> str:
    """An ElementPath in the API namespace from a plain one: "order/invoiceNumber"."""
    return "/".join(f"{{{NS}}}{step}" for step in path.split("/"))


def _text(element: etree._Element, path: str) -> str | None:
    return element.findtext(_q(path))


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def _money(amount: Decimal) -> str:
    return format(amount.quantize(CENTS), "f")


def _times(txn: Txn) -> tuple[str, str]:
    """submitTimeUTC and submitTimeLocal, formatted like the real API ("…T14:35:12.123Z", no offset locally)."""
    utc = txn.submitted_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    local = txn.submitted_at.astimezone(MERCHANT_TIME).replace(tzinfo=None).isoformat(timespec="milliseconds")
    return utc, local


def _optional(name: str, value: str) -> list[etree._Element]:
    return [E(name, value)] if value else []


def envelope(name: str, ref_id: str | None, result: tuple[str, ...], *body: etree._Element) -> etree._Element:
    """A response root: refId, messages{resultCode, message{code, text}}, then the method's own elements."""
    result_code, code, text = result
    root = E(name, *_optional("refId", ref_id or ""))
    root.append(E.messages(E.resultCode(result_code), E.message(E.code(code), E("text", text))))
    root.extend(body)
    return root


def serialize(root: etree._Element) -> bytes:
    """The body as the real API sends it: BOM, XML declaration in double quotes, UTF-8."""
    # The SDK's fallback parser strips exactly 'encoding="utf-8"', so the declaration must use double quotes.
    return BOM + b'<?xml version="1.0" encoding="utf-8"?>' + etree.tostring(root, encoding="utf-8")


OK = ("Ok", "I00001", "Successful.")
AUTH_FAILED = ("Error", "E00007", "User authentication failed due to invalid authentication values.")
NOT_FOUND = ("Error", "E00040", "The record cannot be found.")
NO_RECORDS = ("Ok", "I00004", "No records found.")


def error_response(code: str, text: str) -> etree._Element:
    """The ErrorResponse the API answers when it cannot even tell which method was called."""
    return envelope("ErrorResponse", None, ("Error", code, text))


def transaction_response(outcome: Outcome) -> etree._Element:
    """transactionResponse in XSD order; empty when the call never reached a transaction (E00007, E00114)."""
    if not outcome.response_code:
        return E.transactionResponse()
    element = E.transactionResponse(
        E.responseCode(outcome.response_code),
        E.authCode(outcome.auth_code),
        E.avsResultCode(outcome.avs),
        E.cvvResultCode(outcome.cvv),
        E.cavvResultCode(""),
        E.transId(outcome.trans_id),
        E.refTransID(outcome.ref_trans_id),
        E.transHash(""),
        E.testRequest("0"),
        E.accountNumber(outcome.account_number),
        E.accountType(outcome.account_type),
    )
    if outcome.response_code in {"1", "4"}:
        element.append(E.messages(E.message(E.code(outcome.reason_code), E.description(outcome.reason_text))))
    else:
        element.append(E.errors(E.error(E.errorCode(outcome.reason_code), E.errorText(outcome.reason_text))))
    element.append(E.transHashSha2(""))
    return element


def transaction_details(txn: Txn) -> etree._Element:
    """getTransactionDetailsResponse/transaction for one booked transaction, in XSD order."""
    utc, local = _times(txn)
    return E.transaction(
        E.transId(txn.trans_id),
        *_optional("refTransId", txn.ref_trans_id),
        E.submitTimeUTC(utc),
        E.submitTimeLocal(local),
        E.transactionType(txn.transaction_type),
        E.transactionStatus(txn.status),
        E.responseCode(txn.response_code),
        E.responseReasonCode(txn.reason_code),
        E.responseReasonDescription(txn.reason_text),
        *_optional("authCode", txn.auth_code),
        *_optional("AVSResponse", txn.avs),
        *_optional("cardCodeResponse", txn.cvv),
        *([E.order(E.invoiceNumber(txn.invoice_number))] if txn.invoice_number else []),
        E.authAmount(_money(txn.auth_amount)),
        E.settleAmount(_money(txn.settle_amount)),
        E.payment(
            E.creditCard(
                E.cardNumber(txn.account_number), E.expirationDate("XXXX"), E.cardType(txn.account_type)
            )
        ),
        E.product("Card Not Present"),
        E.marketType("eCommerce"),
    )


def transaction_summary(txn: Txn) -> etree._Element:
    """getUnsettledTransactionListResponse/transactions/transaction, in XSD order."""
    utc, local = _times(txn)
    return E.transaction(
        E.transId(txn.trans_id),
        E.submitTimeUTC(utc),
        E.submitTimeLocal(local),
        E.transactionStatus(txn.status),
        *_optional("invoiceNumber", txn.invoice_number),
        E.accountType(txn.account_type),
        E.accountNumber(txn.account_number),
        E.settleAmount(_money(txn.settle_amount)),
        E.marketType("eCommerce"),
        E.product("Card Not Present"),
    )


def txn_json(txn: Txn) -> dict:
    """A transaction for the control API: money as strings, times in ISO 8601."""
    data = asdict(txn)
    data["submitted_at"] = txn.submitted_at.isoformat()
    return {key: str(value) if isinstance(value, Decimal) else value for key, value in data.items()}


@dataclass(frozen=True)
class Fault:
    """What the next createTransaction calls suffer, and how many of them."""

    mode: str = "none"
    count: int = 0
    hang_seconds: float = DEFAULT_HANG_SECONDS


class Gateway:
    """The XML API over a ledger, independent of HTTP: a validated request element in, a response element out."""

    def __init__(self, ledger: Ledger, login: str, key: str) -> None:
        self.ledger = ledger
        self.login = login
        self.key = key

    def answer(self, request: etree._Element) -> etree._Element:
        """Authenticate the request, then run the method its root element names."""
        method = etree.QName(request).localname
        handler = {
            "createTransactionRequest": self.create_transaction,
            "getTransactionDetailsRequest": self.transaction_details,
            "getUnsettledTransactionListRequest": self.unsettled_transactions,
        }.get(method)
        if handler is None:
            text = f"The name of the requested API method is invalid. ({method} is not emulated here)"
            return error_response("E00004", text)
        ref_id = _text(request, "refId")
        response_name = method.removesuffix("Request") + "Response"
        name = _text(request, "merchantAuthentication/name")
        key = _text(request, "merchantAuthentication/transactionKey")
        if name != self.login or key != self.key:
            # Real E00007 answers carry an empty transactionResponse (README §3); reporting calls carry nothing.
            body = [E.transactionResponse()] if method == "createTransactionRequest" else []
            return envelope(response_name, ref_id, AUTH_FAILED, *body)
        return handler(request, ref_id)

    def create_transaction(self, request: etree._Element, ref_id: str | None) -> etree._Element:
        """createTransactionRequest: the five transaction types the shop uses."""
        outcome = self.transact(request.find(_q("transactionRequest")))
        result = (outcome.result_code, outcome.message_code, outcome.message_text)
        return envelope("createTransactionResponse", ref_id, result, transaction_response(outcome))

    def transact(self, request: etree._Element) -> Outcome:
        """Hand one transactionRequest to the ledger."""
        kind = _text(request, "transactionType")
        amount = _decimal(_text(request, "amount"))
        ref_trans_id = _text(request, "refTransId") or ""
        invoice_number = _text(request, "order/invoiceNumber") or ""
        window = self._duplicate_window(request)
        if kind == "priorAuthCaptureTransaction":
            return self.ledger.capture(ref_trans_id, amount)
        if kind == "voidTransaction":
            return self.ledger.void(ref_trans_id)
        if amount is None:
            return sandbox.outcome("5")
        if kind == "refundTransaction":
            return self.ledger.refund(ref_trans_id, amount, invoice_number, window)
        return self.ledger.authorize(
            capture=kind == "authCaptureTransaction",
            amount=amount,
            nonce=_text(request, "payment/opaqueData/dataValue"),
            card_number=_text(request, "payment/creditCard/cardNumber"),
            card_code=_text(request, "payment/creditCard/cardCode"),
            zip_code=_text(request, "billTo/zip"),
            invoice_number=invoice_number,
            duplicate_window=window,
            customer_id=_text(request, "customer/id") or "",
        )

    def transaction_details(self, request: etree._Element, ref_id: str | None) -> etree._Element:
        """getTransactionDetailsRequest."""
        txn = self.ledger.details(_text(request, "transId") or "")
        if txn is None:
            # Like the real API, the error omits the XSD-required <transaction>; the SDK falls back to objectify.
            return envelope("getTransactionDetailsResponse", ref_id, NOT_FOUND)
        return envelope("getTransactionDetailsResponse", ref_id, OK, transaction_details(txn))

    def unsettled_transactions(self, request: etree._Element, ref_id: str | None) -> etree._Element:
        """getUnsettledTransactionListRequest, with its optional status filter, sorting and paging."""
        txns = self.ledger.unsettled()
        if _text(request, "status") == "pendingApproval":
            txns = [txn for txn in txns if txn.status == sandbox.HELD]
        if _text(request, "sorting/orderDescending") in {"false", "0"}:
            txns.reverse()
        total = len(txns)
        limit = _text(request, "paging/limit")
        if limit is not None:
            # Paging's offset is a 1-based page number, not a row count.
            size, page = int(limit), int(_text(request, "paging/offset") or 1)
            txns = txns[(page - 1) * size : page * size]
        name = "getUnsettledTransactionListResponse"
        if not txns:
            return envelope(name, ref_id, NO_RECORDS, E.totalNumInResultSet("0"))
        summaries = E.transactions(*(transaction_summary(txn) for txn in txns))
        return envelope(name, ref_id, OK, summaries, E.totalNumInResultSet(str(total)))

    @staticmethod
    def _duplicate_window(request: etree._Element) -> int | None:
        for setting in request.iterfind(_q("transactionSettings/setting")):
            if _text(setting, "settingName") == "duplicateWindow":
                try:
                    return int(_text(setting, "settingValue") or "")
                except ValueError:
                    return None
        return None


class LoopbackServer(ThreadingHTTPServer):
    """The HTTP side: one daemon thread per connection, a deep accept queue, faults and latency."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for hanging or idle keep-alive connections
    request_queue_size = 1024  # the benchmark opens hundreds of connections at once
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], *, schema: etree.XMLSchema, latency: float, login: str, key: str
    ):
        self.schema = schema
        self.latency = latency
        self.gateway = Gateway(Ledger(), login, key)
        self.stopping = threading.Event()
        # Guards the fault and the shared XMLSchema, whose error log belongs to the object, not the call.
        self._lock = threading.Lock()
        self._fault = Fault()
        # createTransaction calls being answered right now, and the most at once since the last reset: how a
        # test sees that the shop keeps many payments in flight.
        self.in_flight = 0
        self.peak_in_flight = 0
        super().__init__(address, _Handler)

    def calls_started(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def calls_ended(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup of the address, which can stall with no network.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def parse(self, body: bytes) -> tuple[etree._Element | None, etree._Element | None]:
        """(request, None) for an XSD-valid body with a known transactionType, else (None, ErrorResponse)."""
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as error:
            return None, error_response("E00003", str(error))
        with self._lock:
            problem = None if self.schema.validate(root) else self.schema.error_log[0].message
        if problem is not None:
            return None, error_response("E00003", problem)
        kind = _text(root, "transactionRequest/transactionType")
        if kind is None or kind in SUPPORTED_TYPES:
            return root, None
        if kind in TRANSACTION_TYPES:
            return None, error_response(
                "E00003", f"transactionType '{kind}' is not emulated by the loopback server."
            )
        return None, error_response(
            "E00003",
            f"The '{NS}:transactionType' element is invalid - The value '{kind}' is invalid according to its "
            "datatype 'String' - The Enumeration constraint failed.",
        )

    def set_fault(self, mode: str, count: int = 1, hang_seconds: float = DEFAULT_HANG_SECONDS) -> Fault:
        """Make the next `count` createTransaction calls fail the way `mode` says."""
        if mode not in FAULT_MODES:
            raise ValueError(f"fault mode must be one of {', '.join(FAULT_MODES)}")
        if count < 0 or not 0 <= hang_seconds <= MAX_HANG_SECONDS:
            raise ValueError(f"count must be >= 0 and hang_seconds within 0..{MAX_HANG_SECONDS:g}")
        fault = Fault(mode, 0 if mode == "none" else count, hang_seconds)
        with self._lock:
            self._fault = fault
        return fault

    def take_fault(self) -> Fault:
        """The fault this createTransaction call suffers (mode "none" when there is none left)."""
        with self._lock:
            fault = self._fault
            if fault.count <= 0:
                return Fault()
            self._fault = Fault(fault.mode, fault.count - 1, fault.hang_seconds)
            return fault

    def set_latency(self, seconds: float) -> None:
        """Delay every later createTransaction answer by this many seconds."""
        if not 0 <= seconds <= MAX_LATENCY_SECONDS:
            raise ValueError(f"latency must be within 0..{MAX_LATENCY_SECONDS:g} seconds")
        self.latency = seconds

    def reset(self) -> None:
        """A fresh ledger and no pending fault; latency and credentials stay."""
        with self._lock:
            self._fault = Fault()
            self.gateway.ledger = Ledger()
            self.peak_in_flight = self.in_flight


class _Handler(BaseHTTPRequestHandler):
    """Routes the API endpoint and the control API."""

    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    server_version = "anet-loopback/1.0"
    timeout = 60  # an idle keep-alive connection gives its thread back
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add ~40 ms to every keep-alive call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            self._send(411 if length is None else 413, b"", "text/plain")
            self.close_connection = True
            return
        body = self.rfile.read(int(length))
        path = urlsplit(self.path).path
        if path == API_PATH:
            self._api(body)
        elif path.startswith("/_control/"):
            self._control(path, body)
        else:
            self._send_json(404, {"error": f"no such endpoint: POST {path}"})

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_control/health":
            self._send_json(200, {"ok": True})
        elif path == "/_control/stats":
            server = self.server
            self._send_json(200, {"in_flight": server.in_flight, "peak_in_flight": server.peak_in_flight})
        elif path == "/_control/transactions":
            self._send_json(200, [txn_json(txn) for txn in self.server.gateway.ledger.transactions()])
        else:
            self._send_json(404, {"error": f"no such endpoint: GET {path}"})

    def _api(self, body: bytes) -> None:
        server = self.server
        request, rejection = server.parse(body)
        if request is None:
            self._send_xml(rejection)
            return
        if etree.QName(request).localname != "createTransactionRequest":
            self._send_xml(server.gateway.answer(request))
            return
        server.calls_started()
        try:
            self._transaction(request)
        finally:
            server.calls_ended()

    def _transaction(self, request: etree._Element) -> None:
        server = self.server
        server.stopping.wait(server.latency)
        fault = server.take_fault()
        if fault.mode == "hang":
            server.stopping.wait(fault.hang_seconds)
            self.close_connection = True  # and no answer at all
            return
        if fault.mode == "http500":
            self._send(500, b"Internal Server Error (injected fault)\n", "text/plain")
            return
        response = server.gateway.answer(request)
        if fault.mode == "slow_after_charge":
            server.stopping.wait(fault.hang_seconds)
        if fault.mode == "lost_after_charge":
            self._send(500, b"Internal Server Error (injected after booking)\n", "text/plain")
            return
        self._send_xml(response)

    def _control(self, path: str, body: bytes) -> None:
        server = self.server
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_control/fault":
                fault = server.set_fault(
                    str(data.get("mode", "")),
                    int(data.get("count", 1)),
                    float(data.get("hang_seconds", DEFAULT_HANG_SECONDS)),
                )
                self._send_json(200, asdict(fault))
            elif path == "/_control/latency":
                server.set_latency(float(data.get("seconds", 0)))
                self._send_json(200, {"seconds": server.latency})
            elif path == "/_control/settle":
                self._send_json(200, {"settled": server.gateway.ledger.settle()})
            elif path == "/_control/reset":
                server.reset()
                self._send_json(200, {"ok": True})
            else:
                self._send_json(404, {"error": f"no such endpoint: POST {path}"})
        except (ValueError, TypeError) as error:
            self._send_json(400, {"error": str(error)})

    def _send_xml(self, root: etree._Element) -> None:
        self._send(200, serialize(root), "text/xml; charset=utf-8")

    def _send_json(self, status: int, data: object) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class Loopback:
    """A running loopback server: its addresses, its ledger and its switches."""

    def __init__(self, server: LoopbackServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.endpoint = self.url + API_PATH

    @property
    def ledger(self) -> Ledger:
        """The current books (a reset replaces them)."""
        return self._server.gateway.ledger

    def set_fault(self, mode: str, count: int = 1, hang_seconds: float = DEFAULT_HANG_SECONDS) -> None:
        """Make the next `count` createTransaction calls fail: "http500", "hang", "lost_after_charge",
        "slow_after_charge" or "none"."""
        self._server.set_fault(mode, count, hang_seconds)

    def set_latency(self, seconds: float) -> None:
        """Delay every createTransaction answer by this many seconds."""
        self._server.set_latency(seconds)

    def reset(self) -> None:
        """A fresh ledger and no pending fault."""
        self._server.reset()

    def stop(self) -> None:
        """Stop serving, wake hanging handlers and close the socket."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Loopback":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start(
    port: int = 0,
    latency: float = 0.0,
    login: str = DEFAULT_LOGIN,
    key: str = DEFAULT_KEY,
    *,
    host: str = DEFAULT_HOST,
    xsd: Path | None = None,
) -> Loopback:
    """Serve the loopback API from a background thread; port 0 picks a free port."""
    if not 0 <= latency <= MAX_LATENCY_SECONDS:
        raise ValueError(f"latency must be within 0..{MAX_LATENCY_SECONDS:g} seconds")
    schema = load_schema(xsd or xsd_path())
    server = LoopbackServer((host, port), schema=schema, latency=latency, login=login, key=key)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.name = f"anet-loopback:{server.server_address[1]}"
    thread.start()
    return Loopback(server, thread)


def main(argv: list[str] | None = None) -> int:
    """Command line: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.anet_loopback", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each createTransaction answer"
    )
    parser.add_argument("--login", default=DEFAULT_LOGIN, help="API login id the server accepts")
    parser.add_argument(
        "--key", default=DEFAULT_KEY, help="transaction key the server accepts (at most 16 chars)"
    )
    parser.add_argument(
        "--xsd",
        type=Path,
        default=None,
        help="AnetApiSchema.xsd (default: $ANET_XSD_PATH or docs/authorizenet/)",
    )
    args = parser.parse_args(argv)
    try:
        loopback = start(args.port, args.latency, args.login, args.key, host=args.host, xsd=args.xsd)
    except (OSError, ValueError) as error:
        print(f"anet_loopback: {error}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"listening on {loopback.url}", flush=True)
    stopped.wait()
    loopback.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
