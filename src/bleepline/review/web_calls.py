"""The call list (with its filters) and one call's page."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from aiohttp import web

from bleepline.review import pages
from bleepline.review.audit import AuditEvent
from bleepline.review.catalog import CatalogError, TranscriptUnavailable
from bleepline.review.users import Action, can
from bleepline.review.web_common import fail, log, open_call, page, record, require, state_of

_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOST_SECONDS = 10_000_000.0


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


async def calls(request: web.Request) -> web.StreamResponse:
    visit = require(request, Action.LIST)
    if isinstance(visit, web.Response):
        return visit
    catalog = state_of(request).catalog
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
        return fail(request, 503, "the recordings store cannot be read")
    entities = {e for entry in everything for e in entry.entity_counts}
    status = 400 if filters.error else 200
    return page(
        pages.calls_page(visit.viewer, entries if not filters.error else [], filters, entities), status
    )


async def call(request: web.Request) -> web.StreamResponse:
    opened = await open_call(request, Action.VIEW)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    state, call_id = state_of(request), entry.call_id
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
        return fail(request, 404, "no such call")
    await record(request, AuditEvent.VIEW, visit.user, call_id=call_id)
    # A new page view starts a new playback session: its first audio request is recorded as PLAY.
    visit.session.played.discard(call_id)
    playable = state.identity is not None
    return page(
        pages.call_page(
            visit.viewer,
            entry,
            transcript,
            transcript_problem=problem,
            playable=playable and can(visit.user, Action.PLAY),
            exports=pages.export_kinds(transcript is not None, playable)
            if can(visit.user, Action.EXPORT)
            else (),
        )
    )
