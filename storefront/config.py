"""Configuration from the environment (12-factor); tests pass a dict on top."""

import os
import secrets
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

SANDBOX_ENDPOINT = "https://apitest.authorize.net/xml/v1/request.api"


class ConfigError(RuntimeError):
    """The environment is missing something production cannot run without."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path, production: bool) -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    if production:
        raise ConfigError("SECRET_KEY must be set when STOREFRONT_ENV=production")
    # The embedded default generates one key and keeps it, so sessions survive a restart.
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _trusted_hosts(production: bool, base_url: str) -> list[str] | None:
    """The Host headers we answer (others get 400): TRUSTED_HOSTS, else in production BASE_URL's host."""
    listed = [host.strip() for host in os.environ.get("TRUSTED_HOSTS", "").split(",") if host.strip()]
    if listed:
        return listed
    return [urlsplit(base_url).hostname] if production else None


def default_base_url(bind: str) -> str:
    """The address `make run` serves (gunicorn's BIND, HOST:PORT of the Makefile), for links in e-mails.

    A wildcard host is no address a browser can open, so links name the loopback there instead."""
    host, _, port = (bind or "127.0.0.1:5000").rpartition(":")
    if not host or not port.isdigit():
        return "http://127.0.0.1:5000"
    if host in ("0.0.0.0", "[::]", "::"):  # noqa: S104 (a bind address read, not bound)
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def load_config(instance_path: str) -> dict:
    """Read every setting from the environment, with the embedded defaults."""
    instance = Path(instance_path)
    production = os.environ.get("STOREFRONT_ENV", "development") == "production"
    redis_url = os.environ.get("REDIS_URL") or None
    base_url = os.environ.get("BASE_URL") or default_base_url(os.environ.get("BIND", ""))
    return {
        "STOREFRONT_ENV": "production" if production else "development",
        "SECRET_KEY": _secret_key(instance, production),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'storefront.db'}",
        # A streaming replica (or a multi-host DSN with target_session_attrs=prefer-standby) for catalog
        # pages and listings; unset, they read from DATABASE_URL like everything else.
        "DATABASE_REPLICA_URL": os.environ.get("DATABASE_REPLICA_URL") or None,
        "DATABASE_POOL_SIZE": int(os.environ.get("DATABASE_POOL_SIZE", "5")),
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_STRATEGY": "moving-window",
        "RATELIMIT_HEADERS_ENABLED": False,  # a Redis round trip each; 429s get Retry-After (errors.py)
        "RATELIMIT_KEY_PREFIX": "limits",
        # Limits in flask-limiter notation; per client IP unless the name says account.
        "LOGIN_LIMIT_PER_IP": os.environ.get("LOGIN_LIMIT_PER_IP", "30/minute;300/hour"),
        "LOGIN_LIMIT_PER_ACCOUNT": os.environ.get("LOGIN_LIMIT_PER_ACCOUNT", "10/minute;50/hour"),
        "REGISTER_LIMIT": os.environ.get("REGISTER_LIMIT", "10/minute;50/hour"),
        "RESET_LIMIT": os.environ.get("RESET_LIMIT", "5/minute;20/hour"),
        "ADD_TO_CART_LIMIT": os.environ.get("ADD_TO_CART_LIMIT", "60/minute"),
        "NOTIFY_LIMIT": os.environ.get("NOTIFY_LIMIT", "5/minute;20/hour"),  # "notify me" requests per IP
        # How stale a process's list of watched variants may be (a stock change reads it, never the database).
        "NOTIFY_WATCH_SECONDS": float(os.environ.get("NOTIFY_WATCH_SECONDS", "5")),
        # Lockout of an (account, IP) pair; an IP failing across accounts is slowed down, never locked.
        "LOCKOUT_FAILURES": int(os.environ.get("LOCKOUT_FAILURES", "5")),
        "LOCKOUT_WINDOW": int(os.environ.get("LOCKOUT_WINDOW", str(15 * 60))),
        "LOCKOUT_COOLOFF": int(os.environ.get("LOCKOUT_COOLOFF", str(15 * 60))),
        # Past this many failures in the window, an address is slowed down (1 s, 2 s, 4 s ... this ceiling).
        "LOCKOUT_IP_FAILURES": int(os.environ.get("LOCKOUT_IP_FAILURES", "50")),
        "LOCKOUT_IP_MAX_DELAY": int(os.environ.get("LOCKOUT_IP_MAX_DELAY", "60")),
        "VERIFY_TOKEN_MAX_AGE": 3 * 24 * 3600,
        "RESET_TOKEN_MAX_AGE": 3600,
        "CART_MAX_LINE_QUANTITY": int(os.environ.get("CART_MAX_LINE_QUANTITY", "10")),
        "BASE_URL": base_url,
        "TRUSTED_HOSTS": _trusted_hosts(production, base_url),
        "MAIL_URL": os.environ.get("MAIL_URL") or None,
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Storefront <shop@storefront.test>"),
        "MAIL_OUTBOX": os.environ.get("MAIL_OUTBOX") or str(instance / "outbox"),
        # Payments: the built-in test gateway unless Authorize.Net is chosen and has credentials.
        "PAYMENT_GATEWAY": os.environ.get("PAYMENT_GATEWAY", "test"),
        "PAYMENT_CAPTURE": os.environ.get(
            "PAYMENT_CAPTURE", "auth_capture"
        ),  # or auth_only: capture at shipment
        "AUTHNET_API_LOGIN_ID": os.environ.get("AUTHNET_API_LOGIN_ID", ""),
        "AUTHNET_TRANSACTION_KEY": os.environ.get("AUTHNET_TRANSACTION_KEY", ""),
        "AUTHNET_CLIENT_KEY": os.environ.get("AUTHNET_CLIENT_KEY", "local-test-client-key"),
        "AUTHNET_SIGNATURE_KEY": os.environ.get("AUTHNET_SIGNATURE_KEY", ""),
        "AUTHNET_ENDPOINT": os.environ.get("AUTHNET_ENDPOINT", SANDBOX_ENDPOINT),
        "AUTHNET_CONNECT_TIMEOUT": float(os.environ.get("AUTHNET_CONNECT_TIMEOUT", "5")),
        "AUTHNET_READ_TIMEOUT": float(os.environ.get("AUTHNET_READ_TIMEOUT", "30")),
        # Seconds a product page's or a listing's data may be served from the process's memory (0: never).
        # Stock shown there may lag by as much; the live stock fragment, add to cart and checkout never do.
        "CATALOG_CACHE_SECONDS": float(os.environ.get("CATALOG_CACHE_SECONDS", "2")),
        # Charges one worker sends at once (threads); each waits ~300 ms on the gateway, not on the CPU.
        "PAYMENT_BATCH": int(os.environ.get("PAYMENT_BATCH", "32")),
        "ACCEPT_JS_URL": os.environ.get("ACCEPT_JS_URL", ""),  # empty: the local test stand-in
        "ORDER_HOLD_MINUTES": int(os.environ.get("ORDER_HOLD_MINUTES", "15")),
        # The tight checkout limit is the shopper's (session, account, e-mail); the address's is a flood
        # ceiling only, since a drop's shoppers may share one (a carrier NAT, an office).
        "CHECKOUT_LIMIT_PER_IP": os.environ.get("CHECKOUT_LIMIT_PER_IP", "600/minute"),
        "CHECKOUT_LIMIT_PER_SHOPPER": os.environ.get("CHECKOUT_LIMIT_PER_SHOPPER", "6/minute"),
        # Only this many proxies in front of us may set X-Forwarded-For; 0 trusts none.
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
        "MEDIA_FOLDER": os.environ.get("MEDIA_FOLDER") or str(instance / "media"),
        # Daily pg_dump files (flask backup, and the clock): kept 7 daily, 4 weekly, 12 monthly.
        "BACKUP_DIR": os.environ.get("BACKUP_DIR") or str(instance / "backups"),
        "BACKUP_KEEP_DAILY": int(os.environ.get("BACKUP_KEEP_DAILY", "7")),
        "BACKUP_KEEP_WEEKLY": int(os.environ.get("BACKUP_KEEP_WEEKLY", "4")),
        "BACKUP_KEEP_MONTHLY": int(os.environ.get("BACKUP_KEEP_MONTHLY", "12")),
        # Product image uploads over this are refused; the upload route sizes its request cap to fit.
        "MAX_IMAGE_BYTES": int(os.environ.get("MAX_IMAGE_BYTES", str(2 * 1024 * 1024))),
        "PAGE_SIZE": int(os.environ.get("PAGE_SIZE", "24")),
        "LOW_STOCK_THRESHOLD": int(os.environ.get("LOW_STOCK_THRESHOLD", "10")),
        "STOCK_POLL_SECONDS": int(os.environ.get("STOCK_POLL_SECONDS", "5")),
        # The waiting room (storefront/waitingroom): off until a sale in drop mode runs or staff turn it on.
        "WAITING_ROOM_ADMISSION_SECONDS": float(os.environ.get("WAITING_ROOM_ADMISSION_SECONDS", "300")),
        "WAITING_ROOM_ABANDON_SECONDS": float(os.environ.get("WAITING_ROOM_ABANDON_SECONDS", "30")),
        "WAITING_ROOM_POLL_SECONDS": int(os.environ.get("WAITING_ROOM_POLL_SECONDS", "3")),
        "WAITING_ROOM_CACHE_SECONDS": float(os.environ.get("WAITING_ROOM_CACHE_SECONDS", "2")),
        # Logs: JSON lines in production (one per request, with its request id), a human format otherwise.
        "LOG_FORMAT": os.environ.get("LOG_FORMAT") or ("json" if production else "text"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO").upper(),
        # Sentry: nothing is sent without a DSN. Release defaults to the git commit, environment to STOREFRONT_ENV.
        "SENTRY_DSN": os.environ.get("SENTRY_DSN") or None,
        "SENTRY_ENVIRONMENT": os.environ.get("SENTRY_ENVIRONMENT") or None,
        "SENTRY_RELEASE": os.environ.get("SENTRY_RELEASE") or None,
        "SENTRY_TRACES_SAMPLE_RATE": float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0")),
        # Prometheus: counted when enabled; /metrics answers these addresses, or a bearer METRICS_TOKEN.
        "METRICS_ENABLED": _bool(os.environ.get("METRICS_ENABLED"), default=production),
        "METRICS_ALLOWED_IPS": os.environ.get("METRICS_ALLOWED_IPS", "127.0.0.1,::1"),
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or None,
        # Slack alerts: nothing is sent without a webhook; ALERTS_OFF names events to keep quiet.
        "SLACK_WEBHOOK_URL": os.environ.get("SLACK_WEBHOOK_URL") or None,
        "SLACK_TIMEOUT": float(os.environ.get("SLACK_TIMEOUT", "5")),
        "ALERTS_OFF": frozenset(e.strip() for e in os.environ.get("ALERTS_OFF", "").split(",") if e.strip()),
        "ALERT_WINDOW_SECONDS": int(os.environ.get("ALERT_WINDOW_SECONDS", "300")),
        "ALERT_BIG_ORDER": Decimal(os.environ["ALERT_BIG_ORDER"])
        if os.environ.get("ALERT_BIG_ORDER")
        else None,
        "ALERT_DECLINE_RATE": float(os.environ.get("ALERT_DECLINE_RATE", "0.3")),
        "ALERT_DECLINE_MIN": int(os.environ.get("ALERT_DECLINE_MIN", "20")),
        "ALERT_DECLINE_WINDOW": int(os.environ.get("ALERT_DECLINE_WINDOW", "600")),
        "ALERT_QUEUE_STUCK_MINUTES": int(os.environ.get("ALERT_QUEUE_STUCK_MINUTES", "5")),
        # Live stock (flag `live_stock`, needs Redis): where pages reach the stream pool ("" = this origin's
        # /stream/, which nginx routes there), and how the streams behave.
        "STREAM_URL": os.environ.get("STREAM_URL", ""),
        "LIVE_STOCK_HEARTBEAT_SECONDS": float(os.environ.get("LIVE_STOCK_HEARTBEAT_SECONDS", "15")),
        "LIVE_STOCK_COALESCE_SECONDS": float(os.environ.get("LIVE_STOCK_COALESCE_SECONDS", "0.25")),
        "LIVE_STOCK_RETRY_MS": int(os.environ.get("LIVE_STOCK_RETRY_MS", "3000")),  # plus up to as much again
        "LIVE_STOCK_MAX_SECONDS": float(os.environ.get("LIVE_STOCK_MAX_SECONDS", "3600")),
        # Seconds a process trusts its copy of the feature flags; a change published on Redis ends it sooner.
        "FLAGS_CACHE_SECONDS": float(os.environ.get("FLAGS_CACHE_SECONDS", "2")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production or _bool(os.environ.get("SESSION_COOKIE_SECURE")),
        "REMEMBER_COOKIE_DURATION": 30 * 24 * 3600,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production or _bool(os.environ.get("SESSION_COOKIE_SECURE")),
        "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead, so a long browse never expires a form
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    }
