"""The review app's pages, rendered on the server as plain HTML strings.

Every value that reaches a page goes through ``esc`` (``html.escape`` with quotes), including call ids,
user names and transcript text, which is redacted but still text from a recognizer. The pages carry no
inline script and no ``style`` attributes (the Content-Security-Policy forbids both): behaviour is in
``static/review.js``, looks in ``static/review.css``, and positions in SVG geometry attributes.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bleepline.review.audit import AuditRecord, VerifyResult
from bleepline.review.catalog import CallEntry
from bleepline.review.users import Action, Role, User, can
from bleepline.review.web_analytics import Aggregates
from bleepline.store.verdict import VerdictRecord

STATIC_VERSION = "3"  # part of the asset URLs, so a changed script is never mixed with an old page

#: Colours by entity type: fixed for the common ones, so a reviewer learns them; others by a stable hash.
ENTITY_COLOURS = {
    "CREDIT_CARD": "#d62728",
    "PHONE_NUMBER": "#1f77b4",
    "US_SSN": "#9467bd",
    "EMAIL_ADDRESS": "#17becf",
    "PERSON": "#ff7f0e",
    "ADDRESS": "#8c564b",
    "DATE_TIME": "#bcbd22",
    "PIN": "#e377c2",
    "NUMBER": "#7f7f7f",
    "UNVERIFIED": "#4d4d4d",
}
_SPARE_COLOURS = ("#2ca02c", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d")
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]{0,40}\]")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def entity_colour(entity: str) -> str:
    known = ENTITY_COLOURS.get(entity)
    if known is not None:
        return known
    # A stable choice (not hash(), which is salted per process): the same entity keeps its colour.
    return _SPARE_COLOURS[sum(entity.encode()) % len(_SPARE_COLOURS)]


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class Viewer:
    """Who a page is drawn for: the signed-in user and the session's CSRF token (for the forms)."""

    user: User
    csrf: str


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def layout(title: str, body: str, viewer: Viewer | None = None, *, active: str = "") -> str:
    nav = ""
    if viewer is not None:
        links = [
            ("/calls", "Calls", Action.LIST),
            ("/analytics", "Analytics", Action.ANALYTICS),
            ("/audit", "Audit trail", Action.AUDIT),
            ("/admin/users", "Users", Action.ADMIN),
            ("/admin/calls", "Call tags", Action.ADMIN),
            ("/admin/retention", "Retention", Action.ADMIN),
        ]
        current = ' aria-current="page"'
        items = "".join(
            f'<li><a href="{href}"{current if href == active else ""}>{label}</a></li>'
            for href, label, action in links
            if can(viewer.user, action)
        )
        nav = (
            f'<nav class="top"><span class="brand">bleepline review</span><ul>{items}</ul>'
            f'<form method="post" action="/logout" class="logout">{csrf_field(viewer.csrf)}'
            f'<span class="who">{esc(viewer.user.name)} · {esc(viewer.user.role.value)}</span>'
            '<button type="submit" id="logout">Sign out</button></form></nav>'
        )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · bleepline review</title>"
        '<link rel="icon" href="data:,">'  # no favicon request: nothing to 404 in the console
        f'<link rel="stylesheet" href="/static/review.css?v={STATIC_VERSION}">'
        f'<script src="/static/review.js?v={STATIC_VERSION}" defer></script>'
        f"</head><body>{nav}<main>{body}</main></body></html>\n"
    )


def error_page(status: int, message: str, viewer: Viewer | None = None) -> str:
    back = '<p><a href="/calls">Back to the calls</a></p>' if viewer is not None else ""
    return layout(
        f"{status}", f'<h1>{status}</h1><p class="error" role="alert">{esc(message)}</p>{back}', viewer
    )


def login_page(csrf: str, *, error: str | None = None, name: str = "") -> str:
    notice = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    body = (
        '<section class="login"><h1>Sign in</h1>'
        "<p>Redacted call recordings, for QA review. Every sign-in, page and playback is recorded in "
        "the audit trail.</p>"
        f"{notice}"
        '<form method="post" action="/login">'
        f"{csrf_field(csrf)}"
        '<label>User name <input name="name" id="name" autocomplete="username" required maxlength="64" '
        f'value="{esc(name)}" autofocus></label>'
        '<label>Password <input name="password" id="password" type="password" '
        'autocomplete="current-password" required maxlength="1024"></label>'
        '<button type="submit" id="signin">Sign in</button></form></section>'
    )
    return layout("Sign in", body)


# -- the call list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallFilters:
    """The list's filters as the form shows them (strings, as typed) and as parsed."""

    shown: Mapping[str, str]
    error: str | None = None


def calls_page(
    viewer: Viewer, entries: Sequence[CallEntry], filters: CallFilters, entities: Iterable[str]
) -> str:
    shown = filters.shown
    options = '<option value="">any</option>' + "".join(
        f'<option value="{esc(e)}"{" selected" if shown.get("entity") == e else ""}>{esc(e)}</option>'
        for e in sorted(entities)
    )

    def field(name: str, label: str, kind: str, extra: str = "") -> str:
        return (
            f'<label>{label} <input type="{kind}" name="{name}" value="{esc(shown.get(name, ""))}"{extra}>'
            "</label>"
        )

    number = ' min="0" step="any" inputmode="decimal"'
    form = (
        '<form method="get" action="/calls" class="filters" role="search">'
        + field("from", "From", "date")
        + field("to", "To", "date")
        + field("min_duration", "Min length (s)", "number", number)
        + field("max_duration", "Max length (s)", "number", number)
        + f'<label>Entity <select name="entity">{options}</select></label>'
        + field("min_masked", "Masked at least (s)", "number", number)
        + '<button type="submit">Filter</button> <a href="/calls">Clear</a></form>'
    )
    notice = f'<p class="error" role="alert">{esc(filters.error)}</p>' if filters.error else ""
    may_view = can(viewer.user, Action.VIEW)
    rows = "".join(_call_row(entry, may_view) for entry in entries)
    scope = (
        f'<p class="scope">Showing calls tagged {esc(", ".join(sorted(viewer.user.tags)))} only.</p>'
        if viewer.user.tags
        else ""
    )
    table = (
        '<table class="calls"><thead><tr><th>Call</th><th>Started (UTC)</th><th>Length</th>'
        "<th>Redactions</th><th>Masked</th><th>Verified</th><th>Tags</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if entries
        else '<p class="empty">No calls match.</p>'
    )
    count = f'<p class="count">{len(entries)} call{"" if len(entries) == 1 else "s"}</p>'
    return layout("Calls", f"<h1>Calls</h1>{scope}{form}{notice}{count}{table}", viewer, active="/calls")


def _call_row(entry: CallEntry, linked: bool) -> str:
    name = esc(entry.call_id)
    cell = f'<a href="/calls/{name}">{name}</a>' if linked else f"<code>{name}</code>"
    if not entry.redacted:
        cell += ' <span class="badge danger">not redacted</span>'
    elif not entry.finished:
        cell += ' <span class="badge">no transcript</span>'
    entities = " ".join(
        f'<span class="chip">{_swatch(e)}{esc(e)} {n}</span>' for e, n in sorted(entry.entity_counts.items())
    )
    tags = " ".join(f'<span class="tag">{esc(t)}</span>' for t in sorted(entry.tags))
    return (
        f"<tr><td>{cell}</td><td>{esc(when(entry.created_at))}</td><td>{clock(entry.duration)}</td>"
        f"<td>{entities or '—'}</td><td>{entry.total_masked:.1f} s</td>"
        f"<td>{verdict_badge(entry.verdict)}</td><td>{tags}</td></tr>"
    )


def verdict_badge(verdict: VerdictRecord | None) -> str:
    """A call's verdict in a word: clean, N audible, or not verified (`bleepline verify`)."""
    if verdict is None:
        return '<span class="badge verdict none">not verified</span>'
    if verdict.clean:
        return '<span class="badge ok verdict clean">clean</span>'
    return f'<span class="badge danger verdict audible">{verdict.audible} audible</span>'


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _swatch(entity: str) -> str:
    return (
        '<svg class="swatch" width="10" height="10" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" rx="2" fill="{entity_colour(entity)}"/></svg>'
    )


# -- one call --------------------------------------------------------------------------------------------


def call_page(
    viewer: Viewer,
    entry: CallEntry,
    transcript: Mapping[str, Any] | None,
    *,
    transcript_problem: str | None = None,
    playable: bool = True,
    exports: Sequence[tuple[str, str]] = (),
) -> str:
    duration = max(entry.duration, 0.001)
    redactions = _redactions(transcript)
    segments = _segments(transcript)
    warning = ""
    if not entry.redacted:
        warning = (
            '<p class="warning" role="alert" id="not-redacted"><strong>Not redacted.</strong> This '
            "recording was sealed as given (<code>bleepline seal</code>), without bleepline's "
            "redaction: it may hold personal data in full.</p>"
        )
    facts = (
        '<dl class="facts">'
        f"<dt>Started</dt><dd>{esc(when(entry.created_at))} UTC</dd>"
        f"<dt>Length</dt><dd>{clock(entry.duration)}</dd>"
        f"<dt>Masked</dt><dd>{entry.total_masked:.1f} s</dd>"
        f"<dt>Tags</dt><dd>{esc(', '.join(sorted(entry.tags))) or '—'}</dd>"
        f"<dt>Verified</dt><dd>{_verdict_fact(entry.verdict)}</dd>"
        f"{_provenance(transcript)}</dl>"
    )
    audio_url = f"/calls/{esc(entry.call_id)}/audio.wav"
    if playable:
        player = (
            f'<div class="player" id="player" data-duration="{duration:.3f}">'
            '<button type="button" id="play" class="play" aria-controls="audio">Play</button>'
            f'<span class="clock" id="clock">0:00 / {clock(entry.duration)}</span>'
            f'<audio id="audio" controls preload="none" src="{audio_url}"></audio></div>'
        )
    else:
        player = (
            '<p class="warning" role="alert">Audio cannot be played here: this review server has no '
            "identity to decrypt recordings with.</p>"
        )
    timeline = _timeline(duration, redactions, segments)
    legend = _legend(redactions)
    if segments:
        lines = "".join(
            f'<li><button type="button" class="line" data-start="{start:.3f}" data-end="{end:.3f}">'
            f'<span class="time">{clock(start)}</span> <span class="text">{_marked(text)}</span>'
            "</button></li>"
            for start, end, text in segments
        )
        text_block = f'<ol class="transcript" id="transcript">{lines}</ol>'
    elif transcript_problem:
        text_block = f'<p class="empty">{esc(transcript_problem)}</p>'
    else:
        text_block = '<p class="empty">Nothing was transcribed.</p>'
    body = (
        '<p class="crumbs"><a href="/calls">Calls</a> &rsaquo;</p>'
        f"<h1>Call <code>{esc(entry.call_id)}</code></h1>"
        f"{warning}{facts}{player}{_exports(entry.call_id, exports)}{timeline}{legend}"
        f"{_audible(entry.verdict)}"
        f"<h2>Redacted transcript</h2>{text_block}"
    )
    return layout(f"Call {entry.call_id}", body, viewer, active="/calls")


def _verdict_fact(verdict: VerdictRecord | None) -> str:
    if verdict is None:
        return f'{verdict_badge(None)} <span class="muted">(run <code>bleepline verify</code>)</span>'
    counts = verdict.counts
    said = ", ".join(f"{counts[kind]} {kind}" for kind in ("digit", "entity", "dtmf") if counts[kind])
    detail = f" ({esc(said)})" if said else ""
    return (
        f"{verdict_badge(verdict)}{detail} "
        f'<span class="muted">{esc(verdict.verified_at)}, {esc(verdict.models.get("asr", "?"))}</span>'
    )


def _audible(verdict: VerdictRecord | None) -> str:
    """Where a second listen still heard something: times and kinds (a verdict holds no words)."""
    if verdict is None or verdict.clean:
        return ""
    several = verdict.channels > 1
    items = "".join(
        f'<li data-start="{f.start:.3f}" data-end="{f.end:.3f}" data-kind="{esc(f.kind)}">'
        f'<span class="time">{clock(f.start)}</span> {f.start:.2f}&ndash;{f.end:.2f} s '
        f"{esc(f.kind)}{f' {esc(f.entity)}' if f.entity else ''}"
        f"{f' (channel {f.channel})' if several else ''}</li>"
        for f in verdict.findings
    )
    return (
        '<section class="audible" id="audible"><h2>Still audible</h2>'
        '<p class="warning" role="alert">A second listen (<code>bleepline verify</code>) still heard '
        f"{verdict.audible} digit, entity or keypad-tone stretch"
        f"{'' if verdict.audible == 1 else 'es'} in this recording:</p>"
        f'<ol class="audible-list">{items}</ol></section>'
    )


#: What a supervisor may download, by file name under ``/calls/<id>/export/``.
EXPORTS = {
    "transcript.json": "Transcript (JSON)",
    "transcript.vtt": "Subtitles (WebVTT)",
    "audio.wav": "Audio (WAV)",
}


def export_kinds(has_transcript: bool, playable: bool) -> list[tuple[str, str]]:
    """(file name, label) of the exports a call offers: transcripts once written, audio with a key."""
    names = (["transcript.json", "transcript.vtt"] if has_transcript else []) + (
        ["audio.wav"] if playable else []
    )
    return [(name, EXPORTS[name]) for name in names]


def _exports(call_id: str, exports: Sequence[tuple[str, str]]) -> str:
    if not exports:
        return ""
    links = " ".join(
        f'<a class="button" href="/calls/{esc(call_id)}/export/{esc(name)}" download>{esc(label)}</a>'
        for name, label in exports
    )
    return f'<p class="exports" id="exports">Export (recorded in the audit trail): {links}</p>'


def _provenance(transcript: Mapping[str, Any] | None) -> str:
    """The redaction policy and recognizer a transcript names (labels the relay wrote, escaped)."""
    policy = (transcript or {}).get("policy")
    models = (transcript or {}).get("models")
    parts = []
    if isinstance(policy, dict):
        labels = {"version": "version {}", "mask": "{}", "mode": "{}", "delay_s": "delay {} s"}
        said = [label.format(policy[key]) for key, label in labels.items() if key in policy]
        if said:
            parts.append(f"<dt>Policy</dt><dd>{esc(', '.join(str(x) for x in said))}</dd>")
    if isinstance(models, dict) and isinstance(models.get("asr"), str):
        parts.append(f"<dt>Recognizer</dt><dd>{esc(models['asr'])}</dd>")
    return "".join(parts)


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _segments(transcript: Mapping[str, Any] | None) -> list[tuple[float, float, str]]:
    found = []
    for item in (transcript or {}).get("segments", []):
        if not isinstance(item, dict):
            continue
        start, end, text = _finite(item.get("start")), _finite(item.get("end")), item.get("text")
        if start is None or end is None or not isinstance(text, str):
            continue
        found.append((max(start, 0.0), max(end, start), text))
    return sorted(found)


def _redactions(transcript: Mapping[str, Any] | None) -> list[tuple[float, float, str, str]]:
    found = []
    for item in (transcript or {}).get("redactions", []):
        if not isinstance(item, dict):
            continue
        start, end = _finite(item.get("start")), _finite(item.get("end"))
        entity, source = item.get("entity"), item.get("source")
        if start is None or end is None or not isinstance(entity, str):
            continue
        found.append((max(start, 0.0), max(end, start), entity, source if isinstance(source, str) else ""))
    return sorted(found)


def _marked(text: str) -> str:
    """Transcript text, escaped, with placeholders such as ``[CREDIT_CARD]`` set apart."""
    escaped = esc(text)  # brackets and capitals pass through escaping unchanged
    return _PLACEHOLDER.sub(lambda m: f'<mark class="placeholder">{m.group(0)}</mark>', escaped)


_TIMELINE_WIDTH = 1000


def _timeline(
    duration: float, redactions: list[tuple[float, float, str, str]], segments: list[tuple[float, float, str]]
) -> str:
    def x(seconds: float) -> float:
        return min(max(seconds / duration, 0.0), 1.0) * _TIMELINE_WIDTH

    speech = "".join(
        f'<rect class="speech" x="{x(s):.2f}" y="34" width="{max(x(e) - x(s), 1):.2f}" height="6" '
        'fill="#9aa5b1"/>'
        for s, e, _ in segments
    )
    marks = "".join(
        f'<rect class="redaction" data-entity="{esc(entity)}" x="{x(s):.2f}" y="6" '
        f'width="{max(x(e) - x(s), 2):.2f}" height="24" fill="{entity_colour(entity)}">'
        f"<title>{esc(entity)} {s:.1f}&ndash;{e:.1f} s{f' ({esc(source)})' if source else ''}</title></rect>"
        for s, e, entity, source in redactions
    )
    ticks = "".join(
        f'<line x1="{x(t):.2f}" x2="{x(t):.2f}" y1="0" y2="4" stroke="#7b8794"/>'
        for t in _tick_times(duration)
    )
    return (
        f'<svg id="timeline" class="timeline" data-duration="{duration:.3f}" '
        f'viewBox="0 0 {_TIMELINE_WIDTH} 44" preserveAspectRatio="none" role="slider" tabindex="0" '
        f'aria-label="Position in the call" aria-valuemin="0" aria-valuemax="{duration:.0f}" '
        'aria-valuenow="0">'
        f'<rect class="track" x="0" y="6" width="{_TIMELINE_WIDTH}" height="24" fill="#eef1f4"/>'
        f"{ticks}{marks}{speech}"
        '<line id="playhead" class="playhead" x1="0" x2="0" y1="0" y2="44" stroke="#111" '
        'stroke-width="2" vector-effect="non-scaling-stroke"/></svg>'
    )


def _tick_times(duration: float) -> list[float]:
    step = next((s for s in (5, 10, 30, 60, 300, 600, 1800) if duration / s <= 20), 3600)
    return [float(t) for t in range(step, int(duration) + 1, step)]


def _legend(redactions: list[tuple[float, float, str, str]]) -> str:
    if not redactions:
        return '<p class="legend empty">No redactions in this call.</p>'
    totals: dict[str, tuple[int, float]] = {}
    for start, end, entity, _ in redactions:
        count, seconds = totals.get(entity, (0, 0.0))
        totals[entity] = (count + 1, seconds + end - start)
    items = "".join(
        f'<li>{_swatch(entity)} {esc(entity)} <span class="muted">&times;{count}, {seconds:.1f} s</span></li>'
        for entity, (count, seconds) in sorted(totals.items())
    )
    return f'<ul class="legend" aria-label="Redactions by entity type">{items}</ul>'


# -- charts (analytics) ----------------------------------------------------------------------------------


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str = "", colour: str = "#3b6ea5") -> str:
    """A horizontal bar chart as inline SVG: one row a bar, the label left, the value right."""
    if not bars:
        return (
            f'<figure class="chart"><figcaption>{esc(title)}</figcaption>'
            '<p class="empty">No data.</p></figure>'
        )
    row, label_w, bar_w = 24, 170, 360
    top = max(value for _, value in bars) or 1.0
    height = row * len(bars)
    rows = []
    for i, (label, value) in enumerate(bars):
        y = i * row
        width = max(value / top * bar_w, 0.5 if value else 0)
        shown = f"{value:g}" if float(value).is_integer() else f"{value:.1f}"
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{esc(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row - 8}" fill="{colour}"/>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 16}">{esc(shown)}{esc(unit)}</text>'
        )
    return (
        f'<figure class="chart"><figcaption>{esc(title)}</figcaption>'
        f'<svg viewBox="0 0 {label_w + bar_w + 80} {height}" width="{label_w + bar_w + 80}" '
        f'height="{height}" role="img" aria-label="{esc(title)}">{"".join(rows)}</svg></figure>'
    )


def role_table() -> str:
    rows = "".join(
        f"<tr><td>{esc(role.value)}</td><td>{esc(', '.join(_allowed(role)))}</td></tr>" for role in Role
    )
    return (
        f'<table class="roles"><thead><tr><th>Role</th><th>May</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _allowed(role: Role) -> list[str]:
    anyone = User("_", role, frozenset())
    return [action.value for action in Action if can(anyone, action)]


# -- the audit trail -------------------------------------------------------------------------------------


def audit_page(viewer: Viewer, result: VerifyResult, records: Sequence[AuditRecord], total: int) -> str:
    if result.ok:
        verdict = (
            f'<p class="verify ok" id="verify">Chain verified: {result.records} record'
            f"{'' if result.records == 1 else 's'}, none edited, deleted or reordered.</p>"
        )
    else:
        verdict = (
            f'<p class="verify bad" id="verify" role="alert">Verification FAILED after {result.records} '
            f"good records: {esc(result.problem or 'unknown problem')}</p>"
        )
    rows = "".join(
        "<tr>"
        f"<td>{record.seq}</td><td>{esc(record.at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f"<td>{esc(record.event)}</td><td>{esc(record.user or '—')}</td><td>{esc(record.role or '—')}</td>"
        f"<td>{esc(record.call_id or '')}</td><td>{esc(record.source or '')}</td>"
        f"<td>{esc(' '.join(f'{k}={v}' for k, v in sorted(record.detail.items())))}</td>"
        "</tr>"
        for record in records
    )
    shown = (
        f'<p class="count">Newest first: {len(records)} of {total} records shown.</p>'
        if total > len(records)
        else f'<p class="count">Newest first: {total} record{"" if total == 1 else "s"}.</p>'
    )
    table = (
        '<table class="audit"><thead><tr><th>Seq</th><th>Time (UTC)</th><th>Event</th><th>User</th>'
        "<th>Role</th><th>Call</th><th>Source</th><th>Detail</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    body = f"<h1>Audit trail</h1>{verdict}{shown}{table}"
    return layout("Audit trail", body, viewer, active="/audit")


# -- users (admin) ---------------------------------------------------------------------------------------

#: What a finished change says (the query names a key; no text from the request is shown back).
USER_NOTICES = {
    "add": "User added.",
    "role": "Role changed; the user's sessions were ended.",
    "tags": "Tags changed.",
    "remove": "User removed; their sessions were ended.",
}


def _role_select(selected: Role | None = None) -> str:
    return (
        '<select name="role">'
        + "".join(
            f'<option value="{esc(r.value)}"{" selected" if r is selected else ""}>{esc(r.value)}</option>'
            for r in Role
        )
        + "</select>"
    )


def users_page(
    viewer: Viewer, users: Sequence[User], *, notice: str | None = None, error: str | None = None
) -> str:
    token = csrf_field(viewer.csrf)
    messages = (f'<p class="notice" role="status">{esc(notice)}</p>' if notice else "") + (
        f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    )
    add = (
        '<h2>Add a user</h2><form method="post" action="/admin/users/add" class="add">'
        f"{token}"
        '<label>Name <input name="name" required maxlength="64" pattern="[a-z0-9][a-z0-9._-]*"></label>'
        '<label>Password <input name="password" type="password" required minlength="8" '
        'autocomplete="new-password"></label>'
        f"<label>Role {_role_select(Role.REVIEWER)}</label>"
        '<label>Tags (outsourced: limits to calls with a tag) <input name="tags" placeholder="none"></label>'
        '<button type="submit">Add</button></form>'
    )
    rows = []
    for user in users:
        own = user.name == viewer.user.name
        name = esc(user.name)
        if own:
            actions = '<span class="muted">(you)</span>'
        else:
            actions = (
                f'<form method="post" action="/admin/users/role" class="inline">{token}'
                f'<input type="hidden" name="name" value="{name}">{_role_select(user.role)}'
                '<button type="submit">Set role</button></form> '
                f'<form method="post" action="/admin/users/tags" class="inline">{token}'
                f'<input type="hidden" name="name" value="{name}">'
                f'<input name="tags" value="{esc(", ".join(sorted(user.tags)))}" placeholder="no tags" '
                'aria-label="tags"><button type="submit">Set tags</button></form> '
                f'<form method="post" action="/admin/users/remove" class="inline" '
                f'data-confirm="Remove {name}? Their sessions end at once.">{token}'
                f'<input type="hidden" name="name" value="{name}">'
                '<button type="submit" class="danger">Remove</button></form>'
            )
        tags = " ".join(f'<span class="tag">{esc(t)}</span>' for t in sorted(user.tags)) or "—"
        rows.append(
            f"<tr><td>{name}</td><td>{esc(user.role.value)}</td><td>{tags}</td><td>{actions}</td></tr>"
        )
    table = (
        '<table class="users-list"><thead><tr><th>User</th><th>Role</th><th>Tags</th><th>Change</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
    body = (
        f'<section class="users"><h1>Users</h1>{messages}{table}{add}<h2>Roles</h2>{role_table()}</section>'
    )
    return layout("Users", body, viewer, active="/admin/users")


# -- analytics -------------------------------------------------------------------------------------------


def analytics_page(viewer: Viewer, data: Aggregates) -> str:
    if data.lag_percentiles is None:
        lag = (
            '<figure class="chart"><figcaption>Recognizer lag</figcaption>'
            '<p class="empty" id="lag-not-recorded">not recorded: no transcript in scope carries a lag '
            "figure in its stats.</p></figure>"
        )
    else:
        lag = bar_chart(
            f"Recognizer lag, seconds behind the audio ({data.lag_calls} calls)", data.lag_percentiles, " s"
        )
    charts = (
        bar_chart("Calls per day (UTC)", data.calls_per_day)
        + bar_chart("Redactions by entity type", data.redactions_by_entity, colour="#b44c3c")
        + bar_chart("Masked seconds by reason", data.masked_by_reason, " s", colour="#6b5b95")
        + lag
    )
    body = (
        f'<h1>Analytics</h1><p class="muted">Aggregates over {data.calls} '
        f"call{'' if data.calls == 1 else 's'} in your scope: counts and totals only, "
        "no call ids and no content.</p>"
        f'<div class="charts">{charts}</div>'
    )
    return layout("Analytics", body, viewer, active="/analytics")
