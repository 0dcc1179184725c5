"""The review web app (aiohttp): sign in, list calls, read a redacted transcript while the audio plays.

This module is the route table and the middleware; the handlers live beside it, one module a job:
``web_session`` (sign-in), ``web_calls`` (list, call page), ``web_audio`` (the player's stream),
``web_export`` (downloads), ``web_reports`` (audit trail, analytics), ``web_admin`` (users, call tags)
and ``web_retention`` (policy, shred now); ``web_common`` holds what they share.

Every handler checks the role (``can``) and, for one call, the user's scope (``may_open``). Answers:

- not signed in: pages redirect to ``/login``; audio URLs answer 401;
- signed in, but the role may not do this at all: 403;
- a call the user may not open: **404, the same as a call that does not exist**, so an outsourced
  reviewer cannot learn which ids exist outside their queue. Ids that are not plain names (traversal,
  NUL, over-long) are 404 before any file is touched.

Audited (``bleepline.review.audit``): every sign-in (ok, failed, refused by the rate limit), sign-out,
call page opened (VIEW), audio played (PLAY and DECRYPT, once for each time a session opens the call's
page, not once per range request), export (EXPORT; DECRYPT too for audio), audit trail read
(AUDIT_VIEW), user change (USER_CHANGE), call tags and retention overrides (POLICY_CHANGE), and a call
shredded by an admin (DELETE). When the trail cannot be written the action does not happen (fail
closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources

from aiohttp import web

from bleepline.commands.keys import open_identity
from bleepline.review import web_admin, web_audio, web_calls, web_export, web_reports, web_retention
from bleepline.review import web_session as session
from bleepline.review.audit import AuditError, AuditLog
from bleepline.review.catalog import Catalog, TagStore
from bleepline.review.config import ReviewConfig
from bleepline.review.policy import PolicyStore
from bleepline.review.users import UserStore
from bleepline.review.web_auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Clock,
    LoginCsrf,
    LoginLimiter,
    SessionTable,
    tokens_match,
)
from bleepline.review.web_common import (
    STATE,
    VISIT,
    ReviewState,
    Visit,
    WallClock,
    fail,
    form,
    set_cookie,
    state_of,
    visit_of,
)
from bleepline.store.keys import Identity

log = logging.getLogger(__name__)

#: Largest request body: a sign-in or user form is well under a kilobyte.
MAX_BODY_BYTES = 16 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STATIC_TYPES = {"review.js": "text/javascript", "review.css": "text/css"}

# The cookie helper under the name the app's tests (and older callers) know it by.
_set_cookie = set_cookie


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_review_app(
    config: ReviewConfig,
    *,
    identity: Identity | None = None,
    clock: Clock = time.monotonic,
    now: WallClock = _utc_now,
) -> web.Application:
    """The app over ``config``'s store. The identity is read from ``config.identity`` unless given
    (its passphrase, if any, from ``$BLEEPLINE_PASSPHRASE``); without one, pages work and audio is 503.
    ``clock`` drives session expiry and the login rate limit, ``now`` the retention page's dry run
    (tests pass their own)."""
    if identity is None and config.identity is not None:
        identity = open_identity(config.identity)
    state = ReviewState(
        config=config,
        users=UserStore(config.state / "users.db"),
        catalog=Catalog(config.store, TagStore.in_state(config.state)),
        audit=AuditLog(config.state),
        policy=PolicyStore.in_state(config.state),
        sessions=SessionTable(config.session_timeout_s, clock),
        limiter=LoginLimiter(config.login_attempts, config.login_window_s, clock),
        login_csrf=LoginCsrf(),
        identity=identity,
        static={
            name: resources.files("bleepline.review").joinpath("static", name).read_bytes()
            for name in _STATIC_TYPES
        },
        now=now,
    )
    app = web.Application(middlewares=[_errors, _signed_in], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.on_response_prepare.append(_security_headers)
    add = app.router
    add.add_get("/", session.home)
    add.add_get("/login", session.login_form)
    add.add_post("/login", session.login)
    add.add_post("/logout", session.logout)
    add.add_get("/calls", web_calls.calls)
    add.add_get("/calls/{call_id}", web_calls.call)
    add.add_get("/calls/{call_id}/audio.wav", web_audio.audio)  # HEAD too (aiohttp adds it)
    add.add_get("/calls/{call_id}/export/transcript.json", web_export.transcript_json)
    add.add_get("/calls/{call_id}/export/transcript.vtt", web_export.transcript_vtt)
    add.add_get("/calls/{call_id}/export/audio.wav", web_export.audio_wav)
    add.add_get("/audit", web_reports.audit_page)
    add.add_get("/analytics", web_reports.analytics)
    add.add_get("/admin/users", web_admin.users)
    add.add_post("/admin/users/{action}", web_admin.change_user)
    add.add_get("/admin/calls", web_admin.calls)
    add.add_post("/admin/calls/{call_id}/tags", web_admin.set_call_tags)
    add.add_post("/admin/calls/{call_id}/shred", web_retention.shred_now)
    add.add_get("/admin/retention", web_retention.retention_page)
    add.add_post("/admin/retention/{action}", web_retention.change_override)
    add.add_get("/static/{name}", _static)
    return app


# -- middleware ------------------------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own refusals (no route, wrong method, body too large) in the same form as ours.
        messages = {404: "no such page", 405: "method not allowed", 413: "request body too large"}
        answer = fail(request, exc.status, messages.get(exc.status, exc.reason))
        if exc.status == 405 and "Allow" in exc.headers:
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    except AuditError as exc:
        log.error("review: audit trail cannot be written (%s); the action was refused", type(exc).__name__)
        return fail(request, 503, "the audit trail cannot be written, so this action was refused")
    except Exception as exc:
        # By type only: a message could quote a request or a file, and both may hold anything.
        log.error("review: request failed (%s)", type(exc).__name__)
        return fail(request, 500, "internal error")


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session (if any) and check the CSRF token of every POST."""
    state = state_of(request)
    found = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if found is not None:
        # Looked up afresh on every request (an SQLite primary-key read, well under a millisecond), so a
        # role change or a removal takes effect on the user's very next click.
        user = state.users.get(found.user)
        if user is None:  # removed while signed in
            state.sessions.end(found.id)
        else:
            request[VISIT] = Visit(found, user)
    if request.method == "POST":
        posted = await form(request)
        if posted is None:
            return fail(request, 400, "the form could not be read")
        given = posted.get(CSRF_FIELD)
        if request.path == "/login":
            ok = state.login_csrf.check(request.cookies.get(LOGIN_COOKIE), given)
        else:
            visit = visit_of(request)
            ok = visit is not None and tokens_match(given, visit.session.csrf)
            if visit is None and not ok:
                return fail(request, 401, "sign in first")
        if not ok:
            return fail(request, 403, "the form's security token is missing or wrong; reload the page")
    return await handler(request)


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


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = state_of(request).static.get(name)
    if body is None:
        return fail(request, 404, "no such page")
    return web.Response(body=body, content_type=_STATIC_TYPES[name], charset="utf-8")
