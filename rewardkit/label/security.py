"""Passwords (Argon2id through argon2-cffi), CSRF tokens and the login rate limit.

CSRF: each session holds a random token; every form carries it in a hidden field and every JSON request in the
`X-CSRF-Token` header, and a POST without the session's token is refused (403). Session cookies are also
SameSite=Strict, so a browser does not send them on requests that other sites start.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rewardkit.errors import RewardkitError

MIN_PASSWORD = 8
# OWASP's recommended Argon2id setting (19 MiB, 2 passes, 1 lane): a login costs tens of milliseconds, so twenty
# people logging in at once do not stall a small server. Hashes carry their parameters; old ones still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the name is unknown, so that a wrong name and a wrong password take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    check_new_password(password)
    return _hasher.hash(password)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise RewardkitError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise RewardkitError("a password may have at most 1024 characters")


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password[:1024]) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# ------------------------------------------------------------------------------------------------- CSRF
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def csrf_token(session: dict) -> str:
    """The session's CSRF token, made on first use."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def csrf_ok(session: dict, sent: str | None) -> bool:
    expected = session.get(CSRF_FIELD)
    return bool(expected) and isinstance(sent, str) and hmac.compare_digest(expected.encode(), sent.encode())


# ------------------------------------------------------------------------------------------------- rate limit
class LoginLimiter:
    """At most `max_failures` failed logins per key (an account name, a client address) within `window` seconds;
    then that key must wait until its oldest failure leaves the window. In memory: one server process."""

    def __init__(self, max_failures: int = 5, window: float = 300.0):
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, key: str) -> float:
        """Seconds until a login for this key may be tried again; 0 when it may be tried now."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(key, now)
            return failures[0] + self.window - now if len(failures) >= self.max_failures else 0.0

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
