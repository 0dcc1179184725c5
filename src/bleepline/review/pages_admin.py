"""The admin pages beyond users: call tags and retention. Server-rendered like ``pages``: every value
through ``esc``, no inline script or style (the confirmation prompts are ``data-confirm``, handled in
``static/review.js``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bleepline.review.catalog import CallEntry
from bleepline.review.config import ReviewConfig
from bleepline.review.pages import Viewer, clock, csrf_field, esc, layout, when
from bleepline.review.policy import MAX_DAYS, Overrides
from bleepline.review.retention import Expiry, describe_rule


def _messages(notice: str | None, error: str | None) -> str:
    return (f'<p class="notice" role="status">{esc(notice)}</p>' if notice else "") + (
        f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    )


def _tags(tags: frozenset[str]) -> str:
    return " ".join(f'<span class="tag">{esc(t)}</span>' for t in sorted(tags)) or "—"


def shred_form(viewer: Viewer, call_id: str, back: str) -> str:
    """A shred-now form: the admin must type the call id (``confirm``), and the browser asks once more."""
    name = esc(call_id)
    return (
        f'<form method="post" action="/admin/calls/{name}/shred" class="inline shred" '
        f'data-confirm="Shred call {name} now? Its keys are destroyed and its files removed: this cannot '
        f'be undone.">{csrf_field(viewer.csrf)}<input type="hidden" name="back" value="{esc(back)}">'
        f'<input name="confirm" required maxlength="128" autocomplete="off" placeholder="type {name}" '
        f'aria-label="type the call id {name} to confirm"><button type="submit" class="danger">Shred now'
        "</button></form>"
    )


# -- call tags -------------------------------------------------------------------------------------------


def call_tags_page(
    viewer: Viewer, entries: Sequence[CallEntry], *, notice: str | None = None, error: str | None = None
) -> str:
    rows = []
    for entry in entries:
        name = esc(entry.call_id)
        admin_tags = entry.tags - entry.header_tags
        rows.append(
            f'<tr id="call-{name}"><td><code>{name}</code></td><td>{esc(when(entry.created_at))}</td>'
            f"<td>{clock(entry.duration)}</td><td>{_tags(entry.header_tags)}</td><td>"
            f'<form method="post" action="/admin/calls/{name}/tags" class="inline">{csrf_field(viewer.csrf)}'
            f'<input name="tags" value="{esc(", ".join(sorted(admin_tags)))}" placeholder="no tags" '
            f'maxlength="2000" aria-label="tags of {name}"><button type="submit">Save</button></form></td>'
            f"<td>{shred_form(viewer, entry.call_id, 'calls')}</td></tr>"
        )
    table = (
        '<table class="call-tags"><thead><tr><th>Call</th><th>Started (UTC)</th><th>Length</th>'
        "<th>Tags from the relay</th><th>Tags set here</th><th>Delete</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if entries
        else '<p class="empty">No calls.</p>'
    )
    body = (
        '<section class="admin-calls"><h1>Call tags</h1>'
        '<p class="muted">A reviewer limited to tags (outsourced, say) sees exactly the calls that carry '
        "one of them. Tags from the relay are part of the recording and cannot be changed here; tags set "
        "here are separated by commas.</p>"
        f"{_messages(notice, error)}{table}</section>"
    )
    return layout("Call tags", body, viewer, active="/admin/calls")


# -- retention -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRow:
    """One scope of the policy: the config's period, the stored override, and the shorter of the two."""

    tag: str | None  # None: the whole store
    config_days: int | None
    override_days: int | None

    @property
    def effective(self) -> int | None:
        present = [d for d in (self.config_days, self.override_days) if d is not None]
        return min(present) if present else None


def policy_rows(config: ReviewConfig, overrides: Overrides) -> list[PolicyRow]:
    rows = [PolicyRow(None, config.retention_days, overrides.days)]
    for tag in sorted(set(config.retention_by_tag) | set(overrides.by_tag)):
        rows.append(PolicyRow(tag, config.retention_by_tag.get(tag), overrides.by_tag.get(tag)))
    return rows


@dataclass(frozen=True)
class Expiring:
    """A call the dry run would shred: no content, only what the policy decides by."""

    call_id: str
    created_at: datetime
    age_days: int
    period_days: int
    rule: str

    @classmethod
    def of(cls, expiry: Expiry) -> Expiring:
        e = expiry.entry
        return cls(e.call_id, e.created_at, expiry.age_days, expiry.period_days, expiry.rule)


def _days(days: int | None) -> str:
    return "—" if days is None else f"{days} days"


def retention_page(
    viewer: Viewer,
    policy: Sequence[PolicyRow],
    expiring: Sequence[Expiring],
    now: datetime,
    *,
    skipped: int = 0,
    notice: str | None = None,
    error: str | None = None,
) -> str:
    token = csrf_field(viewer.csrf)
    rows = []
    for row in policy:
        scope = "whole store" if row.tag is None else f'tag <span class="tag">{esc(row.tag)}</span>'
        hidden = (
            '<input type="hidden" name="scope" value="store">'
            if row.tag is None
            else f'<input type="hidden" name="scope" value="tag"><input type="hidden" name="tag" '
            f'value="{esc(row.tag)}">'
        )
        clear = (
            f'<form method="post" action="/admin/retention/clear" class="inline">{token}{hidden}'
            '<button type="submit">Clear override</button></form>'
            if row.override_days is not None
            else ""
        )
        rows.append(
            f"<tr><td>{scope}</td><td>{_days(row.config_days)}</td><td>{_days(row.override_days)}</td>"
            f"<td><strong>{_days(row.effective)}</strong></td><td>{clear}</td></tr>"
        )
    table = (
        '<table class="policy"><thead><tr><th>Scope</th><th>Config file</th><th>Override</th>'
        f"<th>In force</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    days_input = f'<input name="days" type="number" min="1" max="{MAX_DAYS}" step="1" required>'
    forms = (
        '<h2>Set an override</h2><div class="override-forms">'
        f'<form method="post" action="/admin/retention/set" class="inline">{token}'
        '<input type="hidden" name="scope" value="store">'
        f'<label>Whole store: days {days_input}</label><button type="submit">Set</button></form>'
        f'<form method="post" action="/admin/retention/set" class="inline">{token}'
        '<input type="hidden" name="scope" value="tag">'
        '<label>Tag <input name="tag" required maxlength="64"></label>'
        f'<label>days {days_input}</label><button type="submit">Set</button></form></div>'
    )
    if expiring:
        dry = "".join(
            f"<tr><td><code>{esc(e.call_id)}</code></td><td>{esc(when(e.created_at))}</td>"
            f"<td>{e.age_days} days</td><td>{e.period_days} days</td><td>{esc(describe_rule(e.rule))}</td>"
            f"<td>{shred_form(viewer, e.call_id, 'retention')}</td></tr>"
            for e in expiring
        )
        expiring_block = (
            '<table class="expiring"><thead><tr><th>Call</th><th>Started (UTC)</th><th>Age</th>'
            f"<th>Period</th><th>Rule</th><th>Delete</th></tr></thead><tbody>{dry}</tbody></table>"
        )
    else:
        expiring_block = '<p class="empty" id="nothing-expires">Nothing would expire now.</p>'
    unreadable = (
        f'<p class="muted">{skipped} file{"" if skipped == 1 else "s"} in the store could not be read, so '
        f"{'its age is' if skipped == 1 else 'their ages are'} unknown: <code>bleepline retention run</code> "
        "names them.</p>"
        if skipped
        else ""
    )
    body = (
        '<section class="retention"><h1>Retention</h1>'
        '<p class="muted">A call is shredded when the shortest period that applies to it (the store\'s, '
        "or one of its tags') has passed. An override can only shorten a period the config file sets; "
        "to keep calls longer, change the config. <code>bleepline retention run</code> applies it.</p>"
        f"{_messages(notice, error)}{table}{forms}"
        f"<h2>Would expire now ({esc(now.strftime('%Y-%m-%d %H:%M'))} UTC)</h2>{expiring_block}{unreadable}"
        "</section>"
    )
    return layout("Retention", body, viewer, active="/admin/retention")
