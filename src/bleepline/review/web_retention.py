"""Retention (admins): the policy in force, what would expire now, overrides, and shredding one call.

The page shows the config's periods beside the overrides stored in ``state/policy.db`` and a dry run
under both (``retention.expired_with_reasons``, the function ``bleepline retention run`` uses). An
override may only be shorter than the config's period for the same scope: overrides can shorten
retention, never lengthen it (``review/policy.py`` says why). Changes are audited as ``policy_change``.

"Shred now" crypto-shreds one call through ``retention.shred_call`` (keys destroyed, then the ``delete``
record, then the files removed), once the admin has typed the call's id into the form to confirm. It
reveals nothing of the call: admins still cannot read or play calls.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bleepline.review import pages_admin
from bleepline.review.audit import AuditEvent
from bleepline.review.catalog import CatalogError
from bleepline.review.config import TAG_PATTERN
from bleepline.review.policy import MAX_DAYS, Overrides, PolicyError
from bleepline.review.retention import RetentionError, expired_with_reasons, shred_call
from bleepline.review.users import Action
from bleepline.review.web_common import (
    ReviewState,
    Visit,
    audit_fields,
    fail,
    fields,
    log,
    open_call,
    page,
    record,
    require,
    state_of,
)

NOTICES = {
    "set": "Override saved: it applies to the next retention run.",
    "clear": "Override cleared.",
    "shred": "Call shredded: its keys were destroyed and its files removed.",
}
#: Where a shred form may send the admin back to (a fixed list: nothing from the request is followed).
_BACK = {"retention": "/admin/retention", "calls": "/admin/calls"}


async def retention_page(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    return await _page(request, visit, notice=NOTICES.get(request.query.get("done", "")))


async def _page(
    request: web.Request,
    visit: Visit,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    state = state_of(request)
    now = state.now()

    def gather() -> tuple[Overrides, list[pages_admin.Expiring], int]:
        overrides = state.policy.overrides()
        expiries = expired_with_reasons(state.catalog, state.config, now, overrides)
        return overrides, [pages_admin.Expiring.of(e) for e in expiries], len(state.catalog.skipped)

    try:
        overrides, expiring, skipped = await asyncio.to_thread(gather)
    except (CatalogError, PolicyError) as exc:
        log.error("review: the retention page cannot be built (%s)", type(exc).__name__)
        return fail(request, 503, "the recordings store or the policy database cannot be read")
    policy = pages_admin.policy_rows(state.config, overrides)
    body = pages_admin.retention_page(
        visit.viewer, policy, expiring, now, skipped=skipped, notice=notice, error=error
    )
    return page(body, status)


def _days(text: str) -> int | None:
    text = text.strip()
    # isascii too: isdigit() takes other scripts' digits, which int() reads.
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        return None
    days = int(text)
    return days if 1 <= days <= MAX_DAYS else None


def _scope(form: dict[str, str]) -> tuple[str | None, str | None]:
    """(tag or None for store-wide, problem or None) from a form's ``scope`` and ``tag``."""
    scope = form.get("scope", "")
    if scope == "store":
        return None, None
    tag = form.get("tag", "").strip()
    if scope == "tag" and TAG_PATTERN.fullmatch(tag):
        return tag, None
    return None, "name a tag (letters, digits, . _ - up to 64) or the whole store"


def _refusal(state: ReviewState, action: str, tag: str | None, days: int | None) -> str | None:
    """Why a well-formed override change is refused, or None. Reads the policy store (in a thread)."""
    if action == "set":
        written = state.config.retention_days if tag is None else state.config.retention_by_tag.get(tag)
        if days is None:
            return f"a period is a whole number of days, 1 to {MAX_DAYS}"
        if written is not None and days >= written:
            return (
                f"the config keeps these calls {written} days; an override can only shorten that "
                "(to keep them longer, change the config file)"
            )
        return None
    current = state.policy.overrides()
    if (current.days if tag is None else current.by_tag.get(tag)) is None:
        return "there is no override for that scope to clear"
    return None


async def change_override(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.ADMIN)
    if isinstance(visit, web.Response):
        return visit
    action = request.match_info["action"]
    if action not in ("set", "clear"):
        return fail(request, 404, "no such page")
    state = state_of(request)
    form = await fields(request)
    tag, problem = _scope(form)
    days = _days(form.get("days", "")) if action == "set" else None
    try:
        if problem is None:
            problem = await asyncio.to_thread(_refusal, state, action, tag, days)
        if problem is not None:
            return await _page(request, visit, error=problem, status=400)
        detail: dict[str, str | int | bool] = {
            "action": "retention",
            "scope": "store" if tag is None else "tag",
        }
        if tag is not None:
            detail["tag"] = tag  # a policy's subject: an admin's label, not personal data
        if days is not None:
            detail["days"] = days
        else:
            detail["cleared"] = True
        # Recorded first: if the trail cannot be written, the policy is not changed.
        await record(request, AuditEvent.POLICY_CHANGE, visit.user, detail=detail)
        if days is not None:
            await asyncio.to_thread(state.policy.set, tag, days)
        else:
            await asyncio.to_thread(state.policy.clear, tag)
    except PolicyError as exc:
        log.error("review: the retention policy cannot be read or saved (%s)", type(exc).__name__)
        return fail(request, 503, "the policy database cannot be read or written")
    raise web.HTTPSeeOther(f"/admin/retention?done={action}")


async def shred_now(request: web.Request) -> web.StreamResponse:
    opened = await open_call(request, Action.ADMIN)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    form = await fields(request)
    back = _BACK.get(form.get("back", ""), "/admin/calls")
    if form.get("confirm", "").strip() != entry.call_id:
        return fail(request, 400, "not shredded: type the call's id into the confirmation box to shred it")
    state = state_of(request)
    who = audit_fields(request, visit.user)

    def record_delete(keys: int) -> None:
        # In the worker thread, between destroying the keys and removing the files (shred_call's order).
        state.audit.append(
            AuditEvent.DELETE, call_id=entry.call_id, detail={"via": "shred_now", "keys": keys}, **who
        )

    try:
        await asyncio.to_thread(shred_call, state.config.store, entry, state.catalog.tags, record_delete)
    except RetentionError as exc:
        log.error("review: call %s could not be shredded (%s)", entry.call_id, type(exc).__name__)
        return fail(request, 503, "the call could not be shredded; see the server log, then try again")
    raise web.HTTPSeeOther(f"{back}?done=shred")
