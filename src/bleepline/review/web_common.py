"""What every review-app handler shares: the app's state, the signed-in visit, and small answers.

The rules the handlers follow (see ``app.py``): ``require`` checks the role, ``open_call`` the role and
then the call's scope, answering 404 for anything about the id; ``record`` writes the audit trail and
raises ``AuditError`` when it cannot, so the caller does not act (the app's middleware answers 503).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bleepline.review import pages
from bleepline.review.audit import AuditEvent, AuditLog
from bleepline.review.catalog import CallEntry, Catalog, CatalogError, is_call_id
from bleepline.review.config import ReviewConfig
from bleepline.review.policy import PolicyStore
from bleepline.review.users import Action, User, UserStore, can
from bleepline.review.web_auth import LoginCsrf, LoginLimiter, Session, SessionTable
from bleepline.store.keys import Identity

#: One logger for the whole app, whichever module handles a request: log settings (and the tests) name
#: ``bleepline.review.app``, as they did when every handler lived there.
log = logging.getLogger("bleepline.review.app")

#: The wall clock retention is judged by (tests pass a fixed one).
WallClock = Callable[[], datetime]


@dataclass
class ReviewState:
    """What the handlers share: the stores, the sessions, and the key that opens recordings."""

    config: ReviewConfig
    users: UserStore
    catalog: Catalog
    audit: AuditLog
    policy: PolicyStore
    sessions: SessionTable
    limiter: LoginLimiter
    login_csrf: LoginCsrf
    identity: Identity | None
    static: Mapping[str, bytes]
    now: WallClock


STATE = web.AppKey("review", ReviewState)


@dataclass(frozen=True)
class Visit:
    """A signed-in request: the session and the user as the user store says now."""

    session: Session
    user: User

    @property
    def viewer(self) -> pages.Viewer:
        return pages.Viewer(self.user, self.session.csrf)


VISIT = web.RequestKey("visit", Visit)


def state_of(request: web.Request) -> ReviewState:
    return request.app[STATE]


def visit_of(request: web.Request) -> Visit | None:
    return request.get(VISIT)


def source(request: web.Request) -> str:
    """The peer's address as an audit token (IPv6 written out in full: the trail's tokens cannot start
    with a colon). A proxy's X-Forwarded-For is not trusted: put the app behind none, or read its log."""
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return "unknown"
    return address.exploded if address.version == 6 else str(address)


def wants_html(request: web.Request) -> bool:
    # Audio URLs (the player's and the export) are fetched by a media element or a download: they get
    # one plain line, and 401 rather than a redirect when signed out.
    return not request.path.endswith(".wav")


def page(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def plain(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=message + "\n", status=status, content_type="text/plain", headers=headers)


def fail(request: web.Request, status: int, message: str) -> web.Response:
    """An error answer: a small page for a browser's page request, one plain line for audio."""
    if wants_html(request):
        visit = visit_of(request)
        return page(pages.error_page(status, message, visit.viewer if visit else None), status)
    return plain(status, message)


def redirect(location: str) -> web.Response:
    """A 303 that can carry cookies (aiohttp wants HTTP exceptions raised, not returned)."""
    return web.Response(status=303, headers={"Location": location})


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, path: str) -> None:
    response.set_cookie(
        name, value, path=path, httponly=True, samesite="Strict", secure=request.secure or None
    )


def audit_fields(request: web.Request, user: User | None) -> dict[str, Any]:
    """Who and from where, as every record made for a request carries them."""
    return {
        "user": user.name if user else None,
        "role": user.role.value if user else None,
        "source": source(request),
    }


async def record(request: web.Request, event: AuditEvent, user: User | None, **fields: Any) -> None:
    """Append one record, or raise ``AuditError`` (the caller then does not act). Off the event loop:
    an append waits for a file lock and an fsync."""
    await asyncio.to_thread(state_of(request).audit.append, event, **audit_fields(request, user), **fields)


def require(request: web.Request, action: Action) -> Visit | web.Response:
    """The visit, if signed in and the role allows ``action``; otherwise the answer to give."""
    visit = visit_of(request)
    if visit is None:
        if wants_html(request):
            raise web.HTTPSeeOther("/login")
        return plain(401, "sign in first")
    if not can(visit.user, action):
        return fail(request, 403, f"your role ({visit.user.role.value}) may not do this")
    return visit


async def open_call(request: web.Request, action: Action) -> tuple[Visit, CallEntry] | web.Response:
    """The visit and the call named in the path, if the role allows ``action`` and the call is in the
    user's scope; otherwise the answer to give: 403 for the role, 404 for everything about the id."""
    visit = require(request, action)
    if isinstance(visit, web.Response):
        return visit
    call_id = request.match_info.get("call_id", "")
    if not is_call_id(call_id):  # checked before any path is built from it
        return fail(request, 404, "no such call")
    try:
        entry = await asyncio.to_thread(state_of(request).catalog.get, call_id, visit.user)
    except CatalogError:  # unknown, unreadable, or outside the user's scope: the same answer
        return fail(request, 404, "no such call")
    return visit, entry


async def form(request: web.Request) -> dict[str, str] | None:
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


async def fields(request: web.Request) -> dict[str, str]:
    found = await form(request)  # parsed (and checked) by the middleware already: this is its cache
    return found or {}


def split_tags(text: str) -> list[str]:
    """Tags as typed in a form: separated by commas (or semicolons), blanks dropped."""
    return [tag.strip() for tag in text.replace(";", ",").split(",") if tag.strip()]
