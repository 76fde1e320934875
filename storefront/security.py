"""Security on every request: strict headers (CSP, no framing, no sniffing), no caching of personal pages,
trusted hosts only, signed session cookies, CSRF tokens."""

import copy
import hmac
import time
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature, URLSafeTimedSerializer, want_bytes
from werkzeug.exceptions import SecurityError


def content_security_policy(accept_js_url: str, stream_url: str = "") -> str:
    """Scripts only from us, plus Accept.js (and the API it calls) when the real one is configured; the live
    stock streams' origin when it is not ours."""
    scripts, connect = ["'self'"], ["'self'"]
    if stream_url:
        connect.append(origin(stream_url))
    if accept_js_url.startswith("https://"):
        scripts.append(origin(accept_js_url))
        connect.append(
            "https://api2.authorize.net" if "jstest" not in accept_js_url else "https://apitest.authorize.net"
        )
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {' '.join(scripts)}",
            "style-src 'self'",
            "img-src 'self' data:",  # Pico draws its form icons as data: SVGs
            f"connect-src {' '.join(connect)}",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(config) -> list[tuple[str, str]]:
    headers = [
        ("Content-Security-Policy", config["CONTENT_SECURITY_POLICY"]),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if config["STOREFRONT_ENV"] == "production":
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


def add_security_headers(response: Response) -> Response:
    """Every header a view did not set itself (one pass over the response's headers, not one per header)."""
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    for name, value in current_app.extensions["security_headers"]:
        if name.lower() not in present:
            headers.add(name, value)
    return response


# What the session holds that makes a page this shopper's own: the account, the cart, guest orders.
PERSONAL_SESSION_KEYS = ("_user_id", "cart_id", "cart_count", "orders")


def no_store_personal(response: Response) -> Response:
    """The one rule for personal pages: a response made while reading a session that names a shopper (signed
    in, or with a cart or orders) is never stored by a browser or a proxy, whichever page or fragment it is."""
    if session.accessed and any(key in session for key in PERSONAL_SESSION_KEYS):
        response.cache_control.no_store = True
        response.cache_control.public = False
        response.cache_control.max_age = None
    return response


def untrusted_host(error: SecurityError) -> Response:
    """A Host outside TRUSTED_HOSTS: a plain 400 (no page, so no URL is ever built from that host)."""
    return Response("Bad request: unknown host.\n", 400, mimetype="text/plain")


def reject_nul_bytes() -> None:
    """No text we store or search may hold a NUL byte (PostgreSQL refuses them): a 400, not a 500."""
    values = list(request.args.values())
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        values += list(request.form.values())
    if any("\x00" in value for value in values) or "\x00" in request.path:
        abort(400, description="The request contained characters we can't accept.")


class SignedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, byte for byte, opened with less work per request.

    Flask builds a serializer for every cookie it reads or writes, itsdangerous derives the HMAC key from
    SECRET_KEY on each signature (another HMAC), and every request decodes its cookie again: ~75 us of a cached
    product page's ~600, the largest single cost left on it. Here the keys are derived once per secret
    (itsdangerous' own "hmac" derivation, done ahead: the cookies are exactly the ones Flask signs, a test holds
    it), and a cookie this process has verified is not verified and decoded again: its data is copied from the
    last time, and its age checked against the session lifetime as itsdangerous would. A cookie that fails
    verification is never kept.
    """

    max_opened = 10_000  # cookies kept per process (a few hundred bytes each)

    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer] = {}
        self._opened: dict[tuple, tuple[dict, float]] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = self._keys(app)
        serializer = self._serializers.get(keys)
        if serializer is None:
            salt = want_bytes(self.salt)
            derived = [hmac.new(want_bytes(key), salt, self.digest_method).digest() for key in keys]
            serializer = URLSafeTimedSerializer(
                derived,
                salt=self.salt,
                serializer=self.serializer,
                signer_kwargs={"key_derivation": "none", "digest_method": self.digest_method},
            )
            # One secret at a time in production (tests make many apps); its cookies go with it.
            self._serializers, self._opened = {keys: serializer}, {}
        return serializer

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return self.session_class()
        max_age = app.permanent_session_lifetime.total_seconds()
        key = (self._keys(app), cookie)
        opened = self._opened.get(key)
        if opened is None:
            try:
                data, signed_at = serializer.loads(cookie, max_age=int(max_age), return_timestamp=True)
            except BadSignature:
                return self.session_class()
            if len(self._opened) >= self.max_opened:
                self._opened.clear()
            opened = self._opened[key] = (data, signed_at.timestamp())
        data, signed_at = opened
        if time.time() - signed_at > max_age:
            return self.session_class()
        return self.session_class(copy.deepcopy(data))  # a view may change what it holds (a list of flashes)

    @staticmethod
    def _keys(app: Flask) -> tuple:
        return (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)  # the current key last


_signed_csrf_tokens: dict[tuple[str, str], str] = {}
MAX_SIGNED_CSRF_TOKENS = 50_000


def csrf_token() -> str:
    """flask-wtf's CSRF token for this session, signed once per process and session, not on every page.

    The signed token embeds a timestamp, but with WTF_CSRF_TIME_LIMIT = None nothing checks it, so one signed
    token is valid exactly as long as the session's raw token it signs, like any other signing of it.
    """
    raw = session.get("csrf_token")
    if raw is None or current_app.config["WTF_CSRF_TIME_LIMIT"] is not None:
        return generate_csrf()
    key = (current_app.secret_key, raw)
    token = _signed_csrf_tokens.get(key)
    if token is None:
        if len(_signed_csrf_tokens) >= MAX_SIGNED_CSRF_TOKENS:
            _signed_csrf_tokens.clear()
        token = _signed_csrf_tokens[key] = generate_csrf()
    # flask-wtf keeps the request's token here: whatever else asks it this request gets the same one
    setattr(g, current_app.config["WTF_CSRF_FIELD_NAME"], token)
    return token


def init_app(app: Flask) -> None:
    app.config["CONTENT_SECURITY_POLICY"] = content_security_policy(
        app.config["ACCEPT_JS_URL"], app.config.get("STREAM_URL", "")
    )
    app.extensions["security_headers"] = security_headers(app.config)
    app.before_request(reject_nul_bytes)
    app.after_request(add_security_headers)
    app.after_request(no_store_personal)
    app.register_error_handler(SecurityError, untrusted_host)
    app.session_interface = SignedCookieSessions()
    # In place of flask-wtf's, which signs on every call (a global for macros, a context variable for pages).
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.context_processor(lambda: {"csrf_token": csrf_token})
