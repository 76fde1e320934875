"""Authorize.Net webhooks: verify the signature on the raw body, ignore repeats, enqueue a reconcile."""

import hashlib
import hmac
import json

from flask import Blueprint, abort, current_app, make_response, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jobs import payments as payment_jobs
from storefront import queues
from storefront.db import get_session
from storefront.extensions import csrf
from storefront.payments import sandbox
from storefront.payments.gateway import TestGateway, get_gateway
from storefront.payments.models import PaymentAttempt, WebhookEvent
from storefront.security import csrf_token

bp = Blueprint("payments", __name__)


def signature_valid(body: bytes, header: str, key: str) -> bool:
    """X-ANET-Signature is sha512=<HEX>: an HMAC-SHA512 of the raw body, keyed with the signature key's text."""
    if not key or not header.lower().startswith("sha512="):
        return False
    expected = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected.upper(), header[7:].strip().upper())


@bp.post("/payments/webhooks/authorizenet")
@csrf.exempt  # authenticated by its HMAC signature instead
def authorizenet_webhook():
    """Accept a payment event: each is a hint, so re-read the truth from the gateway in a job."""
    body = request.get_data(cache=False)
    if not signature_valid(
        body, request.headers.get("X-ANET-Signature", ""), current_app.config["AUTHNET_SIGNATURE_KEY"]
    ):
        abort(401, description="Bad signature.")
    try:
        event = json.loads(body)
        notification_id = str(event["notificationId"])[:64]
        event_type = str(event.get("eventType", ""))[:80]
        trans_id = str((event.get("payload") or {}).get("id", ""))[:20]
    except (ValueError, KeyError, TypeError, AttributeError):
        abort(400, description="Not an Authorize.Net event.")
    session = get_session()
    # Looked up before the commit: after it, nothing may hold a transaction open while the job is enqueued.
    attempt_id = (
        session.scalar(
            select(PaymentAttempt.id).where(
                PaymentAttempt.trans_id == trans_id, PaymentAttempt.kind == "charge"
            )
        )
        if trans_id
        else None
    )
    session.add(
        WebhookEvent(notification_id=notification_id, event_type=event_type, trans_id=trans_id, payload=event)
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return {"status": "duplicate"}, 200  # a repeat: already handled
    if attempt_id is not None:
        queues.enqueue(payment_jobs.check_payment, attempt_id, queue="payments")
    return {"status": "accepted"}, 200


@bp.route("/payments/test-hosted", methods=["GET", "POST"])
def test_hosted_form():
    """The built-in test gateway's stand-in for the Accept Hosted form (404 with a real gateway)."""
    gateway = get_gateway()
    if not isinstance(gateway, TestGateway):
        abort(404)
    status, page, location = sandbox.hosted_form_step(
        gateway.ledger,
        request.values.to_dict(),
        pay=request.method == "POST" and request.args.get("step") == "pay",
        pay_action=url_for("payments.test_hosted_form", step="pay"),
        # Our own page, so our CSRF check applies (a real hosted form never sees the token).
        hidden={"csrf_token": csrf_token()},
    )
    if location:
        return redirect(location, 303)
    response = make_response(page, status)
    response.cache_control.no_store = True
    return response
