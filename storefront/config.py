"""Configuration from the environment (12-factor); tests pass a dict on top."""

import os
import secrets
from pathlib import Path


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


def load_config(instance_path: str) -> dict:
    """Read every setting from the environment, with the embedded defaults."""
    instance = Path(instance_path)
    production = os.environ.get("STOREFRONT_ENV", "development") == "production"
    redis_url = os.environ.get("REDIS_URL") or None
    return {
        "STOREFRONT_ENV": "production" if production else "development",
        "SECRET_KEY": _secret_key(instance, production),
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'storefront.db'}",
        "DATABASE_POOL_SIZE": int(os.environ.get("DATABASE_POOL_SIZE", "5")),
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        # Only this many proxies in front of us may set X-Forwarded-For; 0 trusts none.
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
        "MEDIA_FOLDER": os.environ.get("MEDIA_FOLDER") or str(instance / "media"),
        "PAGE_SIZE": int(os.environ.get("PAGE_SIZE", "24")),
        "LOW_STOCK_THRESHOLD": int(os.environ.get("LOW_STOCK_THRESHOLD", "10")),
        "STOCK_POLL_SECONDS": int(os.environ.get("STOCK_POLL_SECONDS", "5")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production or _bool(os.environ.get("SESSION_COOKIE_SECURE")),
        "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead, so a long browse never expires a form
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    }
