"""The review web app (aiohttp): sign in, list calls, read a redacted transcript while the audio plays.

Every handler checks the role (``can``) and, for one call, the user's scope (``may_open``). Answers:

- not signed in: pages redirect to ``/login``; the audio URL answers 401;
- signed in, but the role may not do this at all: 403;
- a call the user may not open: **404, the same as a call that does not exist**, so an outsourced
  reviewer cannot learn which ids exist outside their queue. Ids that are not plain names (traversal,
  NUL, over-long) are 404 before any file is touched.

Audited (``bleepline.review.audit``): every sign-in (ok, failed, refused by the rate limit), sign-out,
call page opened (VIEW), audio played (PLAY and DECRYPT, once for each time a session opens the call's
page, not once per range request), audit trail read (AUDIT_VIEW) and user change (USER_CHANGE). When
the trail cannot be written the action does not happen (fail closed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

from aiohttp import web

from bleepline.commands.keys import open_identity
from bleepline.review import pages
from bleepline.review.audio import DecryptedWav, RangeNotSatisfiableError, parse_range
from bleepline.review.audit import AuditError, AuditEvent, AuditLog, verify
from bleepline.review.catalog import (
    CallEntry,
    Catalog,
    CatalogError,
    TagStore,
    TranscriptUnavailable,
    is_call_id,
)
from bleepline.review.config import ReviewConfig
from bleepline.review.users import Action, User, UserError, UserStore, can
from bleepline.review.web_analytics import aggregate
from bleepline.review.web_auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Clock,
    LoginCsrf,
    LoginLimiter,
    Session,
    SessionTable,
    new_token,
    tokens_match,
    well_formed_token,
)
from bleepline.store.errors import NotARecipientError, RecordingIntegrityError, StoreError
from bleepline.store.keys import Identity

log = logging.getLogger(__name__)

#: Largest request body: a sign-in or user form is well under a kilobyte.
MAX_BODY_BYTES = 16 * 1024
#: How many audit records the trail page shows, newest first.
AUDIT_PAGE_RECORDS = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_STATIC_TYPES = {"review.js": "text/javascript", "review.css": "text/css"}
_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOST_SECONDS = 10_000_000.0


@dataclass
class ReviewState:
    """What the handlers share: the stores, the sessions, and the key that opens recordings."""

    config: ReviewConfig
    users: UserStore
    catalog: Catalog
    audit: AuditLog
    sessions: SessionTable
    limiter: LoginLimiter
    login_csrf: LoginCsrf
    identity: Identity | None
    static: Mapping[str, bytes]


STATE = web.AppKey("review", ReviewState)


@dataclass(frozen=True)
class Visit:
    """A signed-in request: the session and the user as the user store says now."""

    session: Session
    user: User

    @property
    def viewer(self) -> pages.Viewer:
        return pages.Viewer(self.user, self.session.csrf)


_VISIT = web.RequestKey("visit", Visit)


def make_review_app(
    config: ReviewConfig, *, identity: Identity | None = None, clock: Clock = time.monotonic
) -> web.Application:
    """The app over ``config``'s store. The identity is read from ``config.identity`` unless given
    (its passphrase, if any, from ``$BLEEPLINE_PASSPHRASE``); without one, pages work and audio is 503.
    ``clock`` drives session expiry and the login rate limit (tests pass their own)."""
    if identity is None and config.identity is not None:
        identity = open_identity(config.identity)
    state = ReviewState(
        config=config,
        users=UserStore(config.state / "users.db"),
        catalog=Catalog(config.store, TagStore.in_state(config.state)),
        audit=AuditLog(config.state),
        sessions=SessionTable(config.session_timeout_s, clock),
        limiter=LoginLimiter(config.login_attempts, config.login_window_s, clock),
        login_csrf=LoginCsrf(),
        identity=identity,
        static={
            name: resources.files("bleepline.review").joinpath("static", name).read_bytes()
            for name in _STATIC_TYPES
        },
    )
    app = web.Application(middlewares=[_errors, _signed_in], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _home)
    app.router.add_get("/login", _login_form)
    app.router.add_post("/login", _login)
    app.router.add_post("/logout", _logout)
    app.router.add_get("/calls", _calls)
    app.router.add_get("/calls/{call_id}", _call)
    app.router.add_get("/calls/{call_id}/audio.wav", _audio)  # HEAD too (aiohttp adds it)
    app.router.add_get("/audit", _audit_page)
    app.router.add_get("/admin/users", _users)
    app.router.add_post("/admin/users/{action}", _change_user)
    app.router.add_get("/analytics", _analytics)
    app.router.add_get("/static/{name}", _static)
    return app


# -- plumbing ----------------------------------------------------------------------------------------------


def _state(request: web.Request) -> ReviewState:
    return request.app[STATE]


def _visit(request: web.Request) -> Visit | None:
    return request.get(_VISIT)


def _source(request: web.Request) -> str:
    """The peer's address as an audit token (IPv6 written out in full: the trail's tokens cannot start
    with a colon). A proxy's X-Forwarded-For is not trusted: put the app behind none, or read its log."""
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return "unknown"
    return address.exploded if address.version == 6 else str(address)


def _wants_html(request: web.Request) -> bool:
    return not request.path.endswith(".wav")


def _page(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _plain(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=message + "\n", status=status, content_type="text/plain", headers=headers)


def _fail(request: web.Request, status: int, message: str) -> web.Response:
    """An error answer: a small page for a browser's page request, one plain line for audio."""
    if _wants_html(request):
        visit = _visit(request)
        return _page(pages.error_page(status, message, visit.viewer if visit else None), status)
    return _plain(status, message)


async def _record(request: web.Request, event: AuditEvent, user: User | None, **fields: Any) -> None:
    """Append one record, or raise ``AuditError`` (the caller then does not act). Off the event loop:
    an append waits for a file lock and an fsync."""
    await asyncio.to_thread(
        _state(request).audit.append,
        event,
        user=user.name if user else None,
        role=user.role.value if user else None,
        source=_source(request),
        **fields,
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (no route, wrong method, body too large) in the same form as ours.
        messages = {404: "no such page", 405: "method not allowed", 413: "request body too large"}
        answer = _fail(request, exc.status, messages.get(exc.status, exc.reason))
        if exc.status == 405 and "Allow" in exc.headers:
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    except AuditError as exc:
        log.error("review: audit trail cannot be written (%s); the action was refused", type(exc).__name__)
        return _fail(request, 503, "the audit trail cannot be written, so this action was refused")
    except Exception as exc:
        # By type only: a message could quote a request or a file, and both may hold anything.
        log.error("review: request failed (%s)", type(exc).__name__)
        return _fail(request, 500, "internal error")


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session (if any) and check the CSRF token of every POST."""
    state = _state(request)
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        # Looked up afresh on every request (an SQLite primary-key read, well under a millisecond), so a
        # role change or a removal takes effect on the user's very next click.
        user = state.users.get(session.user)
        if user is None:  # removed while signed in
            state.sessions.end(session.id)
        else:
            request[_VISIT] = Visit(session, user)
    if request.method == "POST":
        form = await _form(request)
        if form is None:
            return _fail(request, 400, "the form could not be read")
        given = form.get(CSRF_FIELD)
        if request.path == "/login":
            ok = state.login_csrf.check(request.cookies.get(LOGIN_COOKIE), given)
        else:
            visit = _visit(request)
            ok = visit is not None and tokens_match(given, visit.session.csrf)
            if visit is None and not ok:
                return _fail(request, 401, "sign in first")
        if not ok:
            return _fail(request, 403, "the form's security token is missing or wrong; reload the page")
    return await handler(request)


async def _form(request: web.Request) -> dict[str, str] | None:
    """The POST body's fields as strings; None for a body that is not a form (or not text)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    try:
        raw = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except (ValueError, UnicodeDecodeError):
        return None
    fields: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or key in fields:
            return None  # an upload, or a field given twice: neither is one of our forms
        fields[key] = value
    return fields


async def _fields(request: web.Request) -> dict[str, str]:
    form = await _form(request)  # parsed (and checked) by the middleware already: this is its cache
    return form or {}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    # Nothing here may be kept by a browser or a proxy: pages hold transcripts, audio is the call.
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    headers["Server"] = "bleepline-review"  # not aiohttp's and Python's versions
    if request.secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"


def _redirect(location: str) -> web.Response:
    """A 303 that can carry cookies (aiohttp wants HTTP exceptions raised, not returned)."""
    return web.Response(status=303, headers={"Location": location})


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, path: str) -> None:
    response.set_cookie(
        name, value, path=path, httponly=True, samesite="Strict", secure=request.secure or None
    )


def _require(request: web.Request, action: Action) -> Visit | web.Response:
    """The visit, if signed in and the role allows ``action``; otherwise the answer to give."""
    visit = _visit(request)
    if visit is None:
        if _wants_html(request):
            raise web.HTTPSeeOther("/login")
        return _plain(401, "sign in first")
    if not can(visit.user, action):
        return _fail(request, 403, f"your role ({visit.user.role.value}) may not do this")
    return visit


# -- signing in and out ----------------------------------------------------------------------------------


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/calls" if _visit(request) else "/login")


def _login_answer(
    request: web.Request, status: int = 200, error: str | None = None, name: str = ""
) -> web.Response:
    state = _state(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not well_formed_token(cookie):
        cookie = new_token()
    assert cookie is not None
    response = _page(pages.login_page(state.login_csrf.token_for(cookie), error=error, name=name), status)
    _set_cookie(request, response, LOGIN_COOKIE, cookie, "/login")
    return response


async def _login_form(request: web.Request) -> web.StreamResponse:
    visit = _visit(request)
    if visit is not None:
        raise web.HTTPSeeOther(_landing(visit.user))
    return _login_answer(request)


def _landing(user: User) -> str:
    for action, path in ((Action.LIST, "/calls"), (Action.AUDIT, "/audit"), (Action.ANALYTICS, "/analytics")):
        if can(user, action):
            return path
    return "/admin/users"


async def _login(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    form = await _fields(request)
    name, password = form.get("name", ""), form.get("password", "")
    if not name or not password or len(name) > 256 or len(password) > 4096:
        return _login_answer(request, 400, "give a user name and a password")
    source = _source(request)
    known = state.users.get(name)  # recorded under the name only if it is a real account
    if state.limiter.blocked(source, name):
        await _record(request, AuditEvent.LOGIN_FAILED, known, detail={"reason": "rate_limited"})
        return _plain(429, "too many failed sign-ins: wait a few minutes, then try again")
    # scrypt takes ~0.1 s: off the event loop, so other users' requests are not held up.
    user = await asyncio.to_thread(state.users.authenticate, name, password)
    if user is None:
        state.limiter.failed(source, name)
        await _record(
            request,
            AuditEvent.LOGIN_FAILED,
            known,
            detail={"reason": "bad_password" if known else "unknown_user"},
        )
        # The name is given back as typed, known or not: the answer must not tell which names exist.
        return _login_answer(request, 401, "wrong user name or password", name=name[:64])
    state.limiter.succeeded(name)
    previous = _visit(request)
    if previous is not None:  # signing in again (as someone else, say) ends the session before
        state.sessions.end(previous.session.id)
    await _record(request, AuditEvent.LOGIN_OK, user)
    session = state.sessions.create(user.name)  # a new id at every sign-in: no session fixation
    response = _redirect(_landing(user))
    _set_cookie(request, response, SESSION_COOKIE, session.id, "/")
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    visit = _visit(request)
    assert visit is not None  # the middleware answers 401 to a POST without a session
    await _record(request, AuditEvent.LOGOUT, visit.user)
    _state(request).sessions.end(visit.session.id)
    response = _redirect("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- calls -----------------------------------------------------------------------------------------------


def _parse_filters(query: Mapping[str, str]) -> tuple[dict[str, Any], pages.CallFilters]:
    shown = {
        key: query.get(key, "")[:64]
        for key in ("from", "to", "min_duration", "max_duration", "entity", "min_masked")
    }
    parsed: dict[str, Any] = {}
    problems: list[str] = []
    for key, target in (("from", "since"), ("to", "until")):
        text = shown[key].strip()
        if not text:
            continue
        try:
            if not _DAY.fullmatch(text):
                raise ValueError
            parsed[target] = date.fromisoformat(text)
        except ValueError:
            problems.append(f"“{key}” must be a date (YYYY-MM-DD)")
    for key in ("min_duration", "max_duration", "min_masked"):
        text = shown[key].strip()
        if not text:
            continue
        try:
            value = float(text)
            if not math.isfinite(value) or not 0 <= value <= _MOST_SECONDS:
                raise ValueError
            parsed[key] = value
        except ValueError:
            problems.append(f"“{key.replace('_', ' ')}” must be a number of seconds")
    entity = shown["entity"].strip()
    if entity:
        if _ENTITY.fullmatch(entity):
            parsed["entity"] = entity
        else:
            problems.append("“entity” must be an entity type such as CREDIT_CARD")
    return parsed, pages.CallFilters(shown, "; ".join(problems) or None)


async def _calls(request: web.Request) -> web.StreamResponse:
    visit = _require(request, Action.LIST)
    if isinstance(visit, web.Response):
        return visit
    catalog = _state(request).catalog
    parsed, filters = _parse_filters(request.query)
    try:
        everything = await asyncio.to_thread(catalog.calls, user=visit.user)
        entries = (
            everything
            if not parsed
            else await asyncio.to_thread(lambda: catalog.calls(user=visit.user, **parsed))
        )
    except CatalogError as exc:
        log.error("review: the call list cannot be read (%s)", type(exc).__name__)
        return _fail(request, 503, "the recordings store cannot be read")
    entities = {e for entry in everything for e in entry.entity_counts}
    status = 400 if filters.error else 200
    return _page(
        pages.calls_page(visit.viewer, entries if not filters.error else [], filters, entities), status
    )


async def _open_call(request: web.Request, action: Action) -> tuple[Visit, CallEntry] | web.Response:
    """The visit and the call named in the path, if the role allows ``action`` and the call is in the
    user's scope; otherwise the answer to give: 403 for the role, 404 for everything about the id."""
    visit = _require(request, action)
    if isinstance(visit, web.Response):
        return visit
    call_id = request.match_info.get("call_id", "")
    if not is_call_id(call_id):  # checked before any path is built from it
        return _fail(request, 404, "no such call")
    try:
        entry = await asyncio.to_thread(_state(request).catalog.get, call_id, visit.user)
    except CatalogError:  # unknown, unreadable, or outside the user's scope: the same answer
        return _fail(request, 404, "no such call")
    return visit, entry


async def _call(request: web.Request) -> web.StreamResponse:
    opened = await _open_call(request, Action.VIEW)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    state, call_id = _state(request), entry.call_id
    transcript: dict[str, Any] | None = None
    problem = None
    try:
        transcript = await asyncio.to_thread(state.catalog.transcript, call_id)
    except TranscriptUnavailable:
        problem = (
            "No transcript: the call is still running, was sealed without redaction, "
            "or its transcript is damaged."
        )
    except CatalogError:
        return _fail(request, 404, "no such call")
    await _record(request, AuditEvent.VIEW, visit.user, call_id=call_id)
    # A new page view starts a new playback session: its first audio request is recorded as PLAY.
    visit.session.played.discard(call_id)
    return _page(
        pages.call_page(
            visit.viewer,
            entry,
            transcript,
            transcript_problem=problem,
            playable=state.identity is not None and can(visit.user, Action.PLAY),
        )
    )


async def _audio(request: web.Request) -> web.StreamResponse:
    opened = await _open_call(request, Action.PLAY)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    state, call_id = _state(request), entry.call_id
    if state.identity is None:
        return _plain(503, "this review server has no identity to decrypt recordings with")
    identity = state.identity
    try:
        wav = await asyncio.to_thread(DecryptedWav, entry.recording, identity)
    except NotARecipientError:
        return _plain(503, "this review server's identity cannot open this recording")
    except StoreError as exc:
        log.warning(
            "review: call %s cannot be played: recording failed to open (%s)", call_id, type(exc).__name__
        )
        return _plain(503, "the recording failed verification and cannot be played")
    try:
        return await _stream(request, visit, call_id, wav)
    finally:
        await asyncio.to_thread(wav.close)


async def _stream(request: web.Request, visit: Visit, call_id: str, wav: DecryptedWav) -> web.StreamResponse:
    headers = {"Accept-Ranges": "bytes"}
    # If-Range names a version we never gave out (no validators): the whole file, as RFC 9110 says.
    asked = None if "If-Range" in request.headers else request.headers.get("Range")
    try:
        wanted = parse_range(asked, wav.size)
    except RangeNotSatisfiableError:
        return _plain(416, "range not satisfiable", {**headers, "Content-Range": f"bytes */{wav.size}"})
    response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
    response.content_type = "audio/wav"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{wav.size}"
    response.content_length = wav.size if wanted is None else wanted.length
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    if call_id not in visit.session.played:
        await _record(request, AuditEvent.PLAY, visit.user, call_id=call_id)
        await _record(request, AuditEvent.DECRYPT, visit.user, call_id=call_id, detail={"for": "playback"})
        visit.session.played.add(call_id)
    pieces = wav.read(wanted)
    # The first piece is decrypted before the headers go: a recording damaged at its start gets a
    # clear 503 rather than a 200 with nothing behind it.
    try:
        piece = await asyncio.to_thread(next, pieces, None)
    except RecordingIntegrityError as exc:
        _log_stopped(call_id, exc)
        return _plain(503, "the recording failed verification and cannot be played")
    await response.prepare(request)
    while piece is not None:
        try:
            await response.write(piece)
        except ConnectionResetError:  # the player went away (a seek often does that): nothing to say
            return response
        try:
            piece = await asyncio.to_thread(next, pieces, None)
        except RecordingIntegrityError as exc:
            # What was sent had verified; the rest is withheld, and the short body tells the player.
            _log_stopped(call_id, exc)
            response.force_close()
            return response
    await response.write_eof()
    return response


def _log_stopped(call_id: str, exc: RecordingIntegrityError) -> None:
    # One line, no content: the call id (a plain name, checked) and the failure's type.
    log.warning(
        "review: audio of call %s stopped: a chunk failed verification (%s)", call_id, type(exc).__name__
    )


# -- audit trail, users, analytics -----------------------------------------------------------------------


async def _audit_page(request: web.Request) -> web.StreamResponse:
    visit = _require(request, Action.AUDIT)
    if isinstance(visit, web.Response):
        return visit
    state = _state(request)
    result = await asyncio.to_thread(verify, state.config.state)
    records = await asyncio.to_thread(state.audit.records)
    await _record(request, AuditEvent.AUDIT_VIEW, visit.user)
    newest = list(reversed(records))[:AUDIT_PAGE_RECORDS]
    return _page(pages.audit_page(visit.viewer, result, newest, len(records)))


async def _users(request: web.Request) -> web.StreamResponse:
    visit = _require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    done = request.query.get("done", "")
    return _page(
        pages.users_page(visit.viewer, _state(request).users.list(), notice=pages.USER_NOTICES.get(done))
    )


async def _change_user(request: web.Request) -> web.StreamResponse:
    visit = _require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    state = _state(request)
    form = await _fields(request)
    action = request.match_info["action"]
    name = form.get("name", "").strip()
    try:
        if name == visit.user.name and action in ("role", "remove", "tags"):
            # An admin cannot lock themselves (or the last admin) out by accident.
            raise UserError("you cannot change or remove your own account here")
        if action == "add":
            tags = _tags(form.get("tags", ""))
            user = state.users.add(name, form.get("password", ""), form.get("role", ""), tags)
            detail: dict[str, str | int] = {"change": "add", "target": user.name, "new_role": user.role.value}
        elif action == "role":
            user = state.users.set_role(name, form.get("role", ""))
            state.sessions.end_user(user.name)  # the new role applies from the next sign-in
            detail = {"change": "role", "target": user.name, "new_role": user.role.value}
        elif action == "tags":
            user = state.users.set_tags(name, _tags(form.get("tags", "")))
            detail = {"change": "tags", "target": user.name, "tags": len(user.tags)}
        elif action == "remove":
            state.users.remove(name)
            state.sessions.end_user(name)
            detail = {"change": "remove", "target": name}
        else:
            return _fail(request, 404, "no such page")
    except UserError as exc:
        users = state.users.list()
        return _page(pages.users_page(visit.viewer, users, error=str(exc)), 400)
    await _record(request, AuditEvent.USER_CHANGE, visit.user, detail=detail)
    raise web.HTTPSeeOther(f"/admin/users?done={action}")


def _tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.replace(";", ",").split(",") if tag.strip()]


async def _analytics(request: web.Request) -> web.StreamResponse:
    visit = _require(request, Action.ANALYTICS)
    if isinstance(visit, web.Response):
        return visit
    catalog = _state(request).catalog

    def gather() -> tuple[list[Any], dict[str, Mapping[str, Any]]]:
        entries = catalog.calls(user=visit.user)
        stats: dict[str, Mapping[str, Any]] = {}
        for entry in entries:
            if entry.transcript is None:
                continue
            try:
                found = catalog.transcript(entry.call_id).get("stats")
            except CatalogError:
                continue
            if isinstance(found, dict):
                stats[entry.call_id] = found
        return entries, stats

    try:
        entries, stats = await asyncio.to_thread(gather)
    except CatalogError as exc:
        log.error("review: analytics cannot read the store (%s)", type(exc).__name__)
        return _fail(request, 503, "the recordings store cannot be read")
    return _page(pages.analytics_page(visit.viewer, aggregate(entries, stats)))


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = _state(request).static.get(name)
    if body is None:
        return _fail(request, 404, "no such page")
    return web.Response(body=body, content_type=_STATIC_TYPES[name], charset="utf-8")
