"""Sign-in defence: an (account, address) pair that keeps failing is locked for a cool-off; an address that
fails across many accounts is slowed down, never locked, since one attacker behind a carrier NAT or an
office proxy must not lock out everyone else behind it.

The failure windows are the `limits` package's moving windows (flask-limiter's own storage and strategy);
locks and slowdowns are timed by the caller's clock so that tests can move time; Redis expiry only collects
garbage.
"""

import hashlib
import json
import logging
from dataclasses import dataclass

import redis
from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

from storefront.alerts import services as alerts
from storefront.extensions import limiter

log = logging.getLogger(__name__)

LOCK_INDEX = "lockout:index"
ANY_ACCOUNT = "*"  # the email of an address's slowdown, which holds for every account


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5
    window: int = 15 * 60
    cooloff: int = 15 * 60
    ip_failures: int = 50
    ip_max_delay: int = 60


@dataclass(frozen=True)
class Lock:
    """A pause on signing in: an account from one address, or (email ANY_ACCOUNT) an address's slowdown."""

    email: str
    ip: str
    until: float

    @property
    def is_slowdown(self) -> bool:
        return self.email == ANY_ACCOUNT

    def retry_after(self, now: float) -> int:
        return max(1, int(self.until - now + 0.999))


def on_lockout(lock: Lock) -> None:
    """Called once when a pair is locked or an address starts being slowed down: staff get a Slack alert."""
    log.warning("sign-in %s: %s from %s", "slowed" if lock.is_slowdown else "locked", lock.email, lock.ip)
    alerts.login_locked(lock)


def _key(*parts: str) -> str:
    # Hashed so any e-mail is a safe key; the readable values live in the lock index.
    return "lockout:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


class Lockout:
    """N failures of an (account, address) pair in a moving window lock the pair for the cool-off; once an
    address has failed `ip_failures` times in the window, each further failure makes every attempt from it
    wait twice as long as the last (1 s, 2 s, 4 s ... up to `ip_max_delay`), then lets it try again."""

    def __init__(self, client: redis.Redis, storage: Storage, policy: LockoutPolicy):
        self.redis = client
        self.windows = MovingWindowRateLimiter(storage)
        self.policy = policy
        self._pair_window = RateLimitItemPerSecond(policy.failures, policy.window, namespace="lockout-pair")
        self._ip_window = RateLimitItemPerSecond(policy.ip_failures, policy.window, namespace="lockout-ip")

    def current_lock(self, email: str, ip: str, now: float) -> Lock | None:
        """The lock or slowdown that refuses this attempt now, if any."""
        for key in (_key("lock", email, ip), _key("lock", ANY_ACCOUNT, ip)):
            raw = self.redis.get(key)
            if raw:
                lock = Lock(**json.loads(raw))
                if lock.until > now:
                    return lock
        return None

    def register_failure(self, email: str, ip: str, now: float) -> Lock | None:
        """Count a failed sign-in; return the lock or slowdown it caused, if any."""
        pair = _key("failures", email, ip)
        self.windows.hit(self._pair_window, pair)
        if not self.windows.test(self._pair_window, pair):
            self.windows.clear(self._pair_window, pair)
            return self._lock(email, ip, now + self.policy.cooloff, self.policy.cooloff)
        address = _key("failures", ANY_ACCOUNT, ip)
        self.windows.hit(self._ip_window, address)
        if self.windows.test(self._ip_window, address):
            return None
        level_key = _key("slowdown", ip)
        level = self.redis.incr(level_key)
        self.redis.expire(level_key, self.policy.window)
        delay = min(self.policy.ip_max_delay, 2 ** min(level - 1, 30))
        return self._lock(ANY_ACCOUNT, ip, now + delay, self.policy.window, alert=level == 1)

    def register_success(self, email: str, ip: str) -> None:
        # An address's slowdown stays: an attacker could otherwise lift it by signing in to their own account.
        self.windows.clear(self._pair_window, _key("failures", email, ip))

    def _lock(self, email: str, ip: str, until: float, keep: int, alert: bool = True) -> Lock:
        lock = Lock(email=email, ip=ip, until=until)
        key = _key("lock", email, ip)
        pipe = self.redis.pipeline()
        pipe.set(key, json.dumps(lock.__dict__), ex=keep + 60)
        pipe.hset(LOCK_INDEX, key, json.dumps(lock.__dict__))
        pipe.execute()
        if alert:
            on_lockout(lock)
        return lock

    def active_locks(self, now: float) -> list[Lock]:
        """Every lock and slowdown in force, soonest to end first."""
        locks = []
        for key, raw in self.redis.hgetall(LOCK_INDEX).items():
            lock = Lock(**json.loads(raw))
            if lock.until > now:
                locks.append(lock)
            else:
                self.redis.hdel(LOCK_INDEX, key)
        return sorted(locks, key=lambda lock: lock.until)

    def locks_for(self, email: str, now: float) -> list[Lock]:
        """The locks in force on this account, from any address."""
        return [lock for lock in self.active_locks(now) if lock.email == email]

    def unlock(self, email: str) -> int:
        """Lift every lock on this account (from any address) and forget its failures; return how many."""
        lifted = 0
        for key, raw in self.redis.hgetall(LOCK_INDEX).items():
            lock = Lock(**json.loads(raw))
            if lock.email == email:
                self.redis.delete(key)
                self.redis.hdel(LOCK_INDEX, key)
                self.windows.clear(self._pair_window, _key("failures", email, lock.ip))
                lifted += 1
        return lifted

    def lift_slowdown(self, ip: str) -> bool:
        """End an address's slowdown and forget its failures; return whether there was one."""
        key = _key("lock", ANY_ACCOUNT, ip)
        found = bool(self.redis.hexists(LOCK_INDEX, key))
        self.redis.delete(key, _key("slowdown", ip))
        self.redis.hdel(LOCK_INDEX, key)
        self.windows.clear(self._ip_window, _key("failures", ANY_ACCOUNT, ip))
        return found


def for_app(app) -> Lockout:
    """The app's lockout: its settings, its Redis, and flask-limiter's storage for the moving windows."""
    config = app.config
    policy = LockoutPolicy(
        failures=config["LOCKOUT_FAILURES"],
        window=config["LOCKOUT_WINDOW"],
        cooloff=config["LOCKOUT_COOLOFF"],
        ip_failures=config["LOCKOUT_IP_FAILURES"],
        ip_max_delay=config["LOCKOUT_IP_MAX_DELAY"],
    )
    return Lockout(app.extensions["redis"], limiter.storage, policy)
