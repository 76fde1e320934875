"""The payment gateway facade, and the only module that imports the `authorizenet` SDK.

Two gateways share one interface and return plain dataclasses: `AuthorizeNetGateway` drives the official SDK
over HTTP; `TestGateway` (the embedded default) books payments in an in-process sandbox ledger that follows
Authorize.Net's documented sandbox behaviour. The SDK's traps (docs/authorizenet/README.md) are handled here:
- the endpoint is a process-global that every controller constructor resets, so our transport posts to the
  endpoint of the gateway making the call (kept per thread), whatever the global says;
- the SDK has no timeout and swallows transport errors, so our transport adds timeouts and a failed call comes
  back as `outcome="unknown"`, never as a decline;
- objectify turns "000000" into 0, so only `.text` strings are read;
- its DEBUG/ERROR logging can print the transaction key, so the SDK's logger is silenced.
"""

import functools
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import authorizenet.apicontrollersbase
import pyxb
import requests
from authorizenet import apicontractsv1
from authorizenet.apicontrollers import (
    createTransactionController,
    getTransactionDetailsController,
    getUnsettledTransactionListController,
)
from flask import Flask, current_app
from requests.adapters import HTTPAdapter

from storefront.payments.sandbox import Ledger, Outcome

log = logging.getLogger(__name__)

NS = "{AnetApi/xml/v1/schema/AnetApiSchema.xsd}"
CENT = Decimal("0.01")
OUTCOMES = {"1": "approved", "2": "declined", "3": "error", "4": "held"}
# transactionStatus values meaning money is (or will be) taken.
CHARGED_STATUSES = {
    "authorizedPendingCapture",
    "capturedPendingSettlement",
    "settledSuccessfully",
    "FDSPendingReview",
    "FDSAuthorizedPendingReview",
}
SPENT_NONCE = "E00114"


class GatewayUnavailable(RuntimeError):
    """The gateway did not answer a query; try again later (nothing is known either way)."""


@dataclass(frozen=True)
class Result:
    """What the gateway said about one transaction request."""

    outcome: str  # approved | declined | error | held | unknown
    trans_id: str = ""
    auth_code: str = ""
    response_code: str = ""
    reason_code: str = ""
    message: str = ""
    avs: str = ""
    cvv: str = ""
    account: str = ""
    # Reason 11: the gateway has seen this exact request; trans_id (if any) is the original's.
    duplicate: bool = False
    # E00114: the nonce was already used or is not valid; nothing was charged by this call.
    nonce_spent: bool = False


@dataclass(frozen=True)
class Transaction:
    """A transaction as the gateway's books show it (for reconciliation)."""

    trans_id: str
    status: str
    invoice_number: str
    amount: Decimal
    submitted_at: str = ""
    auth_code: str = ""
    account: str = ""

    @property
    def charged(self) -> bool:
        return self.status in CHARGED_STATUSES

    @property
    def held(self) -> bool:
        return self.status.startswith("FDS")


def _money(amount: Decimal) -> Decimal:
    return Decimal(amount).quantize(CENT)


def _result(
    *,
    response_code,
    reason_code,
    reason_text,
    message_code,
    message_text,
    trans_id="",
    auth_code="",
    avs="",
    cvv="",
    account="",
) -> Result:
    """One mapping from the API's codes to our outcome, for the SDK's answers and the test ledger's alike."""
    trans_id = "" if trans_id in ("", "0") else trans_id
    if not response_code:
        # No transactionResponse: the request failed at the API level (bad nonce, credentials, schema).
        return Result(
            "error", reason_code=message_code, message=message_text, nonce_spent=message_code == SPENT_NONCE
        )
    return Result(
        OUTCOMES.get(response_code, "unknown"),
        trans_id=trans_id,
        auth_code=auth_code,
        response_code=response_code,
        reason_code=reason_code,
        message=reason_text or message_text,
        avs=avs,
        cvv=cvv,
        account=account,
        duplicate=response_code == "3" and reason_code == "11",
    )


# --- the SDK's transport ----------------------------------------------------------------------------

_call = threading.local()


class _Transport:
    """Replaces the `requests` module the SDK posts with: our endpoint, timeouts, pooled connections."""

    def __init__(self):
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=256)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def post(self, url, data=None, headers=None, proxies=None, **_ignored):
        # The SDK's `url` is a process-global any thread may have just reset; the caller's endpoint is not.
        endpoint = getattr(_call, "endpoint", None) or url
        if endpoint != url:
            log.debug("authorizenet endpoint global was %s; posting to %s", url, endpoint)
        try:
            # Lower-case http_proxy (which the SDK passes explicitly) is ignored; requests honours NO_PROXY.
            return self.session.post(
                endpoint, data=data, headers=headers, timeout=getattr(_call, "timeout", 30)
            )
        except requests.RequestException as error:
            log.warning("payment gateway call failed: %s", error.__class__.__name__)
            failed = requests.Response()
            failed.status_code = 599  # falsy to the SDK: it reports "no response", which we read as unknown
            return failed


@functools.cache
def _install_transport() -> _Transport:
    """Point the SDK at our transport and quiet its logs, once per process, when a gateway is set up
    (importing this module changes nothing in the SDK)."""
    transport = _Transport()
    authorizenet.apicontrollersbase.requests = SimpleNamespace(post=transport.post)
    # At DEBUG (and on transport errors at ERROR) the SDK logs whole requests, transaction key included.
    sdk_log = logging.getLogger("authorizenet.sdk")
    sdk_log.setLevel(logging.CRITICAL)
    sdk_log.propagate = False
    # PyXB warns "Multiple accepting paths" three times for every answer it parses (an ambiguity in the
    # published schema, not in the message): noise in the log and CPU spent formatting it on every payment.
    logging.getLogger("pyxb.binding.content").setLevel(logging.ERROR)
    # The SDK parses every answer into PyXB objects, checking each element against the schema's content model
    # as it goes (a quarter of a payment's CPU here: 16.1 ms against 11.9 ms per charge), before it turns them
    # into the lxml object we read. Our requests are still checked when built; the answers are the gateway's.
    pyxb.RequireValidWhenParsing(False)
    return transport


def _text(node, path: str) -> str:
    if node is None:
        return ""
    found = node.find("/".join(NS + step for step in path.split("/")))
    return "" if found is None or found.text is None else str(found.text).strip()


class AuthorizeNetGateway:
    """Authorize.Net through the official SDK."""

    def __init__(
        self,
        login: str,
        key: str,
        endpoint: str,
        timeout: tuple[float, float] = (5, 30),
        duplicate_window: int = 600,
    ):
        self.login = login
        self.key = key
        self.endpoint = endpoint
        self.timeout = timeout
        self.duplicate_window = duplicate_window
        _install_transport()

    def _auth(self):
        auth = apicontractsv1.merchantAuthenticationType()
        auth.name = self.login
        auth.transactionKey = self.key
        return auth

    def _execute(self, controller_class, request):
        """Build, point at our endpoint, send; None when no answer came back."""
        _call.endpoint, _call.timeout = self.endpoint, self.timeout
        try:
            controller = controller_class(request)
            controller.setenvironment(self.endpoint)  # after construction, which resets it
            controller.execute()
            return controller.getresponse()
        except Exception:
            log.exception("payment gateway answer could not be read")
            return None
        finally:
            _call.endpoint = _call.timeout = None

    def _transaction(self, transaction_type: str, ref_id: str, **fields) -> Result:
        request = apicontractsv1.createTransactionRequest()
        request.merchantAuthentication = self._auth()
        request.refId = ref_id[:20]
        body = apicontractsv1.transactionRequestType()
        body.transactionType = transaction_type
        for name in ("amount", "payment", "refTransId", "order", "customer", "billTo", "transactionSettings"):
            if fields.get(name) is not None:
                setattr(body, name, fields[name])
        request.transactionRequest = body
        root = self._execute(createTransactionController, request)
        if root is None:
            return Result("unknown", message="No answer from the payment gateway.")
        return _result(
            response_code=_text(root, "transactionResponse/responseCode"),
            reason_code=_text(root, "transactionResponse/messages/message/code")
            or _text(root, "transactionResponse/errors/error/errorCode"),
            reason_text=_text(root, "transactionResponse/messages/message/description")
            or _text(root, "transactionResponse/errors/error/errorText"),
            message_code=_text(root, "messages/message/code"),
            message_text=_text(root, "messages/message/text"),
            trans_id=_text(root, "transactionResponse/transId"),
            auth_code=_text(root, "transactionResponse/authCode"),
            avs=_text(root, "transactionResponse/avsResultCode"),
            cvv=_text(root, "transactionResponse/cvvResultCode"),
            account=" ".join(
                filter(
                    None,
                    [
                        _text(root, "transactionResponse/accountType"),
                        _text(root, "transactionResponse/accountNumber"),
                    ],
                )
            ),
        )

    def _settings(self, window: int):
        setting = apicontractsv1.settingType()
        setting.settingName = "duplicateWindow"
        setting.settingValue = str(window)
        settings = apicontractsv1.ArrayOfSetting()
        settings.setting.append(setting)
        return settings

    def charge(
        self,
        *,
        amount: Decimal,
        nonce_descriptor: str,
        nonce_value: str,
        invoice_number: str,
        ref_id: str,
        capture: bool,
        email: str = "",
        customer_id: str = "",
        name: str = "",
        zip_code: str = "",
        country: str = "",
    ) -> Result:
        """Authorize (and capture) an Accept.js nonce; the duplicate window makes a resend safe."""
        opaque = apicontractsv1.opaqueDataType()
        opaque.dataDescriptor = nonce_descriptor
        opaque.dataValue = nonce_value
        payment = apicontractsv1.paymentType()
        payment.opaqueData = opaque
        order = apicontractsv1.orderType()
        order.invoiceNumber = invoice_number[:20]
        order.description = "Storefront order"
        customer = apicontractsv1.customerDataType()
        customer.type = "individual"
        if customer_id:
            customer.id = customer_id[:20]
        if email:
            customer.email = email[:255]
        bill_to = apicontractsv1.customerAddressType()
        first, _, last = name.partition(" ")
        bill_to.firstName, bill_to.lastName = first[:50] or "Customer", last[:50] or "-"
        if zip_code:
            bill_to.zip = zip_code[:20]
        if country:
            bill_to.country = country[:60]
        return self._transaction(
            "authCaptureTransaction" if capture else "authOnlyTransaction",
            ref_id,
            amount=_money(amount),
            payment=payment,
            order=order,
            customer=customer,
            billTo=bill_to,
            transactionSettings=self._settings(self.duplicate_window),
        )

    def capture(self, trans_id: str, amount: Decimal, ref_id: str) -> Result:
        """Capture an earlier authorization (a second capture is answered 311: already captured)."""
        return self._transaction(
            "priorAuthCaptureTransaction", ref_id, amount=_money(amount), refTransId=trans_id
        )

    def void(self, trans_id: str, ref_id: str) -> Result:
        """Void an unsettled transaction (a second void is answered 310: already voided)."""
        return self._transaction("voidTransaction", ref_id, refTransId=trans_id)

    def refund(self, trans_id: str, amount: Decimal, last4: str, invoice_number: str, ref_id: str) -> Result:
        """Refund a settled transaction; each refund has its own invoice number so it can be found again."""
        card = apicontractsv1.creditCardType()
        card.cardNumber = last4[-4:]
        card.expirationDate = "XXXX"
        payment = apicontractsv1.paymentType()
        payment.creditCard = card
        order = apicontractsv1.orderType()
        order.invoiceNumber = invoice_number[:20]
        return self._transaction(
            "refundTransaction",
            ref_id,
            amount=_money(amount),
            payment=payment,
            refTransId=trans_id,
            order=order,
            transactionSettings=self._settings(28800),
        )

    def transaction(self, trans_id: str) -> Transaction | None:
        """The gateway's record of one transaction; None if it has none; GatewayUnavailable if no answer."""
        request = apicontractsv1.getTransactionDetailsRequest()
        request.merchantAuthentication = self._auth()
        request.transId = trans_id
        root = self._execute(getTransactionDetailsController, request)
        if root is None:
            raise GatewayUnavailable("no answer to getTransactionDetails")
        if _text(root, "messages/resultCode") != "Ok":
            if _text(root, "messages/message/code") == "E00040":
                return None
            raise GatewayUnavailable(_text(root, "messages/message/text"))
        return Transaction(
            trans_id=_text(root, "transaction/transId"),
            status=_text(root, "transaction/transactionStatus"),
            invoice_number=_text(root, "transaction/order/invoiceNumber"),
            amount=Decimal(_text(root, "transaction/authAmount") or "0"),
            submitted_at=_text(root, "transaction/submitTimeUTC"),
            auth_code=_text(root, "transaction/authCode"),
        )

    def find_by_invoice(self, invoice_number: str) -> list[Transaction]:
        """Unsettled transactions with this invoice number; GatewayUnavailable if the gateway did not answer."""
        request = apicontractsv1.getUnsettledTransactionListRequest()
        request.merchantAuthentication = self._auth()
        root = self._execute(getUnsettledTransactionListController, request)
        if root is None:
            raise GatewayUnavailable("no answer to getUnsettledTransactionList")
        if _text(root, "messages/resultCode") != "Ok":
            raise GatewayUnavailable(_text(root, "messages/message/text"))
        found = []
        listing = root.find(NS + "transactions")
        for item in listing.findall(NS + "transaction") if listing is not None else []:
            if _text(item, "invoiceNumber") == invoice_number:
                found.append(
                    Transaction(
                        trans_id=_text(item, "transId"),
                        status=_text(item, "transactionStatus"),
                        invoice_number=invoice_number,
                        amount=Decimal(_text(item, "settleAmount") or "0"),
                        submitted_at=_text(item, "submitTimeUTC"),
                        account=f"{_text(item, 'accountType')} {_text(item, 'accountNumber')}".strip(),
                    )
                )
        return found


class TestGateway:
    """The built-in gateway of the embedded default: Authorize.Net's sandbox rules, in this process."""

    __test__ = False  # not a pytest class

    def __init__(self, ledger: Ledger | None = None, duplicate_window: int = 600):
        self.ledger = ledger or Ledger()
        self.duplicate_window = duplicate_window

    @staticmethod
    def _from(outcome: Outcome) -> Result:
        return _result(
            response_code=outcome.response_code,
            reason_code=outcome.reason_code,
            reason_text=outcome.reason_text,
            message_code=outcome.message_code,
            message_text=outcome.message_text,
            trans_id=outcome.trans_id,
            auth_code=outcome.auth_code,
            avs=outcome.avs,
            cvv=outcome.cvv,
            account=" ".join(filter(None, [outcome.account_type, outcome.account_number])),
        )

    def charge(
        self,
        *,
        amount: Decimal,
        nonce_descriptor: str,
        nonce_value: str,
        invoice_number: str,
        ref_id: str,
        capture: bool,
        email: str = "",
        customer_id: str = "",
        name: str = "",
        zip_code: str = "",
        country: str = "",
    ) -> Result:
        return self._from(
            self.ledger.authorize(
                capture=capture,
                amount=_money(amount),
                nonce=nonce_value,
                zip_code=zip_code or None,
                invoice_number=invoice_number,
                duplicate_window=self.duplicate_window,
                customer_id=customer_id,
            )
        )

    def capture(self, trans_id: str, amount: Decimal, ref_id: str) -> Result:
        return self._from(self.ledger.capture(trans_id, _money(amount)))

    def void(self, trans_id: str, ref_id: str) -> Result:
        return self._from(self.ledger.void(trans_id))

    def refund(self, trans_id: str, amount: Decimal, last4: str, invoice_number: str, ref_id: str) -> Result:
        return self._from(self.ledger.refund(trans_id, _money(amount), invoice_number, 28800))

    def transaction(self, trans_id: str) -> Transaction | None:
        txn = self.ledger.details(trans_id)
        return None if txn is None else self._transaction(txn)

    def find_by_invoice(self, invoice_number: str) -> list[Transaction]:
        return [self._transaction(t) for t in self.ledger.unsettled() if t.invoice_number == invoice_number]

    @staticmethod
    def _transaction(txn) -> Transaction:
        return Transaction(
            trans_id=txn.trans_id,
            status=txn.status,
            invoice_number=txn.invoice_number,
            amount=txn.auth_amount,
            submitted_at=txn.submitted_at.isoformat() if isinstance(txn.submitted_at, datetime) else "",
            auth_code=txn.auth_code,
            account=f"{txn.account_type} {txn.account_number}".strip(),
        )


def init_app(app: Flask) -> None:
    """Choose the gateway from config; without Authorize.Net credentials it is the test gateway, loudly."""
    config = app.config
    login, key = config["AUTHNET_API_LOGIN_ID"], config["AUTHNET_TRANSACTION_KEY"]
    if config["PAYMENT_GATEWAY"] == "authorizenet" and login and key:
        app.extensions["payment_gateway"] = AuthorizeNetGateway(
            login,
            key,
            config["AUTHNET_ENDPOINT"],
            timeout=(config["AUTHNET_CONNECT_TIMEOUT"], config["AUTHNET_READ_TIMEOUT"]),
        )
        return
    if config["PAYMENT_GATEWAY"] == "authorizenet":
        log.warning(
            "PAYMENT_GATEWAY=authorizenet but AUTHNET_API_LOGIN_ID or AUTHNET_TRANSACTION_KEY is not set: "
            "using the built-in TEST payment gateway. No real card will be charged."
        )
    elif not config["TESTING"]:
        log.warning(
            "Using the built-in TEST payment gateway (PAYMENT_GATEWAY=test): no real card will be charged."
        )
    app.extensions["payment_gateway"] = TestGateway()


def get_gateway() -> AuthorizeNetGateway | TestGateway:
    return current_app.extensions["payment_gateway"]


def silent_since() -> datetime:
    """A gateway call still `sending` from before this moment has lost its worker: no answer can still come
    (twice the read timeout, and some slack)."""
    seconds = 2 * current_app.config["AUTHNET_READ_TIMEOUT"] + 5
    return datetime.now(UTC) - timedelta(seconds=seconds)


def captures_at_checkout() -> bool:
    """PAYMENT_CAPTURE: charges are captured when the order is paid (auth_capture), or only authorized and
    captured by staff at shipment (auth_only)."""
    return current_app.config["PAYMENT_CAPTURE"] == "auth_capture"
