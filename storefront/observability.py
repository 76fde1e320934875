"""Exceptions to Sentry (when SENTRY_DSN is set), and the scrubbing that keeps secrets out of it and the logs.

Scrubbing is a backstop, not the plan: card data never reaches us (Accept.js), and `send_default_pii` is off so
the SDK leaves out cookies, users and IPs. What can still slip in (a form body, a local variable, an exception
message) passes through `scrub` before it leaves the process.
"""

import logging
import os
import re
import shutil
import subprocess
from functools import cache

from flask import Flask

from storefront import ROOT

log = logging.getLogger(__name__)

FILTERED = "[Filtered]"
# Keys whose values are secret whatever they hold (matched inside longer names: csrf_token, dataValue...).
SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|nonce|cookie|authori[sz]ation|session|csrf|api[_-]?key|signature|"
    r"card|cvv|cvc|datavalue|datadescriptor|otp|totp|recovery|dsn",
    re.IGNORECASE,
)
# 13 to 19 digits, optionally grouped by spaces or dashes: what a card number looks like.
CARD_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# key=value and "key": "value" pairs inside free text (query strings, exception messages, SQL parameters).
SECRET_PAIR = re.compile(
    r"(?P<key>[\w.-]*(?:pass(?:word|wd)?|secret|token|nonce|cookie|session|csrf|api[_-]?key|signature|"
    r"card[_-]?number|cvv|cvc|datavalue|authorization)[\w.-]*)(?P<sep>['\"]?\s*[=:]\s*['\"]?)(?P<value>[^\s&'\",;]+)",
    re.IGNORECASE,
)
BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")


def scrub_text(text: str) -> str:
    """Card-like digit runs, secret key=value pairs, bearer tokens and the local part of e-mails, masked."""
    text = CARD_LIKE.sub(FILTERED, text)
    text = BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
    text = SECRET_PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{FILTERED}", text)
    return EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def scrub(value, depth: int = 0):
    """A copy of any JSON-like value with secret keys' values replaced and every string scrubbed."""
    if depth > 20:
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and SECRET_KEY.search(key) else scrub(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        # Headers arrive as [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and SECRET_KEY.search(value[0]):
            return [value[0], FILTERED]
        return [scrub(item, depth + 1) for item in value]
    return value


def before_send(event: dict, _hint: dict | None = None) -> dict:
    """Sentry's hook: the event as it will be sent, scrubbed."""
    return scrub(event)


@cache
def release() -> str:
    """The git commit this code is (GIT_COMMIT when the deploy sets it, else asked of git), or "unknown"."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        result = subprocess.run(  # noqa: S603 (a fixed command, no input)
            [git, "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def init_sentry(app: Flask) -> bool:
    """Start the Sentry SDK for this process when SENTRY_DSN is set; whether it did."""
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=app.config.get("SENTRY_RELEASE") or release(),
        environment=app.config.get("SENTRY_ENVIRONMENT") or app.config["STOREFRONT_ENV"],
        traces_sample_rate=app.config.get("SENTRY_TRACES_SAMPLE_RATE", 0.0),
        # The successor of send_default_pii=False (left at its default, off): no user, no cookies, no bodies.
        data_collection={"user_info": False, "http_bodies": [], "database_query_data": False},
        integrations=[FlaskIntegration(), RqIntegration(), SqlalchemyIntegration()],
        before_send=before_send,
        before_send_transaction=before_send,
    )
    return True


def capture_job_exception(error: BaseException) -> None:
    """Report a job's exception (the RQ integration also does, once it is set up; Sentry drops the twin)."""
    import sentry_sdk

    if sentry_sdk.get_client().is_active():
        sentry_sdk.capture_exception(error)
