"""Security headers on every response: strict CSP, no framing, no sniffing."""

from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, request


def content_security_policy(accept_js_url: str) -> str:
    """Scripts only from us, plus Accept.js (and the API it calls) when the real one is configured."""
    scripts, connect = ["'self'"], ["'self'"]
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


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"])
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config["STOREFRONT_ENV"] == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def reject_nul_bytes() -> None:
    """No text we store or search may hold a NUL byte (PostgreSQL refuses them): a 400, not a 500."""
    values = list(request.args.values())
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        values += list(request.form.values())
    if any("\x00" in value for value in values) or "\x00" in request.path:
        abort(400, description="The request contained characters we can't accept.")


def init_app(app: Flask) -> None:
    app.config["CONTENT_SECURITY_POLICY"] = content_security_policy(app.config["ACCEPT_JS_URL"])
    app.before_request(reject_nul_bytes)
    app.after_request(add_security_headers)
