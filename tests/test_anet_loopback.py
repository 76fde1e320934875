"""The loopback Authorize.Net and the sandbox ledger behind it, driven by the real SDK over real HTTP.

Every call goes construct controller → setenvironment(loopback) → execute (the SDK resets its process-global
endpoint in each constructor), and the SDK's default endpoints point at a closed local port, so a slip can never
reach apitest.authorize.net.
"""

import base64
import itertools
import json
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from authorizenet import apicontractsv1
from authorizenet.apicontrollers import (
    createTransactionController,
    getTransactionDetailsController,
    getUnsettledTransactionListController,
)
from authorizenet.constants import constants as sdk_constants
from lxml import etree

from storefront.payments import sandbox
from storefront.payments.sandbox import Ledger
from tools import anet_loopback
from tools.anet_loopback import BOM, DEFAULT_KEY, DEFAULT_LOGIN, NS

ROOT = Path(__file__).resolve().parent.parent
ACCEPT_JS = ROOT / "static" / "js" / "accept-test.js"
# The discard port: nothing listens there, so a call the tests forgot to redirect fails without leaving the host.
NOWHERE = "http://127.0.0.1:9/xml/v1/request.api"
FUTURE_EXP = "2035-12"
invoice_numbers = (f"INV-{n}" for n in itertools.count(1))


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """The official XSD; a missing file fails the tests, it never skips them."""
    path = anet_loopback.xsd_path()
    if not path.is_file():
        pytest.fail(f"AnetApiSchema.xsd not found at {path} (set ANET_XSD_PATH)", pytrace=False)
    return anet_loopback.load_schema(path)


@pytest.fixture(autouse=True)
def offline_sdk(monkeypatch):
    """No proxy may hijack loopback calls (the SDK passes lowercase http_proxy explicitly) and no call may leave."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sdk_constants, "SANDBOX", NOWHERE)
    monkeypatch.setattr(sdk_constants, "PRODUCTION", NOWHERE)


@pytest.fixture
def loopback(schema):
    with anet_loopback.start() as server:
        yield server


@pytest.fixture
def http():
    """A plain HTTP client that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


# -- building requests the way gateway.py will --------------------------------------------------------


def merchant(login: str = DEFAULT_LOGIN, key: str = DEFAULT_KEY) -> apicontractsv1.merchantAuthenticationType:
    auth = apicontractsv1.merchantAuthenticationType()
    auth.name = login
    auth.transactionKey = key
    return auth


def payment(nonce: str | None = None, card: str | None = None, card_code: str | None = None):
    result = apicontractsv1.paymentType()
    if nonce is not None:
        opaque = apicontractsv1.opaqueDataType()
        opaque.dataDescriptor = "COMMON.ACCEPT.INAPP.PAYMENT"
        opaque.dataValue = nonce
        result.opaqueData = opaque
    else:
        credit_card = apicontractsv1.creditCardType()
        credit_card.cardNumber = card
        credit_card.expirationDate = FUTURE_EXP if len(card) > 4 else "XXXX"
        if card_code:
            credit_card.cardCode = card_code
        result.creditCard = credit_card
    return result


def transaction(
    kind: str = "authCaptureTransaction",
    amount: str | None = "19.99",
    *,
    nonce: str | None = None,
    card: str | None = None,
    card_code: str | None = None,
    ref: str | None = None,
    invoice: str | None = None,
    zip_code: str | None = None,
    customer_id: str | None = None,
    window: int | None = None,
    ref_id: str | None = None,
    auth: apicontractsv1.merchantAuthenticationType | None = None,
) -> apicontractsv1.createTransactionRequest:
    """A createTransactionRequest; charges get a fresh invoice number unless one is given."""
    body = apicontractsv1.transactionRequestType()
    body.transactionType = kind
    if amount is not None:
        body.amount = Decimal(amount)
    if nonce is not None or card is not None:
        body.payment = payment(nonce, card, card_code)
    if ref is not None:
        body.refTransId = ref
    if kind in {"authCaptureTransaction", "authOnlyTransaction"} and invoice is None:
        invoice = next(invoice_numbers)
    if invoice is not None:
        order = apicontractsv1.orderType()
        order.invoiceNumber = invoice
        order.description = "Storefront order"
        body.order = order
    if customer_id is not None:
        customer = apicontractsv1.customerDataType()
        customer.type = "individual"
        customer.id = customer_id
        body.customer = customer
    if zip_code is not None:
        bill_to = apicontractsv1.customerAddressType()
        bill_to.firstName = "Ellen"
        bill_to.lastName = "Johnson"
        bill_to.zip = zip_code
        bill_to.country = "US"
        body.billTo = bill_to
    if window is not None:
        setting = apicontractsv1.settingType()
        setting.settingName = "duplicateWindow"
        setting.settingValue = str(window)
        body.transactionSettings = apicontractsv1.ArrayOfSetting()
        body.transactionSettings.setting.append(setting)
    request = apicontractsv1.createTransactionRequest()
    request.merchantAuthentication = auth or merchant()
    if ref_id is not None:
        request.refId = ref_id
    request.transactionRequest = body
    return request


def details_request(trans_id: str, auth=None) -> apicontractsv1.getTransactionDetailsRequest:
    request = apicontractsv1.getTransactionDetailsRequest()
    request.merchantAuthentication = auth or merchant()
    request.transId = trans_id
    return request


def unsettled_request() -> apicontractsv1.getUnsettledTransactionListRequest:
    request = apicontractsv1.getUnsettledTransactionListRequest()
    request.merchantAuthentication = merchant()
    return request


# Keyed by binding type: pyxb request elements build instances of anonymous classes.
CONTROLLERS = {
    apicontractsv1.createTransactionRequest.typeDefinition(): createTransactionController,
    apicontractsv1.getTransactionDetailsRequest.typeDefinition(): getTransactionDetailsController,
    apicontractsv1.getUnsettledTransactionListRequest.typeDefinition(): getUnsettledTransactionListController,
}


def call(server, request):
    """Run one SDK call against the loopback; None means the SDK saw no answer."""
    controller = CONTROLLERS[type(request)](request)
    controller.setenvironment(server.endpoint)  # after construction: the constructor resets the endpoint
    controller.execute()
    return controller.getresponse()


def raw_call(http, server, request, **kwargs) -> requests.Response:
    """POST the exact bytes the SDK would send, for tests that need the raw answer."""
    body = CONTROLLERS[type(request)](request).buildrequest()
    return http.post(server.endpoint, data=body, headers={"Content-Type": "application/xml"}, **kwargs)


# -- reading answers ----------------------------------------------------------------------------------


def value(element, path: str) -> str | None:
    """The text at a plain path ("transactionResponse/transId"), read as a string (objectify turns ids into ints)."""
    found = element.find("/".join(f"{{{NS}}}{step}" for step in path.split("/")))
    return None if found is None else (found.text or "")


def result(response) -> tuple[str | None, str | None]:
    return value(response, "messages/resultCode"), value(response, "messages/message/code")


def reason(response) -> str | None:
    return value(response, "transactionResponse/messages/message/code") or value(
        response, "transactionResponse/errors/error/errorCode"
    )


def response_code(response) -> str | None:
    return value(response, "transactionResponse/responseCode")


def trans_id(response) -> str:
    return value(response, "transactionResponse/transId")


def parse(body: bytes) -> etree._Element:
    assert body.startswith(BOM), body[:20]
    return etree.fromstring(body[len(BOM) :])


# -- charges through the SDK --------------------------------------------------------------------------


def test_test_approve_nonce_is_approved_with_the_documented_details(loopback):
    response = call(loopback, transaction(nonce="test-approve", ref_id="ORD-1-a1"))

    assert result(response) == ("Ok", "I00001")
    assert value(response, "refId") == "ORD-1-a1"
    assert (response_code(response), reason(response)) == ("1", "1")
    assert value(response, "transactionResponse/messages/message/description") == sandbox.REASONS["1"][1]
    assert len(value(response, "transactionResponse/authCode")) == 6
    assert value(response, "transactionResponse/avsResultCode") == "Y"
    assert value(response, "transactionResponse/cvvResultCode") == "M"
    assert value(response, "transactionResponse/accountNumber") == "XXXX1111"
    assert value(response, "transactionResponse/accountType") == "Visa"
    assert trans_id(response) == str(sandbox.FIRST_TRANS_ID)
    [booked] = loopback.ledger.transactions()
    assert (booked.trans_id, booked.status) == (trans_id(response), "capturedPendingSettlement")
    assert booked.settle_amount == Decimal("19.99")


def test_test_decline_nonce_is_declined_but_the_call_succeeds(loopback):
    response = call(loopback, transaction(nonce="test-decline"))

    assert result(response) == ("Ok", "I00001")  # resultCode Ok is not approval
    assert (response_code(response), reason(response)) == ("2", "2")
    assert value(response, "transactionResponse/errors/error/errorText") == sandbox.REASONS["2"][1]
    assert [txn.status for txn in loopback.ledger.transactions()] == ["declined"]


def test_test_error_nonce_is_an_error_with_trans_id_0_and_nothing_booked(loopback):
    response = call(loopback, transaction(nonce="test-error"))

    assert result(response) == ("Error", "E00027")
    assert (response_code(response), reason(response), trans_id(response)) == ("3", "57", "0")
    assert loopback.ledger.transactions() == []


def test_test_held_nonce_is_held_for_review(loopback):
    response = call(loopback, transaction(nonce="test-held"))

    assert result(response)[0] == "Ok"
    assert (response_code(response), reason(response)) == ("4", "252")
    assert loopback.ledger.details(trans_id(response)).status == "FDSPendingReview"


def test_zip_46282_declines_a_good_card(loopback):
    response = call(loopback, transaction(card="4111111111111111", card_code="999", zip_code="46282"))

    assert (response_code(response), reason(response)) == ("2", "2")


@pytest.mark.parametrize(
    ("zip_code", "avs"), [("46205", "N"), ("46207", "R"), ("46217", "Z"), ("10001", "Y")]
)
def test_billing_zip_sets_the_avs_result_and_still_approves(loopback, zip_code, avs):
    response = call(loopback, transaction(card="5424000000000015", zip_code=zip_code))

    assert response_code(response) == "1"
    assert value(response, "transactionResponse/avsResultCode") == avs
    assert value(response, "transactionResponse/accountType") == "MasterCard"


def test_card_code_901_gives_cvv_result_n(loopback):
    response = call(loopback, transaction(card="4007000000027", card_code="901"))

    assert response_code(response) == "1"
    assert value(response, "transactionResponse/cvvResultCode") == "N"


def test_local_nonce_is_single_use(loopback):
    nonce = sandbox.make_local_nonce("4111111111111111", FUTURE_EXP, "46201", "900")
    first = call(loopback, transaction(nonce=nonce))
    again = call(loopback, transaction(nonce=nonce))  # a new invoice number, so not a duplicate: a reuse

    assert (response_code(first), value(first, "transactionResponse/avsResultCode")) == ("1", "A")
    assert result(again) == ("Error", "E00114")
    assert value(again, "messages/message/text") == "Invalid OTS Token."
    assert response_code(again) is None  # an empty <transactionResponse/>
    assert len(loopback.ledger.transactions()) == 1


def test_resent_charge_within_an_explicit_duplicate_window_returns_the_original(loopback):
    nonce = sandbox.make_local_nonce("4111111111111111", FUTURE_EXP, cvv="902")
    charge = transaction(nonce=nonce, invoice="ORD-77", zip_code="46203", customer_id="cust-9", window=600)
    first = call(loopback, charge)
    resent = call(loopback, charge)

    assert response_code(first) == "1"
    assert result(resent) == ("Error", "E00027")
    assert (response_code(resent), reason(resent)) == ("3", "11")
    for field in ("transId", "authCode", "avsResultCode", "cvvResultCode"):
        assert value(resent, f"transactionResponse/{field}") == value(first, f"transactionResponse/{field}")
    assert len(loopback.ledger.transactions()) == 1


def test_duplicate_without_an_explicit_window_gets_no_details(loopback):
    charge = transaction(nonce="test-approve", invoice="ORD-78")
    call(loopback, charge)
    resent = call(loopback, charge)

    assert (reason(resent), trans_id(resent)) == ("11", "0")
    assert value(resent, "transactionResponse/authCode") == ""
    assert len(loopback.ledger.transactions()) == 1


# -- follow-ups ---------------------------------------------------------------------------------------


def test_auth_only_then_capture_then_a_second_capture_is_311(loopback):
    authorized = call(loopback, transaction("authOnlyTransaction", nonce="test-approve"))
    auth_id = trans_id(authorized)
    assert loopback.ledger.details(auth_id).status == "authorizedPendingCapture"

    captured = call(loopback, transaction("priorAuthCaptureTransaction", "10.00", ref=auth_id))
    again = call(loopback, transaction("priorAuthCaptureTransaction", "10.00", ref=auth_id))

    assert (response_code(captured), reason(captured), trans_id(captured)) == ("1", "1", auth_id)
    assert (response_code(again), reason(again)) == ("1", "311")
    txn = loopback.ledger.details(auth_id)
    assert (txn.status, txn.settle_amount) == ("capturedPendingSettlement", Decimal("10.00"))


def test_capture_of_more_than_was_authorized_or_of_nothing_is_an_error(loopback):
    auth_id = trans_id(call(loopback, transaction("authOnlyTransaction", "5.00", nonce="test-approve")))

    too_much = call(loopback, transaction("priorAuthCaptureTransaction", "5.01", ref=auth_id))
    unknown = call(loopback, transaction("priorAuthCaptureTransaction", None, ref="123"))

    assert (response_code(too_much), reason(too_much)) == ("3", "47")
    assert (result(unknown), reason(unknown)) == (("Error", "E00027"), "16")
    assert loopback.ledger.details(auth_id).status == "authorizedPendingCapture"


def test_void_then_a_second_void_is_310(loopback):
    charge_id = trans_id(call(loopback, transaction(nonce="test-approve")))

    voided = call(loopback, transaction("voidTransaction", None, ref=charge_id))
    again = call(loopback, transaction("voidTransaction", None, ref=charge_id))

    assert (response_code(voided), reason(voided)) == ("1", "1")
    assert (result(again)[0], response_code(again), reason(again)) == ("Ok", "1", "310")
    assert loopback.ledger.details(charge_id).status == "voided"


def test_refund_needs_settlement_and_cannot_exceed_the_charge(loopback, http):
    charge_id = trans_id(call(loopback, transaction(nonce="test-approve", amount="19.99")))

    def refund(amount: str, invoice: str):
        request = transaction("refundTransaction", amount, card="1111", ref=charge_id, invoice=invoice)
        return call(loopback, request)

    early = refund("5.00", "R-1-1")
    assert (response_code(early), reason(early)) == ("3", "54")

    assert http.post(loopback.url + "/_control/settle", timeout=5).json() == {"settled": 1}
    refunded = refund("5.00", "R-1-1")
    too_much = refund("15.00", "R-1-2")

    assert (response_code(refunded), reason(refunded)) == ("1", "1")
    assert value(refunded, "transactionResponse/refTransID") == charge_id
    refund_txn = loopback.ledger.details(trans_id(refunded))
    assert (refund_txn.status, refund_txn.ref_trans_id) == ("refundPendingSettlement", charge_id)
    assert (response_code(too_much), reason(too_much)) == ("3", "55")
    assert loopback.ledger.details(charge_id).refunded == Decimal("5.00")


# -- reporting ----------------------------------------------------------------------------------------


def test_transaction_details_report_status_amounts_and_invoice(loopback):
    charge_id = trans_id(call(loopback, transaction(nonce="test-approve", amount="42.50", invoice="ORD-500")))

    response = call(loopback, details_request(charge_id))
    missing = call(loopback, details_request("99"))

    assert result(response) == ("Ok", "I00001")
    assert value(response, "transaction/transId") == charge_id
    assert value(response, "transaction/transactionStatus") == "capturedPendingSettlement"
    assert value(response, "transaction/transactionType") == "authCaptureTransaction"
    assert value(response, "transaction/responseCode") == "1"
    assert value(response, "transaction/order/invoiceNumber") == "ORD-500"
    assert Decimal(value(response, "transaction/authAmount")) == Decimal("42.50")
    assert value(response, "transaction/payment/creditCard/cardNumber") == "XXXX1111"
    assert result(missing) == ("Error", "E00040")


def test_unsettled_list_finds_a_charge_by_invoice_number(loopback):
    call(loopback, transaction(nonce="test-approve", invoice="ORD-600"))
    wanted = trans_id(call(loopback, transaction(nonce="test-approve", invoice="ORD-601", amount="7.25")))

    response = call(loopback, unsettled_request())

    assert result(response) == ("Ok", "I00001")
    rows = response.findall(f"{{{NS}}}transactions/{{{NS}}}transaction")
    [match] = [row for row in rows if value(row, "invoiceNumber") == "ORD-601"]
    assert value(match, "transId") == wanted
    assert Decimal(value(match, "settleAmount")) == Decimal("7.25")
    assert value(match, "transactionStatus") == "capturedPendingSettlement"
    ids = [value(row, "transId") for row in rows]
    assert ids == sorted(ids, reverse=True)


# -- protocol errors ----------------------------------------------------------------------------------


def test_bad_credentials_get_e00007_and_book_nothing(loopback):
    charge = call(loopback, transaction(nonce="test-approve", auth=merchant(key="not-the-key")))
    details = call(loopback, details_request("1", auth=merchant(login="someone-else")))

    assert result(charge) == ("Error", "E00007")
    assert value(charge, "messages/message/text") == anet_loopback.AUTH_FAILED[2]
    assert response_code(charge) is None
    assert result(details) == ("Error", "E00007")
    assert loopback.ledger.transactions() == []


def test_a_body_that_violates_the_xsd_gets_e00003(loopback, http):
    auth = f"<merchantAuthentication><name>{DEFAULT_LOGIN}</name><transactionKey>{DEFAULT_KEY}</transactionKey></merchantAuthentication>"
    out_of_order = (
        f'<?xml version="1.0" encoding="utf-8"?><createTransactionRequest xmlns="{NS}">{auth}'
        "<transactionRequest><amount>5.00</amount><transactionType>authCaptureTransaction</transactionType>"
        "</transactionRequest></createTransactionRequest>"
    )
    bad_type = out_of_order.replace(
        "<amount>5.00</amount><transactionType>authCaptureTransaction</transactionType>",
        "<transactionType>authCaptureTransactoin</transactionType><amount>5.00</amount>",
    )

    for body in (out_of_order, bad_type, "this is not XML"):
        reply = http.post(loopback.endpoint, data=body.encode(), timeout=5)
        assert reply.status_code == 200
        assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
        root = parse(reply.content)
        assert etree.QName(root).localname == "ErrorResponse"
        assert (value(root, "messages/resultCode"), value(root, "messages/message/code")) == (
            "Error",
            "E00003",
        )
        assert value(root, "messages/message/text")
    assert loopback.ledger.transactions() == []


def test_every_kind_of_answer_is_valid_against_the_xsd(loopback, http, schema):
    """All but E00040 (which, like the real API, omits the required <transaction>) validate."""
    nothing_yet = parse(raw_call(http, loopback, unsettled_request()).content)
    authorization = transaction("authOnlyTransaction", nonce="test-approve")
    approved = parse(raw_call(http, loopback, authorization).content)
    auth_id = value(approved, "transactionResponse/transId")
    settled_id = trans_id(call(loopback, transaction(nonce="test-approve")))
    loopback.ledger.settle()
    requests_to_check = [
        transaction(nonce="test-decline"),
        transaction(nonce="test-error"),
        transaction(nonce="test-held"),
        transaction(card="4111111111111112"),
        transaction(nonce="no-such-nonce"),
        transaction(nonce="test-approve", auth=merchant(key="wrong")),
        transaction("priorAuthCaptureTransaction", None, ref=auth_id),
        transaction("priorAuthCaptureTransaction", None, ref=auth_id),
        transaction("voidTransaction", None, ref=auth_id),
        transaction("voidTransaction", None, ref=auth_id),
        transaction("refundTransaction", "1.00", card="1111", ref=settled_id, invoice="R-9-1", window=28800),
        transaction("refundTransaction", "1.00", card="1111", ref=settled_id, invoice="R-9-1", window=28800),
        details_request(settled_id),
        unsettled_request(),
    ]
    answers = [nothing_yet, approved]
    answers += [parse(raw_call(http, loopback, request).content) for request in requests_to_check]
    answers.append(parse(http.post(loopback.endpoint, data=b"<oops/>", timeout=5).content))

    for answer in answers:
        assert schema.validate(answer), (etree.tostring(answer), schema.error_log)
    assert value(nothing_yet, "messages/message/code") == "I00004"


# -- faults, latency, concurrency ---------------------------------------------------------------------


def test_http500_fault_gives_the_sdk_no_answer_and_books_nothing(loopback, http):
    reply = http.post(loopback.url + "/_control/fault", json={"mode": "http500", "count": 1}, timeout=5)
    assert reply.json()["mode"] == "http500"

    lost = call(loopback, transaction(nonce="test-approve"))
    after = call(loopback, transaction(nonce="test-approve"))

    assert lost is None
    assert response_code(after) == "1"
    assert len(loopback.ledger.transactions()) == 1


def test_lost_after_charge_books_the_charge_but_the_sdk_sees_nothing(loopback):
    loopback.set_fault("lost_after_charge")

    response = call(loopback, transaction(nonce="test-approve", invoice="ORD-900"))

    assert response is None
    [booked] = loopback.ledger.transactions()
    assert (booked.invoice_number, booked.status) == ("ORD-900", "capturedPendingSettlement")
    found = call(loopback, unsettled_request())  # how the reconciler finds it again
    assert value(found, "transactions/transaction/invoiceNumber") == "ORD-900"


def test_hang_fault_never_answers(loopback, http):
    loopback.set_fault("hang", count=2, hang_seconds=1.0)
    body = createTransactionController(transaction(nonce="test-approve")).buildrequest()

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(loopback.endpoint, data=body, timeout=(2, 0.3))
    assert time.monotonic() - started < 1.0
    # Waiting longer than hang_seconds shows the other half: the connection closes with no answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(loopback.endpoint, data=body, timeout=(2, 5))
    assert loopback.ledger.transactions() == []


def test_latency_delays_create_transaction_only(loopback, http):
    http.post(loopback.url + "/_control/latency", json={"seconds": 0.6}, timeout=5).raise_for_status()

    started = time.monotonic()
    charge_id = trans_id(call(loopback, transaction(nonce="test-approve")))
    charged_in = time.monotonic() - started
    started = time.monotonic()
    call(loopback, details_request(charge_id))
    looked_up_in = time.monotonic() - started

    assert charged_in >= 0.6
    assert looked_up_in < 0.6


def test_fifty_parallel_charges_all_approve_with_distinct_ids(loopback, monkeypatch):
    # Threads building controllers at once race on the SDK's global endpoint; pointing its default at the
    # loopback makes that race harmless here (gateway.py must hold a lock instead; see README §2).
    monkeypatch.setattr(sdk_constants, "SANDBOX", loopback.endpoint)
    loopback.set_latency(0.3)
    charges = [transaction(nonce="test-approve") for _ in range(50)]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(lambda request: call(loopback, request), charges, timeout=60))
    elapsed = time.monotonic() - started

    assert [response_code(response) for response in responses] == ["1"] * 50
    assert len({trans_id(response) for response in responses}) == 50
    assert len(loopback.ledger.transactions()) == 50
    assert elapsed < 50 * 0.3 / 3  # served concurrently, not one after another


# -- control API and command line ---------------------------------------------------------------------


def test_control_api_lists_resets_and_rejects_bad_input(loopback, http):
    call(loopback, transaction(nonce="test-approve", amount="3.10"))

    assert http.get(loopback.url + "/_control/health", timeout=5).status_code == 200
    [listed] = http.get(loopback.url + "/_control/transactions", timeout=5).json()
    assert (listed["auth_amount"], listed["status"]) == ("3.10", "capturedPendingSettlement")
    assert http.post(loopback.url + "/_control/fault", json={"mode": "explode"}, timeout=5).status_code == 400
    assert http.post(loopback.url + "/_control/reset", timeout=5).json() == {"ok": True}
    assert http.get(loopback.url + "/_control/transactions", timeout=5).json() == []


def test_command_line_serves_until_sigterm(schema, http):
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.anet_loopback", "--port", "0", "--latency", "0.01"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the loopback printed nothing within 30 s"
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        assert http.get(url + "/_control/health", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


# -- accept-test.js -----------------------------------------------------------------------------------


def accept_js(*secure_data: dict) -> list[dict]:
    """Run static/js/accept-test.js under node and return what dispatchData handed each response handler."""
    node = shutil.which("node")
    assert node, "node is needed to run accept-test.js (make test installs it for axe-core)"
    script = """
        globalThis.window = globalThis;
        require(process.argv[1]);
        const inputs = JSON.parse(process.argv[2]);
        const outputs = [];
        let left = inputs.length;
        inputs.forEach((input, i) => window.Accept.dispatchData(input, (response) => {
            outputs[i] = response;
            if (--left === 0) console.log(JSON.stringify(outputs));
        }));
    """
    run = subprocess.run(
        [node, "-e", script, str(ACCEPT_JS), json.dumps(secure_data)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(run.stdout)


def card_data(number: str, **extra: str) -> dict:
    card = {"cardNumber": number, "month": "12", "year": "2035", **extra}
    return {"authData": {"clientKey": "public-client-key", "apiLoginID": DEFAULT_LOGIN}, "cardData": card}


def test_accept_test_js_nonce_is_charged_once_and_never_holds_the_card_number(loopback):
    made, bad_number, expired = accept_js(
        card_data("4111 1111 1111 1111", cardCode="902", zip="46208"),
        card_data("4111111111111112"),
        card_data("4111111111111111", month="1", year="20"),
    )

    assert made["messages"] == {"resultCode": "Ok", "message": [{"code": "I_WC_01", "text": "Successful."}]}
    assert made["opaqueData"]["dataDescriptor"] == "COMMON.ACCEPT.INAPP.PAYMENT"
    nonce = made["opaqueData"]["dataValue"]
    payload = nonce.removeprefix(sandbox.LOCAL_NONCE_PREFIX)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(claims) == {"last4", "brand", "exp", "zip", "cvv", "n"}
    assert (claims["last4"], claims["brand"], claims["exp"]) == ("1111", "Visa", "2035-12")
    assert "4111111111111111" not in nonce and "4111111111111111" not in json.dumps(claims)
    [problem] = bad_number["messages"]["message"]
    assert problem == {"code": "E_WC_05", "text": "Please provide valid credit card number."}
    assert [message["code"] for message in expired["messages"]["message"]] == ["E_WC_08"]

    first = call(loopback, transaction(nonce=nonce))
    again = call(loopback, transaction(nonce=nonce))
    assert response_code(first) == "1"
    assert value(first, "transactionResponse/cvvResultCode") == "S"
    assert value(first, "transactionResponse/avsResultCode") == "S"  # the ZIP given to Accept.js
    assert result(again) == ("Error", "E00114")


# -- the ledger itself --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def approve(ledger: Ledger, **kwargs):
    return ledger.authorize(capture=True, amount=Decimal(kwargs.pop("amount", "10.00")), **kwargs)


def test_duplicate_window_expires_with_the_clock():
    clock = FakeClock()
    ledger = Ledger(clock)
    first = approve(ledger, nonce="test-approve", invoice_number="A")

    clock.now += 119
    within = approve(ledger, nonce="test-approve", invoice_number="A")
    clock.now += 2
    after = approve(ledger, nonce="test-approve", invoice_number="A")

    assert (first.response_code, within.reason_code, within.trans_id) == ("1", "11", "0")
    assert (after.response_code, int(after.trans_id)) == ("1", int(first.trans_id) + 1)


def test_explicit_duplicate_window_sets_the_length_and_returns_the_original():
    clock = FakeClock()
    ledger = Ledger(clock)
    card = {"card_number": "4111111111111111", "card_code": "901", "zip_code": "46205"}
    first = approve(ledger, **card, duplicate_window=600)

    clock.now += 500
    resent = approve(ledger, **card, duplicate_window=600)
    other_amount = approve(ledger, **card, amount="10.01")
    clock.now += 101
    expired = approve(ledger, **card, duplicate_window=600)
    unchecked = approve(ledger, **card, duplicate_window=0)

    assert (resent.result_code, resent.message_code, resent.response_code) == ("Error", "E00027", "3")
    assert (resent.reason_code, resent.trans_id, resent.auth_code) == ("11", first.trans_id, first.auth_code)
    assert (resent.avs, resent.cvv) == ("N", "N")
    assert [other_amount.response_code, expired.response_code, unchecked.response_code] == ["1", "1", "1"]
    assert len(ledger.transactions()) == 4


def test_duplicates_are_checked_before_a_single_use_nonce_is_spent():
    ledger = Ledger(FakeClock())
    used = sandbox.make_local_nonce("4111111111111111", FUTURE_EXP, "46201")
    fresh = sandbox.make_local_nonce("4111111111111111", FUTURE_EXP, "46201")  # same card, new nonce

    first = approve(ledger, nonce=used, invoice_number="B", duplicate_window=600)
    resent = approve(ledger, nonce=used, invoice_number="B", duplicate_window=600)
    fresh_duplicate = approve(ledger, nonce=fresh, invoice_number="B", duplicate_window=600)
    fresh_new_order = approve(ledger, nonce=fresh, invoice_number="C")
    reused = approve(ledger, nonce=used, invoice_number="D")

    assert (resent.reason_code, resent.trans_id) == ("11", first.trans_id)
    assert (fresh_duplicate.reason_code, fresh_duplicate.trans_id) == ("11", first.trans_id)
    assert fresh_new_order.response_code == "1"  # the duplicate did not spend it
    assert (reused.message_code, reused.response_code) == ("E00114", "")


@pytest.mark.parametrize(
    "nonce", ["tok_visa", "local-accept.", "local-accept.bm90IGpzb24", "local-accept.e30"]
)
def test_unknown_or_malformed_nonces_are_invalid_tokens(nonce):
    outcome = approve(Ledger(), nonce=nonce)

    assert (outcome.result_code, outcome.message_code, outcome.response_code) == ("Error", "E00114", "")
    assert outcome.message_text == "Invalid OTS Token."


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("370000000000002", "AmericanExpress"),
        ("6011000000000012", "Discover"),
        ("3088000000000017", "JCB"),
        ("38000000000006", "DinersClub"),
        ("4007000000027", "Visa"),
        ("4012888818888", "Visa"),
        ("4111111111111111", "Visa"),
        ("5424000000000015", "MasterCard"),
        ("2223000010309703", "MasterCard"),
        ("2223000010309711", "MasterCard"),
    ],
)
def test_the_documented_test_cards_approve(number, brand):
    outcome = approve(Ledger(), card_number=number, card_code="900")

    assert (outcome.response_code, outcome.account_type, outcome.cvv) == ("1", brand, "M")
    assert outcome.account_number == "XXXX" + number[-4:]


def test_invalid_cards_and_amounts_are_errors_that_book_nothing():
    ledger = Ledger()

    assert approve(ledger, card_number="4111111111111112").reason_code == "6"
    assert approve(ledger, amount="0", nonce="test-approve").reason_code == "5"
    assert approve(ledger, amount="-1.00", nonce="test-approve").reason_code == "5"
    assert approve(ledger, amount="1.005", nonce="test-approve").reason_code == "5"
    assert approve(ledger).reason_code == "33"
    unknown_brand = approve(ledger, card_number="1234567812345670")  # passes Luhn, but no brand starts with 1
    assert (unknown_brand.reason_code, unknown_brand.trans_id) == ("17", "0")
    assert ledger.transactions() == []


def test_trans_ids_increase_from_the_first_sandbox_id():
    ledger = Ledger()
    ids = [approve(ledger, nonce="test-approve", invoice_number=str(n)).trans_id for n in range(3)]

    assert ids == [str(sandbox.FIRST_TRANS_ID + n) for n in range(3)]


def test_refund_duplicates_and_voided_refunds():
    clock = FakeClock()
    ledger = Ledger(clock)
    charge = approve(ledger, nonce="test-approve", amount="20.00")
    ledger.settle()

    refund = ledger.refund(charge.trans_id, Decimal("8.00"), "R-1-1", duplicate_window=28800)
    clock.now += 3600
    resent = ledger.refund(charge.trans_id, Decimal("8.00"), "R-1-1", duplicate_window=28800)
    assert (resent.reason_code, resent.trans_id) == ("11", refund.trans_id)
    assert ledger.details(charge.trans_id).refunded == Decimal("8.00")

    assert ledger.void(refund.trans_id).reason_code == "1"
    assert ledger.details(charge.trans_id).refunded == Decimal("0.00")
    assert ledger.refund(charge.trans_id, Decimal("20.00"), "R-1-2").response_code == "1"
    assert ledger.refund(charge.trans_id, Decimal("0.01"), "R-1-3").reason_code == "55"


def test_unsettled_is_newest_first_and_settle_moves_the_batch():
    ledger = Ledger()
    authorized = ledger.authorize(capture=False, amount=Decimal("1.00"), nonce="test-approve")
    captured = approve(ledger, nonce="test-approve", invoice_number="2")
    declined = approve(ledger, nonce="test-decline", invoice_number="3")
    held = approve(ledger, nonce="test-held", invoice_number="4")
    voided = approve(ledger, nonce="test-approve", invoice_number="5")
    ledger.void(voided.trans_id)

    newest_first = [held, captured, authorized]
    assert [txn.trans_id for txn in ledger.unsettled()] == [outcome.trans_id for outcome in newest_first]
    assert ledger.settle() == 1
    assert ledger.details(captured.trans_id).status == "settledSuccessfully"
    assert ledger.details(declined.trans_id).status == "declined"
    assert ledger.void(captured.trans_id).reason_code == "16"  # settled: refund it instead
    everything = [authorized, captured, declined, held, voided]
    assert [txn.trans_id for txn in ledger.transactions()] == [outcome.trans_id for outcome in everything]


def test_review_of_a_held_transaction_approves_or_declines_it():
    ledger = Ledger()
    held_charge = approve(ledger, nonce="test-held", invoice_number="H-1")
    held_auth = ledger.authorize(
        capture=False, amount=Decimal("4.00"), nonce="test-held", invoice_number="H-2"
    )

    approved = ledger.review(held_charge.trans_id, approve=True)
    declined = ledger.review(held_auth.trans_id, approve=False)

    assert (approved.response_code, approved.trans_id, len(approved.auth_code)) == (
        "1",
        held_charge.trans_id,
        6,
    )
    assert ledger.details(held_charge.trans_id).status == "capturedPendingSettlement"
    assert (declined.response_code, ledger.details(held_auth.trans_id).status) == ("2", "declined")
    assert ledger.review(held_charge.trans_id, approve=True).reason_code == "16"  # no longer held


def test_ledger_hands_out_snapshots_and_is_safe_across_threads():
    ledger = Ledger()
    barrier = threading.Barrier(20)

    def charge(n: int) -> str:
        barrier.wait(timeout=10)
        return approve(ledger, nonce="test-approve", invoice_number=f"T-{n}").trans_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(charge, range(20), timeout=30))
    snapshot = ledger.details(ids[0])
    snapshot.status = "voided"

    assert len(set(ids)) == 20
    assert ledger.details(ids[0]).status == "capturedPendingSettlement"
