"""Signing in and out: the login form, the sign-in itself (rate-limited, audited), and sign-out."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bleepline.review import pages
from bleepline.review.audit import AuditEvent
from bleepline.review.users import Action, User, can
from bleepline.review.web_auth import LOGIN_COOKIE, SESSION_COOKIE, new_token, well_formed_token
from bleepline.review.web_common import (
    fields,
    page,
    plain,
    record,
    redirect,
    set_cookie,
    source,
    state_of,
    visit_of,
)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/calls" if visit_of(request) else "/login")


def _login_answer(
    request: web.Request, status: int = 200, error: str | None = None, name: str = ""
) -> web.Response:
    state = state_of(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not well_formed_token(cookie):
        cookie = new_token()
    assert cookie is not None
    response = page(pages.login_page(state.login_csrf.token_for(cookie), error=error, name=name), status)
    set_cookie(request, response, LOGIN_COOKIE, cookie, "/login")
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    visit = visit_of(request)
    if visit is not None:
        raise web.HTTPSeeOther(landing(visit.user))
    return _login_answer(request)


def landing(user: User) -> str:
    for action, path in ((Action.LIST, "/calls"), (Action.AUDIT, "/audit"), (Action.ANALYTICS, "/analytics")):
        if can(user, action):
            return path
    return "/admin/users"


async def login(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    form = await fields(request)
    name, password = form.get("name", ""), form.get("password", "")
    if not name or not password or len(name) > 256 or len(password) > 4096:
        return _login_answer(request, 400, "give a user name and a password")
    address = source(request)
    known = state.users.get(name)  # recorded under the name only if it is a real account
    if state.limiter.blocked(address, name):
        await record(request, AuditEvent.LOGIN_FAILED, known, detail={"reason": "rate_limited"})
        return plain(429, "too many failed sign-ins: wait a few minutes, then try again")
    # scrypt takes ~0.1 s: off the event loop, so other users' requests are not held up.
    user = await asyncio.to_thread(state.users.authenticate, name, password)
    if user is None:
        state.limiter.failed(address, name)
        await record(
            request,
            AuditEvent.LOGIN_FAILED,
            known,
            detail={"reason": "bad_password" if known else "unknown_user"},
        )
        # The name is given back as typed, known or not: the answer must not tell which names exist.
        return _login_answer(request, 401, "wrong user name or password", name=name[:64])
    state.limiter.succeeded(name)
    previous = visit_of(request)
    if previous is not None:  # signing in again (as someone else, say) ends the session before
        state.sessions.end(previous.session.id)
    await record(request, AuditEvent.LOGIN_OK, user)
    session = state.sessions.create(user.name)  # a new id at every sign-in: no session fixation
    response = redirect(landing(user))
    set_cookie(request, response, SESSION_COOKIE, session.id, "/")
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    visit = visit_of(request)
    assert visit is not None  # the middleware answers 401 to a POST without a session
    await record(request, AuditEvent.LOGOUT, visit.user)
    state_of(request).sessions.end(visit.session.id)
    response = redirect("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response
