"""Sign-in machinery for the review app: sessions, CSRF tokens and the login rate limit.

Sessions are random opaque ids (256 bits) in a cookie, looked up in a table held in memory: nothing in
the cookie means anything by itself, a restart signs everyone out, and an idle session expires. The
session holds the user's *name* only; the app looks the user up again on every request, so a role change
or a removal takes effect at once.

CSRF: every POST carries a token. A signed-in session has its own random token; the login form, which has
no session yet, gets a token bound to a random pre-login cookie by an HMAC under a key made at start-up.
The session cookie is also ``SameSite=Strict``, so a cross-site form would not carry it anyway: the token
is the second lock, not the only one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "bleepline_session"
LOGIN_COOKIE = "bleepline_login"
CSRF_FIELD = "csrf"
#: What ``secrets.token_urlsafe(32)`` makes: 43 characters of the URL-safe base64 alphabet.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_TOKEN_LENGTH = 43
#: Bounds on what memory a flood of logins can take: sessions and rate-limit buckets alike.
MAX_SESSIONS = 10_000
MAX_BUCKETS = 10_000

Clock = Callable[[], float]


def new_token() -> str:
    return secrets.token_urlsafe(32)


def well_formed_token(value: str | None) -> bool:
    """Whether a cookie or form value could be one of our tokens: anything else is not looked up."""
    return value is not None and len(value) == _TOKEN_LENGTH and set(value) <= _TOKEN_CHARS


def tokens_match(given: str | None, expected: str) -> bool:
    # Constant time: how much of a guess was right must not show in how long the answer takes.
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


@dataclass
class Session:
    """One signed-in browser. ``played`` holds the calls whose audio this session has been given since it
    last opened their page: the app writes one PLAY record per call page opened, not one per range."""

    id: str
    user: str
    csrf: str
    last_seen: float
    played: set[str] = field(default_factory=set)


class SessionTable:
    """The signed-in sessions, in memory, each ending after ``timeout_s`` without a request."""

    def __init__(self, timeout_s: float, clock: Clock = time.monotonic, limit: int = MAX_SESSIONS) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._limit = limit
        # Ordered by last use, oldest first: expiry and eviction look only at the front.
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str) -> Session:
        self._expire()
        while len(self._sessions) >= self._limit:
            self._sessions.popitem(last=False)  # the longest idle goes first
        session = Session(new_token(), user, new_token(), self._clock())
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, its idle clock restarted; None for unknown or expired ids."""
        if not well_formed_token(session_id):
            return None
        assert session_id is not None
        self._expire()
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = self._clock()
            self._sessions.move_to_end(session_id)
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def end_user(self, user: str) -> int:
        """End every session of ``user`` (removed, or given another role); returns how many."""
        ids = [sid for sid, session in self._sessions.items() if session.user == user]
        for sid in ids:
            del self._sessions[sid]
        return len(ids)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        deadline = self._clock() - self.timeout_s
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_seen > deadline:
                break
            self._sessions.popitem(last=False)


class LoginCsrf:
    """Tokens for the login form: an HMAC of the pre-login cookie under a key that lives in memory."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def token_for(self, login_cookie: str) -> str:
        digest = hmac.new(self._key, b"login\0" + login_cookie.encode(), hashlib.sha256).digest()
        return digest.hex()

    def check(self, login_cookie: str | None, given: str | None) -> bool:
        if not well_formed_token(login_cookie):
            return False
        assert login_cookie is not None
        return tokens_match(given, self.token_for(login_cookie))


class LoginLimiter:
    """At most ``attempts`` failed logins per ``window_s`` from one address, and the same for one user
    name from anywhere: the first stops one machine guessing many names, the second many machines
    guessing one. A blocked key is refused before its password is even checked."""

    def __init__(self, attempts: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def _keys(address: str, name: str) -> tuple[str, str]:
        # The name as typed, cut short: an unknown name still has a bucket, so spraying names that do
        # not exist is limited like guessing ones that do. Kept in memory only, never logged.
        return f"addr:{address}", f"user:{name[:64].lower()}"

    def blocked(self, address: str, name: str) -> bool:
        now = self._clock()
        return any(self._recent(key, now) >= self.attempts for key in self._keys(address, name))

    def failed(self, address: str, name: str) -> None:
        now = self._clock()
        for key in self._keys(address, name):
            self._recent(key, now)
            bucket = self._failures.setdefault(key, deque())
            bucket.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_BUCKETS:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        """A right password clears the name's count (not the address's: signing in to one's own
        account must not reset a count run up guessing at others')."""
        self._failures.pop(self._keys("", name)[1], None)

    def _recent(self, key: str, now: float) -> int:
        bucket = self._failures.get(key)
        if bucket is None:
            return 0
        while bucket and bucket[0] <= now - self.window_s:
            bucket.popleft()
        if not bucket:
            del self._failures[key]
            return 0
        return len(bucket)
