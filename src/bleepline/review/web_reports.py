"""The two read-only report pages: the audit trail (auditors) and analytics (aggregates, supervisors)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bleepline.review import pages
from bleepline.review.audit import AuditEvent, verify
from bleepline.review.catalog import CallEntry, CatalogError
from bleepline.review.users import Action
from bleepline.review.web_analytics import aggregate
from bleepline.review.web_common import fail, log, page, record, require, state_of

#: How many audit records the trail page shows, newest first.
AUDIT_PAGE_RECORDS = 500


async def audit_page(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.AUDIT)
    if isinstance(visit, web.Response):
        return visit
    state = state_of(request)
    result = await asyncio.to_thread(verify, state.config.state)
    records = await asyncio.to_thread(state.audit.records)
    await record(request, AuditEvent.AUDIT_VIEW, visit.user)
    newest = list(reversed(records))[:AUDIT_PAGE_RECORDS]
    return page(pages.audit_page(visit.viewer, result, newest, len(records)))


async def analytics(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.ANALYTICS)
    if isinstance(visit, web.Response):
        return visit
    catalog = state_of(request).catalog

    def gather() -> tuple[list[CallEntry], dict[str, Mapping[str, Any]]]:
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
        return fail(request, 503, "the recordings store cannot be read")
    return page(pages.analytics_page(visit.viewer, aggregate(entries, stats)))
