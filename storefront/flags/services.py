"""Is a feature on? Flags, switches and samples, answered from memory.

Each process keeps a snapshot of every flag, switch and sample, read in one go and trusted for
FLAGS_CACHE_SECONDS; a change published on Redis drops the snapshot in every process at once, so checking one
costs no round trip on the hot path and a change reaches every worker within a moment. Names nobody created
are off, and logged once per process, so a typo shows in the logs instead of silently hiding a feature.
"""

import hashlib
import logging
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

import redis
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from storefront.flags.models import Flag, Sample, Switch

log = logging.getLogger(__name__)

CHANNEL = "flags:changed"
BUCKET_COOKIE = "sf_bucket"
KINDS = ("flag", "switch", "sample")
# How a form or the CLI names a flag's `everyone` value.
EVERYONE = {"rules": None, "on": True, "off": False}
_unknown_logged: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class FlagRules:
    name: str
    everyone: bool | None = None
    staff: bool = False
    percent: Decimal | None = None
    accounts: frozenset[int] = frozenset()
    note: str = ""


@dataclass(frozen=True)
class Snapshot:
    flags: dict[str, FlagRules] = field(default_factory=dict)
    switches: dict[str, bool] = field(default_factory=dict)
    samples: dict[str, Decimal] = field(default_factory=dict)


def bucket(name: str, key: str) -> Decimal:
    """Where a shopper falls for one flag, 0.0 to 99.9: the same every time for the same flag and shopper,
    and independent between flags (the name is in the hash), so 10% of one is not the same 10% of another."""
    digest = hashlib.sha256(f"{name}:{key}".encode()).digest()
    return Decimal(int.from_bytes(digest[:4], "big") % 1000) / 10


def rules_allow(rules: FlagRules, user, sticky_key: str | None) -> bool:
    """django-waffle's order: `everyone` decides when set; otherwise staff, listed accounts, then percent."""
    if rules.everyone is not None:
        return rules.everyone
    signed_in = user is not None and getattr(user, "is_authenticated", False)
    if signed_in and rules.staff and user.is_staff:
        return True
    if signed_in and user.id in rules.accounts:
        return True
    if rules.percent and sticky_key is not None:
        return bucket(rules.name, sticky_key) < rules.percent
    return False


class FlagCache:
    """One app's snapshot in this process, and the thread that hears changes from other processes."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.ttl = app.config["FLAGS_CACHE_SECONDS"]
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._listener_pid: int | None = None
        self._lock = threading.Lock()
        self.listening = threading.Event()  # set once subscribed (tests wait on it)

    def snapshot(self) -> Snapshot:
        """The current snapshot, read again from the database when older than the TTL or invalidated."""
        snap = self._snapshot
        if snap is not None and time.monotonic() - self._loaded_at < self.ttl:
            return snap
        self._listen()
        return self._reload(snap)

    def invalidate(self) -> None:
        self._generation += 1
        self._snapshot = None

    def _reload(self, stale: Snapshot | None) -> Snapshot:
        generation = self._generation
        try:
            with self.app.extensions["db_sessionmaker"]() as session:
                snap = load_snapshot(session)
        except SQLAlchemyError:
            # The database is away: keep answering from what we knew (all off if nothing), try again later.
            log.exception("feature flags could not be read; using the last known values")
            snap = stale or Snapshot()
        # A change heard while reading may not be in what was read: keep it, but read again next time.
        if generation == self._generation:
            self._snapshot, self._loaded_at = snap, time.monotonic()
        return snap

    def _listen(self) -> None:
        """Start the listener in this process (once; after a fork the parent's thread is not ours)."""
        if self._listener_pid == os.getpid() or not self.app.config.get("REDIS_URL"):
            return
        with self._lock:
            if self._listener_pid == os.getpid():
                return
            self._listener_pid = os.getpid()
            threading.Thread(target=self._run_listener, name="flags-listener", daemon=True).start()

    def _run_listener(self) -> None:
        redis_client = self.app.extensions["redis"]
        while True:
            try:
                pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                # Changes made while we were not subscribed were missed: start from fresh values.
                self.invalidate()
                self.listening.set()
                for _message in pubsub.listen():
                    self.invalidate()
            except (redis.RedisError, OSError) as error:
                self.listening.clear()
                log.warning("feature flag listener lost Redis (%s); retrying", error.__class__.__name__)
                time.sleep(1 + random.random())


def load_snapshot(session: Session) -> Snapshot:
    """Every flag, switch and sample as plain values."""
    flags = {
        flag.name: FlagRules(
            name=flag.name,
            everyone=flag.everyone,
            staff=flag.staff,
            percent=flag.percent,
            accounts=frozenset(int(account) for account in flag.accounts or ()),
            note=flag.note,
        )
        for flag in session.scalars(select(Flag))
    }
    switches = {switch.name: switch.active for switch in session.scalars(select(Switch))}
    samples = {sample.name: sample.percent for sample in session.scalars(select(Sample))}
    return Snapshot(flags, switches, samples)


def _cache() -> FlagCache:
    return current_app.extensions["flags"]


def _unknown(kind: str, name: str) -> bool:
    if (kind, name) not in _unknown_logged:
        _unknown_logged.add((kind, name))
        log.warning("unknown %s %r: treated as off", kind, name)
    return False


def _current_user():
    if not has_request_context():
        return None
    from flask_login import current_user

    return current_user


def _sticky_key(user) -> str | None:
    """The account for a signed-in shopper; otherwise a random id kept in a cookie, made on first need."""
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.id}"
    if not has_request_context():
        return None
    token = request.cookies.get(BUCKET_COOKIE) or g.get("flag_bucket")
    if not token:
        token = g.flag_bucket = secrets.token_urlsafe(12)
    return f"cookie:{token}"


def flag_active(name: str, user=None) -> bool:
    """Whether flag `name` is on for this request's shopper (or for `user`, e.g. in a job)."""
    rules = _cache().snapshot().flags.get(name)
    if rules is None:
        return _unknown("flag", name)
    if rules.everyone is not None:
        return rules.everyone
    user = user if user is not None else _current_user()
    return rules_allow(rules, user, _sticky_key(user) if rules.percent else None)


def switch_active(name: str) -> bool:
    """Whether switch `name` is on (for everyone)."""
    active = _cache().snapshot().switches.get(name)
    if active is None:
        return _unknown("switch", name)
    return active


def sample_active(name: str) -> bool:
    """Whether this one call falls in sample `name`'s percentage (drawn afresh every call)."""
    percent = _cache().snapshot().samples.get(name)
    if percent is None:
        return _unknown("sample", name)
    return Decimal(random.randrange(1000)) / 10 < percent


# --- changing them (callers commit, then call announce_change) ------------------------------------------


def flag_values(flag: Flag) -> dict:
    return {
        "everyone": flag.everyone,
        "staff": flag.staff,
        "percent": None if flag.percent is None else str(flag.percent),
        "accounts": list(flag.accounts or []),
        "note": flag.note,
    }


def switch_values(switch: Switch) -> dict:
    return {"active": switch.active, "note": switch.note}


def sample_values(sample: Sample) -> dict:
    return {"percent": str(sample.percent), "note": sample.note}


MODELS = {"flag": (Flag, flag_values), "switch": (Switch, switch_values), "sample": (Sample, sample_values)}


def find(session: Session, kind: str, name: str):
    """The flag, switch or sample of that name, or None."""
    model, _values = MODELS[kind]
    return session.scalar(select(model).where(model.name == name))


def all_of(session: Session) -> dict[str, list]:
    """Every flag, switch and sample, by name, for the admin page and the CLI."""
    return {
        kind: list(session.scalars(select(model).order_by(model.name)))
        for kind, (model, _v) in MODELS.items()
    }


def save(session: Session, kind: str, name: str, **changes) -> tuple[object, dict, dict]:
    """Create or change a flag, switch or sample; returns it with its values before and after."""
    model, values = MODELS[kind]
    thing = find(session, kind, name)
    before = values(thing) if thing is not None else {}
    if thing is None:
        defaults = {"flag": {"staff": False, "accounts": []}, "switch": {"active": False}, "sample": {}}
        thing = model(name=name, note="", **defaults[kind])
        if kind == "sample":
            thing.percent = Decimal("0")
        session.add(thing)
    for key, value in changes.items():
        if key == "accounts":
            value = sorted({int(account) for account in value})
        setattr(thing, key, value)
    session.flush()
    return thing, before, values(thing)


def delete(session: Session, kind: str, name: str) -> dict | None:
    """Remove a flag, switch or sample (its name then reads as off); its last values, or None if absent."""
    thing = find(session, kind, name)
    if thing is None:
        return None
    _model, values = MODELS[kind]
    before = values(thing)
    session.delete(thing)
    session.flush()
    return before


def announce_change() -> None:
    """After the commit: drop this process's snapshot and tell every other process to drop theirs."""
    _cache().invalidate()
    try:
        current_app.extensions["redis"].publish(CHANNEL, "1")
    except (redis.RedisError, OSError) as error:
        # The others still pick the change up when their snapshot expires (FLAGS_CACHE_SECONDS).
        log.warning("could not publish a flag change (%s)", error.__class__.__name__)


def init_app(app: Flask) -> None:
    """The per-process cache, `flag()`/`switch()`/`sample()` in templates, and the sticky bucket cookie."""
    app.extensions["flags"] = FlagCache(app)
    app.jinja_env.globals.update(flag=flag_active, switch=switch_active, sample=sample_active)

    @app.after_request
    def set_bucket_cookie(response):
        token = g.get("flag_bucket")
        if token and not request.cookies.get(BUCKET_COOKIE):
            response.set_cookie(
                BUCKET_COOKIE,
                token,
                max_age=365 * 24 * 3600,
                httponly=True,
                samesite="Lax",
                secure=app.config["SESSION_COOKIE_SECURE"],
            )
        return response
