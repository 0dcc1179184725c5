"""Admin pages for who sees what: users (roles, tags) and the tags set on calls.

An outsourced reviewer's queue is the calls that share a tag with them: an admin fills it by tagging
calls here (``TagStore``, in the review state, which the relay cannot touch). The relay's own tags, from
the recording header, are shown read-only. Every change is audited: users as ``user_change``, call tags
as ``policy_change`` with ``action=tags`` and how many tags (names of accounts and tags, never text).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bleepline.review import pages, pages_admin
from bleepline.review.audit import AuditEvent
from bleepline.review.catalog import CatalogError
from bleepline.review.config import TAG_PATTERN
from bleepline.review.users import Action, UserError
from bleepline.review.web_common import (
    Visit,
    fail,
    fields,
    log,
    open_call,
    page,
    record,
    require,
    split_tags,
    state_of,
)

#: More tags than this on one call is a typo (a pasted list), not a queue plan.
MAX_CALL_TAGS = 32
CALL_NOTICES = {
    "tags": "Tags saved: reviewers limited to those tags see the call from their next click.",
    "shred": "Call shredded: its keys were destroyed and its files removed.",
}


async def users(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    done = request.query.get("done", "")
    return page(
        pages.users_page(visit.viewer, state_of(request).users.list(), notice=pages.USER_NOTICES.get(done))
    )


async def change_user(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    state = state_of(request)
    form = await fields(request)
    action = request.match_info["action"]
    name = form.get("name", "").strip()
    try:
        if name == visit.user.name and action in ("role", "remove", "tags"):
            # An admin cannot lock themselves (or the last admin) out by accident.
            raise UserError("you cannot change or remove your own account here")
        if action == "add":
            tags = split_tags(form.get("tags", ""))
            user = state.users.add(name, form.get("password", ""), form.get("role", ""), tags)
            detail: dict[str, str | int] = {"change": "add", "target": user.name, "new_role": user.role.value}
        elif action == "role":
            user = state.users.set_role(name, form.get("role", ""))
            state.sessions.end_user(user.name)  # the new role applies from the next sign-in
            detail = {"change": "role", "target": user.name, "new_role": user.role.value}
        elif action == "tags":
            user = state.users.set_tags(name, split_tags(form.get("tags", "")))
            detail = {"change": "tags", "target": user.name, "tags": len(user.tags)}
        elif action == "remove":
            state.users.remove(name)
            state.sessions.end_user(name)
            detail = {"change": "remove", "target": name}
        else:
            return fail(request, 404, "no such page")
    except UserError as exc:
        return page(pages.users_page(visit.viewer, state.users.list(), error=str(exc)), 400)
    await record(request, AuditEvent.USER_CHANGE, visit.user, detail=detail)
    raise web.HTTPSeeOther(f"/admin/users?done={action}")


async def calls(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    return await _calls_page(request, visit, notice=CALL_NOTICES.get(request.query.get("done", "")))


async def _calls_page(
    request: web.Request,
    visit: Visit,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    catalog = state_of(request).catalog
    try:
        entries = await asyncio.to_thread(catalog.calls, user=visit.user)
    except CatalogError as exc:
        log.error("review: the call list cannot be read (%s)", type(exc).__name__)
        return fail(request, 503, "the recordings store cannot be read")
    return page(pages_admin.call_tags_page(visit.viewer, entries, notice=notice, error=error), status)


async def set_call_tags(request: web.Request) -> web.StreamResponse:
    opened = await open_call(request, Action.ADMIN)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    tags = sorted(set(split_tags((await fields(request)).get("tags", ""))))
    bad = next((tag for tag in tags if not TAG_PATTERN.fullmatch(tag)), None)
    if bad is not None or len(tags) > MAX_CALL_TAGS:
        problem = (
            f"a tag is letters, digits, . _ - (up to 64), separated by commas; {bad[:64]!r} is not one"
            if bad is not None
            else f"at most {MAX_CALL_TAGS} tags on one call"
        )
        return await _calls_page(request, visit, error=problem, status=400)
    # Recorded first: if the trail cannot be written, the tags are not changed (no record, no change).
    await record(
        request,
        AuditEvent.POLICY_CHANGE,
        visit.user,
        call_id=entry.call_id,
        detail={"action": "tags", "count": len(tags)},
    )
    tag_store = state_of(request).catalog.tags
    assert tag_store is not None  # the app's catalog always has one
    try:
        await asyncio.to_thread(tag_store.set, entry.call_id, tags)
    except CatalogError as exc:
        log.error("review: call tags cannot be saved (%s)", type(exc).__name__)
        return fail(request, 503, "the tag database cannot be written")
    raise web.HTTPSeeOther("/admin/calls?done=tags")
