"""Authorize.Net's documented sandbox behaviour as plain Python: the books behind the test gateways.

Shared by the shop's in-process test gateway and by `tools/anet_loopback.py`, so both answer alike. The rules come
from `docs/authorizenet/README.md` (§5 sandbox, §3 response shapes, §8 follow-ups); where the README is silent,
a comment says which real-gateway behaviour is imitated. No `authorizenet` import here: gateway.py owns the SDK.
"""

import base64
import binascii
import itertools
import json
import random
import re
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

TEST_NONCES = ("test-approve", "test-decline", "test-error", "test-held")  # reusable, like Stripe's tok_visa
LOCAL_NONCE_PREFIX = "local-accept."  # nonces made by static/js/accept-test.js

AUTH_ONLY = "authOnlyTransaction"
AUTH_CAPTURE = "authCaptureTransaction"
REFUND = "refundTransaction"

AUTHORIZED = "authorizedPendingCapture"
CAPTURED = "capturedPendingSettlement"
SETTLED = "settledSuccessfully"
VOIDED = "voided"
DECLINED = "declined"
REFUND_PENDING = "refundPendingSettlement"
REFUND_SETTLED = "refundSettledSuccessfully"
HELD = "FDSPendingReview"
GENERAL_ERROR = "generalError"  # never booked: errors carry transId 0 (README §3)

UNSETTLED = frozenset({AUTHORIZED, CAPTURED, REFUND_PENDING, HELD})

DEFAULT_DUPLICATE_WINDOW = 120  # seconds (README §5)
MAX_DUPLICATE_WINDOW = 28800
FIRST_TRANS_ID = 60000000001
DECLINE_ZIP = "46282"
AVS_BY_ZIP = {
    "46201": "A",
    "46203": "E",
    "46204": "G",
    "46205": "N",
    "46206": "P",
    "46207": "R",  # the README lists no error for R, so it approves like every other AVS letter
    "46208": "S",
    "46209": "U",
    "46211": "W",
    "46214": "X",
    "46217": "Z",
}
CVV_BY_CODE = {"900": "M", "901": "N", "902": "S", "903": "U", "904": "P"}
TEST_CARD_LAST4 = "1111"
TEST_CARD_BRAND = "Visa"

# Response reason code -> (responseCode, reason text), as Authorize.Net words them.
REASONS = {
    "1": ("1", "This transaction has been approved."),
    "2": ("2", "This transaction has been declined."),
    "5": ("3", "A valid amount is required."),
    "6": ("3", "The credit card number is invalid."),
    "11": ("3", "A duplicate transaction has been submitted."),
    "16": ("3", "The transaction cannot be found."),
    "17": ("3", "The merchant does not accept this type of credit card."),
    "33": ("3", "Credit card number cannot be left blank."),
    "47": ("3", "The amount requested for settlement cannot be greater than the original amount authorized."),
    "54": ("3", "The referenced transaction does not meet the criteria for issuing a credit."),
    "55": ("3", "The sum of credits against the referenced transaction would exceed original debit amount."),
    "57": ("3", "An error occurred in processing. Please try again."),
    "252": ("4", "Your order has been received. Thank you for your business!"),
    "310": ("1", "This transaction has already been voided."),
    "311": ("1", "This transaction has already been captured."),
}

# Card brands by number prefix, in Authorize.Net's accountType spelling; JCB's 3088 range before Diners' 30x.
BRANDS = (
    ("AmericanExpress", re.compile(r"3[47]")),
    ("JCB", re.compile(r"30(8[89]|9[0-4])|35")),
    ("DinersClub", re.compile(r"3(0[0-5]|095|[689])")),
    ("Discover", re.compile(r"6(011|5|4[4-9]|22)")),
    ("MasterCard", re.compile(r"5[1-5]|2(22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)")),
    ("Visa", re.compile(r"4")),
)
BRAND_NAMES = frozenset(name for name, _ in BRANDS)

CENTS = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Outcome:
    """The result of one createTransaction call, as the API would report it."""

    result_code: str  # "Ok" | "Error"   (messages/resultCode)
    message_code: str  # "I00001", "E00027", "E00114", "E00040", ...
    message_text: str
    response_code: str  # "1" approved | "2" declined | "3" error | "4" held | "" when no transactionResponse
    reason_code: str  # transactionResponse message/error code: "1", "2", "11", "252", "310", "311", "54", ...
    reason_text: str
    trans_id: str = "0"
    auth_code: str = ""
    avs: str = ""
    cvv: str = ""
    account_number: str = ""  # "XXXX1111"
    account_type: str = ""  # "Visa", "MasterCard", ...
    ref_trans_id: str = ""


@dataclass
class Txn:
    """One transaction on the gateway's books."""

    trans_id: str
    transaction_type: str
    status: str  # authorizedPendingCapture | capturedPendingSettlement | settledSuccessfully | voided | ...
    response_code: str
    reason_code: str
    reason_text: str
    auth_code: str
    avs: str
    cvv: str
    auth_amount: Decimal
    settle_amount: Decimal
    invoice_number: str
    ref_trans_id: str
    submitted_at: datetime  # UTC
    account_number: str
    account_type: str
    refunded: Decimal = ZERO


@dataclass(frozen=True)
class _Card:
    """What the gateway learned about the paying card from the payment element."""

    identity: str  # what the duplicate check compares
    last4: str
    brand: str
    zip: str = ""  # carried inside a local nonce
    cvv: str = ""  # result letter, already decided
    nonce: str = ""  # the single-use nonce to spend, if any
    forced: str = ""  # the reason code a test nonce always answers with


INVALID_TOKEN = Outcome("Error", "E00114", "Invalid OTS Token.", "", "", "")


def outcome(reason_code: str, **fields: str) -> Outcome:
    """An Outcome for a reason code, with the resultCode and top-level message the API pairs with it."""
    response_code, reason_text = REASONS[reason_code]
    if response_code == "3":
        result = ("Error", "E00027", "The transaction was unsuccessful.")
    else:
        result = ("Ok", "I00001", "Successful.")
    return Outcome(*result, response_code, reason_code, reason_text, **fields)


def luhn_ok(number: str) -> bool:
    """True when a digit string passes the mod-10 check."""
    if not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str:
    """Authorize.Net's accountType for a card number, or "" when the prefix is no brand it knows."""
    return next((name for name, prefix in BRANDS if prefix.match(number)), "")


def make_local_nonce(card_number: str, exp: str, zip_code: str = "", cvv: str = "", n: str = "") -> str:
    """A nonce shaped like the ones static/js/accept-test.js makes, for scripts and tests without a browser."""
    claims = {
        "last4": card_number[-4:],
        "brand": card_brand(card_number),
        "exp": exp,
        "zip": zip_code,
        "cvv": cvv,
        "n": n or "".join(random.choices(string.ascii_letters + string.digits, k=16)),
    }
    encoded = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    return LOCAL_NONCE_PREFIX + encoded.decode()


def read_local_nonce(nonce: str) -> dict | None:
    """The claims inside a local nonce, or None when it is not one accept-test.js could have made."""
    if not nonce.startswith(LOCAL_NONCE_PREFIX):
        return None
    payload = nonce[len(LOCAL_NONCE_PREFIX) :]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    shape = {
        "last4": r"\d{4}",
        "brand": r"\w*",
        "exp": r"\d{4}-(0[1-9]|1[0-2])",
        "zip": r".{0,20}",
        "cvv": r"(\d{3,4})?",
    }
    if not isinstance(claims, dict) or not isinstance(claims.get("n"), str) or not claims["n"]:
        return None
    for field, pattern in shape.items():
        if not isinstance(claims.get(field), str) or not re.fullmatch(pattern, claims[field]):
            return None
    return claims


def _cvv_result(card_code: str | None) -> str:
    return CVV_BY_CODE.get(card_code, "M") if card_code else ""


def _valid_amount(amount: Decimal | None) -> bool:
    # The API takes dollars and cents; more decimals than that would hide a float somewhere upstream.
    return amount is not None and amount.is_finite() and amount > 0 and amount == amount.quantize(CENTS)


def _read_payment(nonce: str | None, card_number: str | None, card_code: str | None) -> _Card | Outcome:
    """The card behind a nonce or card number, or the Outcome that rejects it before anything is booked."""
    if nonce is not None and card_number is not None:
        raise ValueError("pass a nonce or a card number, not both")
    if nonce is not None:
        if nonce in TEST_NONCES:
            forced = {"test-decline": "2", "test-error": "57", "test-held": "252"}.get(nonce, "")
            return _Card(nonce, TEST_CARD_LAST4, TEST_CARD_BRAND, cvv="M", forced=forced)
        claims = read_local_nonce(nonce)
        if claims is None:
            return INVALID_TOKEN
        if claims["brand"] not in BRAND_NAMES:
            return outcome("17")
        return _Card(
            identity=f"{claims['last4']}|{claims['exp']}|{claims['zip']}",
            last4=claims["last4"],
            brand=claims["brand"],
            zip=claims["zip"],
            cvv=_cvv_result(claims["cvv"]),
            nonce=nonce,
        )
    if not card_number:
        # The real gateway answers 33 "<field> cannot be left blank." for a missing required field.
        return outcome("33")
    if not luhn_ok(card_number):
        return outcome("6")
    brand = card_brand(card_number)
    if not brand:
        # A Luhn-valid number of a brand the sandbox account does not take: the real gateway's reason 17.
        return outcome("17")
    return _Card(card_number, card_number[-4:], brand, cvv=_cvv_result(card_code))


class Ledger:
    """The gateway's books, thread-safe (one lock), with a clock callable for the duplicate window."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._txns: dict[str, Txn] = {}
        self._ids = itertools.count(FIRST_TRANS_ID)
        self._spent: set[str] = set()
        self._recent: dict[tuple, tuple[float, str]] = {}  # duplicate-check key -> (submitted, trans id)
        self._random = random.Random()

    def authorize(
        self,
        *,
        capture: bool,
        amount: Decimal,
        nonce: str | None = None,
        card_number: str | None = None,
        card_code: str | None = None,
        zip_code: str | None = None,
        invoice_number: str = "",
        duplicate_window: int | None = None,
        customer_id: str = "",
    ) -> Outcome:
        """An authCaptureTransaction (capture=True) or authOnlyTransaction, decided by the sandbox rules."""
        if not _valid_amount(amount):
            return outcome("5")
        amount = amount.quantize(CENTS)  # the SDK sends 3.10 as "3.1"
        card = _read_payment(nonce, card_number, card_code)
        if isinstance(card, Outcome):
            return card
        transaction_type = AUTH_CAPTURE if capture else AUTH_ONLY
        zip_code = zip_code or ""
        key = (transaction_type, amount, invoice_number, customer_id, zip_code, card.identity)
        with self._lock:
            now = self._clock()
            duplicate = self._duplicate(key, now, duplicate_window)
            if duplicate:
                return duplicate
            if card.nonce:
                if card.nonce in self._spent:
                    return INVALID_TOKEN
                self._spent.add(card.nonce)
            account = {"account_number": "XXXX" + card.last4, "account_type": card.brand}
            if card.forced == "57":
                return outcome("57", **account)
            # The billing ZIP sent with the transaction wins over the one given to Accept.js.
            billing_zip = zip_code or card.zip
            avs = AVS_BY_ZIP.get(billing_zip, "Y")
            if card.forced == "2" or (not card.forced and billing_zip == DECLINE_ZIP):
                # Real declines carry authCode 000000 (the objectify trap in README §2 exists because of it).
                reason, status, auth_code = "2", DECLINED, "000000"
            elif card.forced == "252":
                # Held before authorization, so no approval code yet.
                reason, status, auth_code = "252", HELD, ""
            else:
                reason, status, auth_code = "1", CAPTURED if capture else AUTHORIZED, self._auth_code()
            txn = self._book(
                transaction_type=transaction_type,
                status=status,
                reason_code=reason,
                auth_code=auth_code,
                avs=avs,
                cvv=card.cvv,
                amount=amount,
                settle_amount=ZERO if status == DECLINED else amount,
                invoice_number=invoice_number,
                ref_trans_id="",
                **account,
            )
            self._recent[key] = (now, txn.trans_id)
            return outcome(
                reason, trans_id=txn.trans_id, auth_code=auth_code, avs=avs, cvv=card.cvv, **account
            )

    def capture(self, ref_trans_id: str, amount: Decimal | None = None) -> Outcome:
        """A priorAuthCaptureTransaction of an authorization; a second capture answers 311 and changes nothing."""
        if amount is not None:
            if not _valid_amount(amount):
                return outcome("5")
            amount = amount.quantize(CENTS)
        with self._lock:
            txn = self._txns.get(ref_trans_id)
            # The gateway looks for a capturable authorization; voided, declined or held ones are "not found".
            if (
                txn is None
                or txn.transaction_type == REFUND
                or txn.status not in {AUTHORIZED, CAPTURED, SETTLED}
            ):
                return outcome("16")
            if txn.status != AUTHORIZED:
                return self._follow_up("311", txn)
            if amount is not None and amount > txn.auth_amount:
                return outcome("47", ref_trans_id=txn.trans_id)
            txn.status = CAPTURED
            txn.settle_amount = txn.auth_amount if amount is None else amount
            return self._follow_up("1", txn)

    def void(self, ref_trans_id: str) -> Outcome:
        """A voidTransaction of an unsettled transaction; a second void answers 1/310 and changes nothing."""
        with self._lock:
            txn = self._txns.get(ref_trans_id)
            if txn is None:
                return outcome("16")
            if txn.status == VOIDED:
                return self._follow_up("310", txn)
            if txn.status == REFUND_PENDING:
                # The real gateway also voids a refund that has not settled yet, which gives the money back.
                self._txns[txn.ref_trans_id].refunded -= txn.settle_amount
            elif txn.status not in {AUTHORIZED, CAPTURED}:
                return outcome("16")
            txn.status = VOIDED
            txn.settle_amount = ZERO
            return self._follow_up("1", txn)

    def refund(
        self,
        ref_trans_id: str,
        amount: Decimal,
        invoice_number: str = "",
        duplicate_window: int | None = None,
    ) -> Outcome:
        """A refundTransaction against a settled charge, booked as a new transaction."""
        if not _valid_amount(amount):
            return outcome("5")
        amount = amount.quantize(CENTS)
        with self._lock:
            original = self._txns.get(ref_trans_id)
            if original is None or original.transaction_type == REFUND or original.status != SETTLED:
                return outcome("54")
            # Checked before the 55 rule, so a resent full refund is recognised rather than refused.
            key = (REFUND, ref_trans_id, amount, invoice_number)
            now = self._clock()
            duplicate = self._duplicate(key, now, duplicate_window)
            if duplicate:
                return duplicate
            if amount > original.settle_amount - original.refunded:
                return outcome("55", ref_trans_id=ref_trans_id)
            original.refunded += amount
            account = {"account_number": original.account_number, "account_type": original.account_type}
            # Credits have no approval code and no address check: AVS "P" is "not applicable".
            txn = self._book(
                transaction_type=REFUND,
                status=REFUND_PENDING,
                reason_code="1",
                auth_code="",
                avs="P",
                cvv="",
                amount=amount,
                settle_amount=amount,
                invoice_number=invoice_number,
                ref_trans_id=ref_trans_id,
                **account,
            )
            self._recent[key] = (now, txn.trans_id)
            return outcome("1", trans_id=txn.trans_id, avs="P", ref_trans_id=ref_trans_id, **account)

    def review(self, trans_id: str, approve: bool) -> Outcome:
        """The merchant's decision on a held transaction (updateHeldTransaction): approve or decline it."""
        with self._lock:
            txn = self._txns.get(trans_id)
            if txn is None or txn.status != HELD:
                return outcome("16")
            if approve:
                txn.status = CAPTURED if txn.transaction_type == AUTH_CAPTURE else AUTHORIZED
                txn.auth_code = self._auth_code()
                reason = "1"
            else:
                txn.status, txn.settle_amount, reason = DECLINED, ZERO, "2"
            txn.response_code, txn.reason_text = REASONS[reason]
            txn.reason_code = reason
            return self._follow_up(reason, txn)

    def details(self, trans_id: str) -> Txn | None:
        """A snapshot of one transaction, or None when the gateway has no such id."""
        with self._lock:
            txn = self._txns.get(trans_id)
            return replace(txn) if txn else None

    def unsettled(self) -> list[Txn]:
        """Everything not settled, voided or declined, newest first."""
        with self._lock:
            return [replace(txn) for txn in reversed(self._txns.values()) if txn.status in UNSETTLED]

    def settle(self) -> int:
        """Run the settlement batch; return how many transactions it settled."""
        moves = {CAPTURED: SETTLED, REFUND_PENDING: REFUND_SETTLED}
        with self._lock:
            batch = [txn for txn in self._txns.values() if txn.status in moves]
            for txn in batch:
                txn.status = moves[txn.status]
            return len(batch)

    def transactions(self) -> list[Txn]:
        """Snapshots of every booked transaction, oldest first."""
        with self._lock:
            return [replace(txn) for txn in self._txns.values()]

    def _duplicate(self, key: tuple, now: float, duplicate_window: int | None) -> Outcome | None:
        """The reason-11 answer when the same request was booked within the window, else None."""
        window = DEFAULT_DUPLICATE_WINDOW if duplicate_window is None else duplicate_window
        window = min(max(window, 0), MAX_DUPLICATE_WINDOW)
        seen = self._recent.get(key)
        if seen is None or now - seen[0] >= window:
            return None
        if duplicate_window is None:
            return outcome("11")
        # Only an explicit duplicateWindow earns the original's details (README §5).
        original = self._txns[seen[1]]
        return outcome(
            "11",
            trans_id=original.trans_id,
            auth_code=original.auth_code if original.response_code == "1" else "",
            avs=original.avs,
            cvv=original.cvv,
            account_number=original.account_number,
            account_type=original.account_type,
        )

    def _follow_up(self, reason_code: str, txn: Txn) -> Outcome:
        """The answer to a capture or void: the original's id, approval code and account, AVS "not applicable"."""
        # priorAuthCapture and void report the referenced transaction's own id, not a new one.
        return outcome(
            reason_code,
            trans_id=txn.trans_id,
            auth_code=txn.auth_code,
            avs="P",
            account_number=txn.account_number,
            account_type=txn.account_type,
            ref_trans_id=txn.trans_id,
        )

    def _auth_code(self) -> str:
        return "".join(self._random.choices(string.ascii_uppercase + string.digits, k=6))

    def _book(self, *, reason_code: str, amount: Decimal, **fields: str | Decimal) -> Txn:
        """Record a new transaction under the next trans id (the caller holds the lock)."""
        response_code, reason_text = REASONS[reason_code]
        txn = Txn(
            trans_id=str(next(self._ids)),
            response_code=response_code,
            reason_code=reason_code,
            reason_text=reason_text,
            auth_amount=amount,
            submitted_at=datetime.fromtimestamp(self._clock(), UTC),
            **fields,
        )
        self._txns[txn.trans_id] = txn
        return txn
