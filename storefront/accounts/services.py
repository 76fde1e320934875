"""Accounts: registration, authentication, password rules and reset tokens, lockout, address book."""

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp
import qrcode
import qrcode.image.svg
import redis
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from storefront.accounts.models import ROLES, Address, LoginAttempt, RecoveryCode, User, new_session_token

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])
# Checked when the e-mail is unknown, so a miss costs the same scrypt time as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password-at-all")


class AccountError(ValueError):
    """A problem the shopper can fix; the message is safe to show."""


# --- e-mail and passwords -------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """The canonical form of an address, or AccountError with a readable reason."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise AccountError(str(error)) from error
    return checked.normalized.lower()


def password_problem(password: str, email: str = "") -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or lowered.strip("0123456789!") in COMMON_PASSWORDS:
        return "That password is too common; choose one that is harder to guess."
    if email and email.split("@")[0] in lowered:
        return "Don't use your e-mail address in your password."
    return None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email))


def register(session: Session, email: str, password: str) -> tuple[User, bool]:
    """Create an unverified account, or return the existing one; the caller answers both the same way."""
    existing = find_user(session, email)
    hashed = hash_password(password)  # hashed either way, so both paths take the same time
    if existing is not None:
        return existing, False
    user = User(email=email, password_hash=hashed, role="customer", session_token=new_session_token())
    session.add(user)
    session.flush()
    return user, True


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user whose password matches, in the same time whether or not the e-mail exists."""
    user = find_user(session, email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def set_password(user: User, password: str) -> None:
    """Change the password and sign out every other session of this account."""
    user.password_hash = hash_password(password)
    user.session_token = new_session_token()


def mark_verified(user: User) -> None:
    if user.email_verified_at is None:
        user.email_verified_at = datetime.now(UTC)


def user_for_login_id(session: Session, login_id: str) -> User | None:
    """The user named by a session cookie's id, if its session token is still current."""
    user_id, _, token = login_id.partition(":")
    if not user_id.isdigit() or not token:
        return None
    user = session.get(User, int(user_id))
    if user is None or user.session_token != token:
        return None
    return user


# --- signed, expiring, single-use links ----------------------------------------------------------


def _serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"storefront.{purpose}")


def _fingerprint(user: User) -> str:
    # Tied to the current password hash: once the password changes, every older link stops working.
    return hashlib.sha256(f"{user.password_hash}|{user.email_verified_at}".encode()).hexdigest()[:16]


def make_token(secret_key: str, purpose: str, user: User) -> str:
    return _serializer(secret_key, purpose).dumps({"uid": user.id, "fp": _fingerprint(user)})


def read_token(session: Session, secret_key: str, purpose: str, token: str, max_age: int) -> User | None:
    """The user a link was made for, if it is genuine, not expired and not used yet."""
    try:
        data = _serializer(secret_key, purpose).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        return None
    user = session.get(User, data["uid"])
    if user is None or data.get("fp") != _fingerprint(user):
        return None
    return user


# --- login attempts and lockout ------------------------------------------------------------------


def record_attempt(session: Session, email: str, ip: str, user_agent: str, outcome: str) -> None:
    session.add(LoginAttempt(email=email[:254], ip=ip[:45], user_agent=user_agent[:255], outcome=outcome))


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5
    window: int = 15 * 60
    cooloff: int = 15 * 60
    ip_failures: int = 50


@dataclass(frozen=True)
class Lock:
    email: str
    ip: str
    until: float

    def retry_after(self, now: float) -> int:
        return max(1, int(self.until - now + 0.999))


def _key(*parts: str) -> str:
    # Hashed so any e-mail is a safe key; the readable values live in the lock index.
    return "lockout:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


LOCK_INDEX = "lockout:index"
ANY_ACCOUNT = "*"


class Lockout:
    """django-axes-style lockout kept in Redis: N failures of an (account, IP) pair in a moving window
    lock that pair for a cool-off; many failures from one IP across accounts lock the IP. Times come from
    the caller, so tests can move the clock; Redis expiry only collects garbage."""

    def __init__(self, client: redis.Redis, policy: LockoutPolicy):
        self.redis = client
        self.policy = policy

    def current_lock(self, email: str, ip: str, now: float) -> Lock | None:
        for key in (_key("lock", email, ip), _key("lock", ANY_ACCOUNT, ip)):
            raw = self.redis.get(key)
            if raw:
                lock = Lock(**json.loads(raw))
                if lock.until > now:
                    return lock
        return None

    def register_failure(self, email: str, ip: str, now: float) -> Lock | None:
        """Count a failed login; return the lock it caused, if any."""
        pair = self._count(_key("failures", email, ip), now)
        per_ip = self._count(_key("failures", ANY_ACCOUNT, ip), now)
        if pair >= self.policy.failures:
            return self._lock(email, ip, now)
        if per_ip >= self.policy.ip_failures:
            return self._lock(ANY_ACCOUNT, ip, now)
        return None

    def register_success(self, email: str, ip: str) -> None:
        self.redis.delete(_key("failures", email, ip))

    def _count(self, key: str, now: float) -> int:
        pipe = self.redis.pipeline()
        pipe.zremrangebyscore(key, "-inf", now - self.policy.window)
        pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
        pipe.zcard(key)
        pipe.expire(key, self.policy.window)
        return pipe.execute()[2]

    def _lock(self, email: str, ip: str, now: float) -> Lock:
        lock = Lock(email=email, ip=ip, until=now + self.policy.cooloff)
        key = _key("lock", email, ip)
        pipe = self.redis.pipeline()
        pipe.set(key, json.dumps(lock.__dict__), ex=self.policy.cooloff + 60)
        pipe.hset(LOCK_INDEX, key, json.dumps(lock.__dict__))
        pipe.delete(_key("failures", email, ip))
        pipe.execute()
        return lock

    def active_locks(self, now: float) -> list[Lock]:
        locks = []
        for key, raw in self.redis.hgetall(LOCK_INDEX).items():
            lock = Lock(**json.loads(raw))
            if lock.until > now:
                locks.append(lock)
            else:
                self.redis.hdel(LOCK_INDEX, key)
        return sorted(locks, key=lambda lock: lock.until)

    def unlock(self, email: str) -> int:
        """Lift every lock on this account (from any IP) and forget its failures; return how many."""
        lifted = 0
        for key, raw in self.redis.hgetall(LOCK_INDEX).items():
            lock = Lock(**json.loads(raw))
            if lock.email == email:
                self.redis.delete(key, _key("failures", email, lock.ip))
                self.redis.hdel(LOCK_INDEX, key)
                lifted += 1
        return lifted


# --- address book --------------------------------------------------------------------------------


ADDRESS_FIELDS = ("full_name", "line1", "line2", "city", "region", "postal_code", "country", "phone")


def addresses(session: Session, user: User) -> list[Address]:
    return list(
        session.scalars(
            select(Address).where(Address.user_id == user.id).order_by(Address.is_default.desc(), Address.id)
        )
    )


def get_address(session: Session, user: User, address_id: int) -> Address | None:
    """The user's own address, never anyone else's."""
    return session.scalar(select(Address).where(Address.id == address_id, Address.user_id == user.id))


def save_address(session: Session, user: User, fields: dict, address: Address | None = None) -> Address:
    if address is None:
        address = Address(user_id=user.id, is_default=not addresses(session, user))
        session.add(address)
    for name in ADDRESS_FIELDS:
        setattr(address, name, (fields.get(name) or "").strip())
    session.flush()
    return address


def make_default(session: Session, user: User, address: Address) -> None:
    for other in addresses(session, user):
        other.is_default = other.id == address.id
    session.flush()


def delete_address(session: Session, user: User, address: Address) -> None:
    was_default = address.is_default
    session.delete(address)
    session.flush()
    remaining = addresses(session, user)
    if was_default and remaining:
        remaining[0].is_default = True


# --- second factor (TOTP) and recovery codes -----------------------------------------------------

RECOVERY_CODES = 10


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(email: str, secret: str, issuer: str = "Storefront") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def totp_qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG (drawn here: no image service sees the secret)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


def totp_step(secret: str, code: str, now: float) -> int | None:
    """The time step a 6-digit code is valid for (allowing one step of clock drift), or None."""
    code = code.replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        at = now + drift * totp.interval
        if hmac.compare_digest(totp.at(at), code):
            return int(at // totp.interval)
    return None


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def enable_totp(session: Session, user: User, secret: str) -> list[str]:
    """Turn the second factor on and return fresh recovery codes (shown once; only hashes are kept)."""
    user.totp_secret = secret
    user.totp_enabled_at = datetime.now(UTC)
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(code)) for code in codes)
    session.flush()
    return codes


def use_recovery_code(session: Session, user: User, code: str) -> bool:
    """Spend one unused recovery code; a used or unknown one is refused."""
    spent = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _recovery_hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=func.now())
    ).rowcount
    return bool(spent)


def recovery_codes_left(session: Session, user: User) -> int:
    return session.scalar(
        select(func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )


# --- staff: customers ---


def _like(text: str) -> str:
    """Typed text matched literally inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_users(session: Session, q: str, page: int, per_page: int = 50) -> tuple[list[User], bool]:
    """Accounts whose e-mail contains `q` (all of them when empty), newest first, and whether there are more."""
    stmt = select(User)
    if q.strip():
        stmt = stmt.where(User.email.ilike(f"%{_like(q.strip().lower())}%", escape="\\"))
    rows = list(
        session.scalars(
            stmt.order_by(User.created_at.desc(), User.id.desc())
            .limit(per_page + 1)
            .offset((page - 1) * per_page)
        )
    )
    return rows[:per_page], len(rows) > per_page


def set_disabled(user: User, disabled: bool) -> None:
    """Disable or enable an account. Either way its session token changes, so every browser and remembered
    cookie signed in as it is signed out at its next request."""
    user.is_disabled = disabled
    user.session_token = new_session_token()


def login_attempts(session: Session, email: str, limit: int = 50) -> list[LoginAttempt]:
    """The latest sign-in attempts with this e-mail, newest first."""
    return list(
        session.scalars(
            select(LoginAttempt)
            .where(LoginAttempt.email == email)
            .order_by(LoginAttempt.created_at.desc(), LoginAttempt.id.desc())
            .limit(limit)
        )
    )


def locks_for(lockout: Lockout, email: str, now: float) -> list[Lock]:
    """The lockouts in force on this account, from any IP."""
    return [lock for lock in lockout.active_locks(now) if lock.email == email]


def lift_ip_lock(lockout: Lockout, ip: str) -> bool:
    """Lift the lock on one IP across all accounts (Lockout.unlock lifts an account's locks)."""
    key = _key("lock", ANY_ACCOUNT, ip)
    found = bool(lockout.redis.hexists(LOCK_INDEX, key))
    lockout.redis.delete(key, _key("failures", ANY_ACCOUNT, ip))
    lockout.redis.hdel(LOCK_INDEX, key)
    return found


# --- staff: accounts and roles ---

STAFF_ROLES = ("staff", "admin")


class StaffRefused(AccountError):
    """A staff change that is not allowed: to one's own account, or one that would leave no admin."""


def make_staff(session: Session, email: str, role: str, password: str | None = None) -> tuple[User, bool]:
    """Give the account with this e-mail a staff role, creating it if there is none; returns it and whether
    it is new. Without a password a new account gets an unknown random one, so the only way in is a
    password-reset link. `flask create-staff` and the admin's staff page both come through here."""
    if role not in STAFF_ROLES:
        raise AccountError(f"The role must be one of: {', '.join(STAFF_ROLES)}.")
    address = normalize_email(email)
    if password is not None:
        problem = password_problem(password, address)
        if problem:
            raise AccountError(problem)
    user, created = register(session, address, password or secrets.token_urlsafe(32))
    if password is not None and not created:
        set_password(user, password)
    user.role = role
    mark_verified(user)
    session.flush()
    return user, created


def staff_members(session: Session) -> list[tuple[User, datetime | None]]:
    """Every staff and admin account by e-mail, each with its last recorded successful sign-in (or None)."""
    users = list(session.scalars(select(User).where(User.role.in_(STAFF_ROLES)).order_by(User.email)))
    if not users:
        return []
    last = dict(
        session.execute(
            select(LoginAttempt.email, func.max(LoginAttempt.created_at))
            .where(LoginAttempt.email.in_([user.email for user in users]), LoginAttempt.outcome == "success")
            .group_by(LoginAttempt.email)
        )
        .tuples()
        .all()
    )
    return [(user, last.get(user.email)) for user in users]


def _refuse_staff_change(session: Session, actor: User, user: User, removes_admin: bool) -> None:
    """Raise StaffRefused for a change to one's own account, or for taking away the last enabled admin.

    Every enabled admin's row is locked (in id order) until the commit, so two admins who demote each
    other at the same moment take turns, and the second one sees that the first is no longer an admin.
    """
    if user.id == actor.id:
        raise StaffRefused("You cannot change your own role or access. Ask another admin.")
    if not removes_admin:
        return
    admins = list(
        session.scalars(
            select(User.id)
            .where(User.role == "admin", User.is_disabled.is_(False))
            .order_by(User.id)
            .with_for_update()
        )
    )
    if admins == [user.id]:
        raise StaffRefused(f"{user.email} is the last admin. Make someone else an admin first.")


def clear_second_factor(session: Session, user: User) -> None:
    """Turn the second factor off and delete its recovery codes, so the account must enrol again; every
    session of it is signed out (the authenticator may be lost, or in the wrong hands)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.session_token = new_session_token()
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def change_role(session: Session, actor: User, user: User, role: str) -> None:
    """Make a staff member staff, admin or a customer again. A customer keeps no second factor: it is
    a staff feature, and sign-in would otherwise end on the admin they can no longer enter."""
    if role not in ROLES:
        raise AccountError(f"The role must be one of: {', '.join(ROLES)}.")
    if user.role == role:
        raise StaffRefused(f"{user.email} is already {role}.")
    _refuse_staff_change(session, actor, user, removes_admin=user.role == "admin")
    user.role = role
    if role == "customer" and user.totp_enabled_at is not None:
        clear_second_factor(session, user)
    session.flush()


def set_staff_disabled(session: Session, actor: User, user: User, disabled: bool) -> None:
    """Disable or enable a staff account (signed out everywhere either way), never one's own or the last
    admin."""
    if user.is_disabled == disabled:
        raise StaffRefused(f"{user.email} is already {'disabled' if disabled else 'enabled'}.")
    _refuse_staff_change(session, actor, user, removes_admin=disabled and user.role == "admin")
    set_disabled(user, disabled)
    session.flush()


def reset_second_factor(session: Session, actor: User, user: User) -> None:
    """Clear another staff member's second factor (a lost phone): they enrol again at their next visit."""
    if user.id == actor.id:
        raise StaffRefused("To replace your own authenticator, use Two-step sign-in.")
    if user.totp_enabled_at is None:
        raise StaffRefused(f"{user.email} has not set up two-step sign-in.")
    clear_second_factor(session, user)
    session.flush()


# --- accounts by e-mail, in bulk (feature flags list accounts) ------------------------------------


def ids_for_emails(session: Session, emails: list[str]) -> tuple[list[int], list[str]]:
    """The account ids of these e-mails, and the e-mails that name no account."""
    wanted = {email.strip().lower() for email in emails if email.strip()}
    if not wanted:
        return [], []
    found = dict(session.execute(select(User.email, User.id).where(User.email.in_(wanted))).all())
    return sorted(found.values()), sorted(wanted - found.keys())


def emails_for(session: Session, ids: list[int]) -> list[str]:
    """The e-mails of these account ids (ids of removed accounts are left out)."""
    if not ids:
        return []
    return list(session.scalars(select(User.email).where(User.id.in_(ids)).order_by(User.email)))
