"""The waiting room: a FIFO line in Redis in front of checkout during a drop, and the drop's switch.

Every visit runs one Lua script that first lets people in (admissions that expired or places abandoned
pass on; then up to `rate` a second while fewer than `cap` are in checkout), then joins or finds the
shopper's place. Time is the caller's `now` (storefront.extensions.clock), so tests move it, and every
web process agrees on one line because the line is only in Redis.

Whether a variant is gated at all is read from PostgreSQL (the sales in drop mode) and Redis (the staff's
override) at most once per WAITING_ROOM_CACHE_SECONDS per process, and again at the next start or end of a
drop: with no drop running, add to cart and place order cost no Redis round trip for it.
"""

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.catalog.models import Sale, SaleItem
from storefront.flags import services as feature_flags
from storefront.waitingroom.models import DropMode

PREFIX = "wr:"
CONFIG = PREFIX + "config"
MODES = ("auto", "on", "off")  # auto: the sales' drop mode decides; on/off: staff override
RATE_WINDOW = 60.0  # seconds of departures from checkout the measured pace looks back over
MAX_RATE = Decimal("10000")
MAX_CAP = 1_000_000
FLAG = "waiting_room"  # the feature flag of the waiting room (storefront/flags)
DROP_FLAGS = (FLAG, "live_stock")  # what a new drop mode turns on
# The room is one line for everyone: its flag is read as for no one in particular (on for everyone or not).
_NOBODY = SimpleNamespace(is_authenticated=False)


class WaitingRoomError(ValueError):
    """A setting out of range, said so a staff member can fix it."""


@dataclass(frozen=True)
class Settings:
    """The staff override kept in Redis (mode, and rate/cap for mode "on")."""

    mode: str = "auto"
    rate: Decimal | None = None
    cap: int | None = None


@dataclass(frozen=True)
class DropState:
    """What this process believes is switched on, and until when it may believe it."""

    on: bool = False
    rate: Decimal = Decimal("1")
    cap: int = 1
    gated: frozenset[int] = frozenset()  # variants whose checkout needs an admission now
    drop_variants: frozenset[int] = frozenset()  # variants of sales in drop mode now (live stock)
    drop_sales: tuple[int, ...] = ()
    checkout_limit: str = ""
    flags: frozenset[str] = frozenset()
    mode: str = "auto"
    redis_ok: bool = True
    valid_until: float = 0.0


@dataclass(frozen=True)
class Place:
    """A shopper's place: waiting at `position` (1 is next), or admitted until `admitted_until`."""

    ticket: str
    position: int | None
    admitted_until: float | None
    waiting: int
    in_checkout: int
    admit_rate: float  # how fast the line moves now, shoppers a second (0: not known yet)
    basis: str  # "rate": the admit rate, checkout has room; "checkout": as fast as shoppers leave checkout

    @property
    def admitted(self) -> bool:
        return self.admitted_until is not None

    @property
    def eta_seconds(self) -> float | None:
        if self.position is None or self.admit_rate <= 0:
            return None
        return self.position / self.admit_rate


@dataclass(frozen=True)
class Status:
    """The numbers `waiting-room status` prints."""

    on: bool
    mode: str
    rate: Decimal
    cap: int
    waiting: int
    admitted: int  # shoppers let in since the line was last cleared
    in_checkout: int
    drop_sales: tuple[int, ...] = field(default=())

    def as_dict(self) -> dict:
        return {
            "on": self.on,
            "mode": self.mode,
            "rate": float(self.rate),
            "cap": self.cap,
            "waiting": self.waiting,
            "admitted": self.admitted,
            "in_checkout": self.in_checkout,
        }


# --- identities: one place per session, account, e-mail and shipping address ----------------------------


def _digest(kind: str, value: str) -> str:
    # Hashed, so the line in Redis holds no e-mail address or street in clear.
    return f"{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def session_identity(token: str) -> str:
    return _digest("s", token)


def account_identity(user_id: int) -> str:
    return _digest("u", str(user_id))


def email_identity(email: str) -> str:
    return _digest("e", email.strip().lower())


def address_identity(line1: str, line2: str, postal_code: str, country: str) -> str:
    """The same street however it is spaced, cased or punctuated."""
    squeezed = [re.sub(r"[\W_]+", "", part.lower()) for part in (line1, line2, postal_code, country)]
    return _digest("a", "|".join(squeezed))


def new_session_token() -> str:
    return secrets.token_urlsafe(16)


# --- the line, in Redis ----------------------------------------------------------------------------------

# KEYS: queue seen admitted done seq total bucket since
# ARGV: now rate cap admission_ttl abandon_after window mode(join|look) then identity keys
_VISIT = """
local queue, seen, admitted, done, seq, total, bucket, since =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local now, rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, abandon, window, mode = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local prefix = ARGV[8]

local function forget(ticket)
  local ids = redis.call('hget', prefix .. 't:' .. ticket, 'ids')
  if ids then
    for id in string.gmatch(ids, '%S+') do
      if redis.call('get', prefix .. 'id:' .. id) == ticket then redis.call('del', prefix .. 'id:' .. id) end
    end
  end
  redis.call('del', prefix .. 't:' .. ticket)
end

-- 1. admissions not used in time, and places whose shopper stopped coming back, pass on
for _, ticket in ipairs(redis.call('zrangebyscore', admitted, '-inf', now, 'limit', 0, 200)) do
  redis.call('zrem', admitted, ticket)
  redis.call('zadd', done, now, ticket)
  forget(ticket)
end
for _, ticket in ipairs(redis.call('zrangebyscore', seen, '-inf', now - abandon, 'limit', 0, 200)) do
  redis.call('zrem', seen, ticket)
  redis.call('zrem', queue, ticket)
  forget(ticket)
end

-- 2. the shopper's place: the one any of their identities already holds, or a new one at the back
local function alive(t)
  return redis.call('zscore', queue, t) or redis.call('zscore', admitted, t)
end
local ticket = false
local idx = 9
for i = idx, #ARGV do
  local held = redis.call('get', prefix .. 'id:' .. ARGV[i])
  if held and alive(held) then
    ticket = held
    break
  end
end
if not ticket and mode == 'join' and #ARGV >= idx then
  ticket = 't' .. redis.call('incr', seq)
  redis.call('zadd', queue, redis.call('get', seq), ticket)
  redis.call('hset', prefix .. 't:' .. ticket, 'joined_at', ARGV[1])
end
if ticket then
  local ids = redis.call('hget', prefix .. 't:' .. ticket, 'ids') or ''
  for i = idx, #ARGV do
    local key = prefix .. 'id:' .. ARGV[i]
    local held = redis.call('get', key)
    if not held or (held ~= ticket and not alive(held)) then
      redis.call('set', key, ticket, 'ex', 86400)
      ids = ids .. ' ' .. ARGV[i]
    end
  end
  redis.call('hset', prefix .. 't:' .. ticket, 'ids', ids)
  if redis.call('zscore', queue, ticket) then redis.call('zadd', seen, now, ticket) end
end

-- 3. let people in: a token bucket refilled at `rate` a second (one second's worth at most, full at first), while
--    fewer than `cap` are in checkout
redis.call('setnx', since, ARGV[1])
local burst = math.max(1, rate)
local tokens = tonumber(redis.call('hget', bucket, 'tokens') or tostring(burst))
local last = tonumber(redis.call('hget', bucket, 'ts') or ARGV[1])
-- the epsilon: clock seconds near 1.7e9 keep only microseconds, so one second is 0.9999998 of one
tokens = math.min(burst, tokens + math.max(0, now - last) * rate + 1e-6)
local in_checkout = redis.call('zcard', admitted)
while tokens >= 1 and in_checkout < cap do
  local head = redis.call('zpopmin', queue)
  if #head == 0 then break end
  redis.call('zrem', seen, head[1])
  redis.call('zadd', admitted, now + ttl, head[1])
  redis.call('hset', prefix .. 't:' .. head[1], 'admitted_at', ARGV[1])
  redis.call('incr', total)
  tokens = tokens - 1
  in_checkout = in_checkout + 1
end
redis.call('hset', bucket, 'tokens', tostring(tokens), 'ts', ARGV[1])
redis.call('zremrangebyscore', done, '-inf', now - window)

-- 4. where the shopper stands, and how fast the line moves
local position, expiry = false, false
if ticket then
  local rank = redis.call('zrank', queue, ticket)
  if rank then position = rank + 1 end
  expiry = redis.call('zscore', admitted, ticket)
end
-- The line moves at the admit rate while checkout has room; once it is full, at the rate shoppers leave
-- checkout (orders placed, admissions expired), measured since the line began, over the last minute at most.
local pace, basis = rate, 'rate'
if in_checkout >= cap then
  local left = redis.call('zcard', done)
  local span = math.min(window, math.max(1, now - tonumber(redis.call('get', since))))
  pace, basis = math.min(rate, left / span), 'checkout'
end
return {ticket or '', position or -1, expiry or '', redis.call('zcard', queue), in_checkout,
        tostring(pace), basis}
"""

# KEYS: admitted  ARGV: now ticket prefix then identity keys.  Returns 1 if the admission holds and every
# identity is the ticket's own (claimed now if free); 0 if not admitted; -1 if an identity holds another place.
_CLAIM = """
local admitted, now, ticket, prefix = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3]
local expiry = tonumber(redis.call('zscore', admitted, ticket) or '0')
if expiry <= now then return 0 end
for i = 4, #ARGV do
  local held = redis.call('get', prefix .. 'id:' .. ARGV[i])
  if held and held ~= ticket and (redis.call('zscore', admitted, held)
      or redis.call('zscore', prefix .. 'queue', held)) then
    return -1
  end
end
local ids = redis.call('hget', prefix .. 't:' .. ticket, 'ids') or ''
for i = 4, #ARGV do
  redis.call('set', prefix .. 'id:' .. ARGV[i], ticket, 'ex', 86400)
  ids = ids .. ' ' .. ARGV[i]
end
redis.call('hset', prefix .. 't:' .. ticket, 'ids', ids)
return 1
"""

# KEYS: admitted done  ARGV: ticket prefix now.  The admission is used up: the shopper has left checkout.
_CONSUME = """
if redis.call('zrem', KEYS[1], ARGV[1]) == 1 then redis.call('zadd', KEYS[2], ARGV[3], ARGV[1]) end
local ids = redis.call('hget', ARGV[2] .. 't:' .. ARGV[1], 'ids')
if ids then
  for id in string.gmatch(ids, '%S+') do
    if redis.call('get', ARGV[2] .. 'id:' .. id) == ARGV[1] then redis.call('del', ARGV[2] .. 'id:' .. id) end
  end
end
redis.call('del', ARGV[2] .. 't:' .. ARGV[1])
return 1
"""

_KEYS = [PREFIX + name for name in ("queue", "seen", "admitted", "done", "seq", "total", "bucket", "since")]


def _script(client: redis.Redis, source: str):
    # register_script keeps the SHA and falls back to EVAL once after a SCRIPT FLUSH or a restart.
    scripts = getattr(client, "_waitingroom_scripts", None)
    if scripts is None:
        scripts = {}
        client._waitingroom_scripts = scripts
    if source not in scripts:
        scripts[source] = client.register_script(source)
    return scripts[source]


def visit(
    client: redis.Redis,
    now: float,
    state: DropState,
    identities: list[str],
    admission_ttl: float,
    abandon_after: float,
    join: bool = True,
) -> Place:
    """Let due shoppers in, then find (or, with `join`, make) the place these identities hold."""
    ticket, position, until, waiting, in_checkout, pace, basis = _script(client, _VISIT)(
        keys=_KEYS,
        args=[
            now,
            float(state.rate),
            state.cap,
            admission_ttl,
            abandon_after,
            RATE_WINDOW,
            "join" if join else "look",
            PREFIX,
            *identities,
        ],
    )
    return Place(
        ticket=ticket.decode() if isinstance(ticket, bytes) else ticket,
        position=int(position) if int(position) > 0 else None,
        admitted_until=float(until) if until else None,
        waiting=int(waiting),
        in_checkout=int(in_checkout),
        admit_rate=float(pace),
        basis=basis.decode() if isinstance(basis, bytes) else basis,
    )


def claim(client: redis.Redis, now: float, ticket: str, identities: list[str]) -> int:
    """1: the admission holds and binds these identities; 0: not admitted (any more); -1: one of the
    identities (an e-mail, an address) already holds another shopper's place."""
    return int(_script(client, _CLAIM)(keys=[PREFIX + "admitted"], args=[now, ticket, PREFIX, *identities]))


def consume(client: redis.Redis, now: float, ticket: str) -> None:
    """The order is placed: the admission is used up and its place in checkout goes to the next shopper."""
    _script(client, _CONSUME)(keys=[PREFIX + "admitted", PREFIX + "done"], args=[ticket, PREFIX, now])


def clear(client: redis.Redis) -> None:
    """Empty the line, the admissions and the measurements (the settings stay)."""
    keys = list(client.scan_iter(match=PREFIX + "*", count=1000))
    keys = [key for key in keys if key not in (CONFIG, CONFIG.encode())]
    if keys:
        client.delete(*keys)


def counts(client: redis.Redis, now: float) -> tuple[int, int, int]:
    """(waiting, admitted so far, in checkout now) without letting anyone in."""
    with client.pipeline(transaction=False) as pipe:
        pipe.zcard(PREFIX + "queue")
        pipe.get(PREFIX + "total")
        pipe.zcount(PREFIX + "admitted", f"({now}", "+inf")
        waiting, total, in_checkout = pipe.execute()
    return int(waiting), int(total or 0), int(in_checkout)


# --- settings and the drop switch ------------------------------------------------------------------------


def read_settings(client: redis.Redis) -> Settings:
    """The staff override, or the default (auto) when none was ever set."""
    raw = client.get(CONFIG)
    if not raw:
        return Settings()
    values = json.loads(raw)
    rate = values.get("rate")
    return Settings(values.get("mode", "auto"), Decimal(rate) if rate else None, values.get("cap"))


def checked_rate(value) -> Decimal:
    """An admit rate from text or a number: shoppers a second, more than 0, at most 10000."""
    try:
        rate = Decimal(str(value)).quantize(Decimal("0.01"))
    except ArithmeticError as error:
        raise WaitingRoomError(f"“{value}” is not a number of shoppers a second.") from error
    if not rate.is_finite() or rate <= 0 or rate > MAX_RATE:
        raise WaitingRoomError("The admit rate must be more than 0 and at most 10000 shoppers a second.")
    return rate


def checked_cap(value) -> int:
    """A cap on shoppers in checkout at once: a whole number from 1 to 1,000,000."""
    try:
        cap = int(str(value))
    except ValueError as error:
        raise WaitingRoomError(f"“{value}” is not a whole number.") from error
    if not 1 <= cap <= MAX_CAP:
        raise WaitingRoomError("The cap must be from 1 to 1000000 shoppers.")
    return cap


def write_settings(client: redis.Redis, mode: str, rate=None, cap=None) -> Settings:
    """Set the override: "on" with a rate (and cap), "off", or "auto" (the sales decide)."""
    if mode not in MODES:
        raise WaitingRoomError(f"The mode must be one of {', '.join(MODES)}.")
    settings = Settings(
        mode,
        checked_rate(rate) if rate is not None else None,
        checked_cap(cap) if cap is not None else None,
    )
    if mode == "on" and settings.rate is None:
        raise WaitingRoomError("Turning the waiting room on needs an admit rate.")
    client.set(
        CONFIG,
        json.dumps(
            {"mode": mode, "rate": str(settings.rate) if settings.rate else None, "cap": settings.cap}
        ),
    )
    return settings


def moment(now: float) -> datetime:
    """Clock seconds as an aware UTC datetime, as the sales' columns hold them."""
    return datetime.fromtimestamp(now, UTC)


def drops_now(session: Session, now: float) -> list[tuple[Sale, DropMode, list[int]]]:
    """Sales in drop mode that are running at `now`, with their variants."""
    at = moment(now)
    rows = session.execute(
        select(Sale, DropMode)
        .join(DropMode, DropMode.sale_id == Sale.id)
        .where(Sale.starts_at <= at, Sale.ends_at > at)
        .order_by(Sale.id)
    ).all()
    variants: dict[int, list[int]] = {sale.id: [] for sale, _ in rows}
    if rows:
        for sale_id, variant_id in session.execute(
            select(SaleItem.sale_id, SaleItem.variant_id).where(SaleItem.sale_id.in_(list(variants)))
        ):
            variants[sale_id].append(variant_id)
    return [(sale, mode, variants[sale.id]) for sale, mode in rows]


def _next_change(session: Session, now: float) -> float | None:
    """The next start or end of a sale in drop mode, when the state must be read again."""
    at = moment(now)
    boundary = session.scalar(
        select(Sale.starts_at)
        .join(DropMode, DropMode.sale_id == Sale.id)
        .where(Sale.starts_at > at)
        .order_by(Sale.starts_at)
        .limit(1)
    )
    ending = session.scalar(
        select(Sale.ends_at)
        .join(DropMode, DropMode.sale_id == Sale.id)
        .where(Sale.ends_at > at)
        .order_by(Sale.ends_at)
        .limit(1)
    )
    times = [t.timestamp() for t in (boundary, ending) if t is not None]
    return min(times) if times else None


def _running_sale_variants(session: Session, now: float) -> set[int]:
    at = moment(now)
    return set(
        session.scalars(select(SaleItem.variant_id).join(Sale).where(Sale.starts_at <= at, Sale.ends_at > at))
    )


def compute_state(
    session: Session, client: redis.Redis, now: float, cache_seconds: float, room_flag: bool | None = None
) -> DropState:
    """Read the drops running now and the staff override into one state, valid until the next change.

    A drop runs the waiting room if its flags list `waiting_room` (new drop modes do), or if that feature
    flag is on by itself (`room_flag`). Redis unreachable: those drops still gate their variants (the room
    fails closed); nothing else is gated.
    """
    if room_flag is None:
        room_flag = feature_flags.flag_active(FLAG, user=_NOBODY)
    drops = drops_now(session, now)
    drop_variants = frozenset(v for _, _, variants in drops for v in variants)
    change = _next_change(session, now)
    valid_until = now + cache_seconds if change is None else min(now + cache_seconds, change)
    try:
        settings = read_settings(client)
        redis_ok = True
    except redis.RedisError:
        settings, redis_ok = Settings(), False
        valid_until = min(valid_until, now + 1)
    rates = [mode.admit_rate for _, mode, _ in drops]
    caps = [mode.checkout_cap for _, mode, _ in drops]
    limits = [mode.checkout_limit for _, mode, _ in drops if mode.checkout_limit]
    flags = frozenset(flag for _, mode, _ in drops for flag in (mode.flags or []))
    if settings.mode == "on":
        gated = frozenset(_running_sale_variants(session, now)) | drop_variants
        on = True
    elif settings.mode == "off":
        gated, on = frozenset(), False
    else:
        queued = [
            v for _, mode, variants in drops if room_flag or FLAG in (mode.flags or []) for v in variants
        ]
        gated, on = frozenset(queued), bool(queued)
    return DropState(
        on=on,
        # Overlapping drops: the tightest of their settings; the override's own where staff gave one.
        rate=settings.rate or (min(rates) if rates else Decimal("1")),
        cap=settings.cap or (min(caps) if caps else MAX_CAP),
        gated=gated if on else frozenset(),
        drop_variants=drop_variants,
        drop_sales=tuple(sale.id for sale, _, _ in drops),
        checkout_limit=min(limits, key=_per_second) if limits else "",
        flags=flags,
        mode=settings.mode,
        redis_ok=redis_ok,
        valid_until=valid_until,
    )


_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _per_second(limit: str) -> float:
    """How tight a checked limit is ("3/minute" → 0.05), to pick the tightest of several."""
    count, _, unit = limit.partition("/")
    return int(count) / _PERIODS[unit]


def checked_limit(text: str) -> str:
    """A checkout limit such as "3/minute" or "10/hour"; empty for none."""
    text = text.strip()
    if not text:
        return ""
    if not re.fullmatch(r"[1-9][0-9]{0,5}/(second|minute|hour|day)", text):
        raise WaitingRoomError("Write the checkout limit like “3/minute” (per second, minute, hour or day).")
    return text


def set_drop_mode(
    session: Session, sale: Sale, rate, cap, checkout_limit: str = "", flags: list[str] | None = None
) -> tuple[dict, dict]:
    """Put a sale in drop mode or change its settings; returns (before, after) for the audit log."""
    row = session.get(DropMode, sale.id)
    before = _drop_values(row)
    if row is None:
        row = DropMode(sale_id=sale.id)
        session.add(row)
    row.admit_rate = checked_rate(rate)
    row.checkout_cap = checked_cap(cap)
    row.checkout_limit = checked_limit(checkout_limit)
    row.flags = sorted({flag.strip() for flag in (DROP_FLAGS if flags is None else flags) if flag.strip()})
    for flag in row.flags:
        if not re.fullmatch(r"[a-z0-9_]{1,64}", flag):
            raise WaitingRoomError(f"“{flag}” is not a flag name (lower case, digits and _).")
    session.flush()
    return before, _drop_values(row)


def clear_drop_mode(session: Session, sale: Sale) -> dict:
    """Take a sale out of drop mode; returns what it was, for the audit log."""
    row = session.get(DropMode, sale.id)
    before = _drop_values(row)
    if row is not None:
        session.delete(row)
        session.flush()
    return before


def drop_modes(session: Session, sale_ids: list[int]) -> dict[int, DropMode]:
    """The drop mode of each of these sales that has one."""
    if not sale_ids:
        return {}
    return {
        row.sale_id: row for row in session.scalars(select(DropMode).where(DropMode.sale_id.in_(sale_ids)))
    }


def _drop_values(row: DropMode | None) -> dict:
    if row is None:
        return {"drop_mode": False}
    return {
        "drop_mode": True,
        "admit_rate": str(row.admit_rate),
        "checkout_cap": row.checkout_cap,
        "checkout_limit": row.checkout_limit,
        "flags": ", ".join(row.flags or []),
    }


def sales_to_show(session: Session, now: float, limit: int = 50) -> list[Sale]:
    """Sales that are running or coming up, soonest first, for the waiting room's admin page."""
    at = moment(now)
    return list(
        session.scalars(select(Sale).where(Sale.ends_at > at).order_by(Sale.starts_at, Sale.id).limit(limit))
    )


class StateCache:
    """The drop state shared by a process's requests until it is due again (thread-safe: gthread workers)."""

    def __init__(self) -> None:
        self._state: DropState | None = None
        self._lock = threading.Lock()

    def get(self, now: float, load) -> DropState:
        state = self._state
        if state is not None and now < state.valid_until:
            return state
        with self._lock:
            state = self._state
            if state is None or now >= state.valid_until:
                state = self._state = load()
        return state

    def forget(self) -> None:
        self._state = None


def status(session: Session, client: redis.Redis, now: float) -> Status:
    """The room as it stands: read fresh, not from any process's cache."""
    state = compute_state(session, client, now, 0)
    waiting, admitted, in_checkout = counts(client, now)
    return Status(
        on=state.on,
        mode=state.mode,
        rate=state.rate,
        cap=state.cap,
        waiting=waiting,
        admitted=admitted,
        in_checkout=in_checkout,
        drop_sales=state.drop_sales,
    )
