"""`bleepline audit`, `retention`, `crm` and `users`: the review side's admin commands.

Each reads the review config (``--config review.toml``) and works on its store and state. Every change
made here is written to the audit trail with source ``cli`` and the operating-system account that ran
it (a staff login name, not a review user).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bleepline.errors import BleeplineError
from bleepline.review.audit import AuditError, AuditEvent, AuditLog, AuditRecord, verify
from bleepline.review.catalog import Catalog
from bleepline.review.config import ReviewConfig, load_review_config
from bleepline.review.crm import Delivery, DeliveryStatus, WebhookSender, sender_for, unsent
from bleepline.review.policy import PolicyStore
from bleepline.review.retention import describe_rule, run_retention
from bleepline.review.users import USERS_DB, Role, UserStore

#: The environment variable a new password is read from (else it is asked for on the terminal).
PASSWORD_ENV = "BLEEPLINE_PASSWORD"
CLI_SOURCE = "cli"
_OPERATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def add_commands(sub: Any) -> None:
    """Register the commands on the top-level subparsers (``sub`` from ``add_subparsers``)."""
    p = sub.add_parser("audit", help="check or show the review side's audit trail")
    audit_sub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    q = audit_sub.add_parser("verify", help="check every record, the chain and the head; exit 1 if broken")
    _config(q)
    q.set_defaults(run=run_audit_verify)
    q = audit_sub.add_parser("show", help="print the audit trail (records it as an audit view)")
    _config(q)
    q.add_argument("--last", type=int, metavar="N", help="only the last N records")
    q.add_argument("--json", action="store_true", help="one JSON object a record, with prev and mac")
    q.set_defaults(run=run_audit_show)

    p = sub.add_parser("retention", help="crypto-shred recordings whose retention period is over")
    retention_sub = p.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    q = retention_sub.add_parser("run", help="shred and remove expired recordings, one line each")
    _config(q)
    q.add_argument("--dry-run", action="store_true", help="only say what would be shredded")
    q.add_argument(
        "--as-of",
        metavar="TIME",
        help="with --dry-run: preview as of this UTC date or time (e.g. 2027-01-01)",
    )
    q.set_defaults(run=run_retention_command)

    p = sub.add_parser("crm", help="send call outcomes to the CRM webhook")
    crm_sub = p.add_subparsers(dest="crm_command", required=True, metavar="ACTION")
    q = crm_sub.add_parser("send", help="send a signed webhook for each finished call not yet sent")
    _config(q)
    q.add_argument("--call", metavar="ID", help="only this call")
    q.add_argument("--force", action="store_true", help="with --call: send again even if already sent")
    q.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="keep going: look for newly finished calls (and retry failed ones) every SECONDS until stopped",
    )
    q.set_defaults(run=run_crm_send)
    q = crm_sub.add_parser("status", help="delivery state per call: sent, pending, failed")
    _config(q)
    q.set_defaults(run=run_crm_status)

    p = sub.add_parser("users", help="review users and their roles")
    users_sub = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    roles = [r.value for r in Role]
    q = users_sub.add_parser("add", help=f"add a user (password from ${PASSWORD_ENV} or asked for)")
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=roles)
    q.add_argument("--tags", default="", help="comma-separated tags: limit the user to calls with these")
    _config(q)
    q.set_defaults(run=run_users_add)
    q = users_sub.add_parser("list", help="list users, roles and tags")
    _config(q)
    q.set_defaults(run=run_users_list)
    q = users_sub.add_parser("remove", help="remove a user")
    q.add_argument("name")
    _config(q)
    q.set_defaults(run=run_users_remove)
    q = users_sub.add_parser("set-role", help="change a user's role")
    q.add_argument("name")
    q.add_argument("role", choices=roles)
    _config(q)
    q.set_defaults(run=run_users_set_role)
    q = users_sub.add_parser("set-tags", help="change a user's tags (empty: all calls)")
    q.add_argument("name")
    q.add_argument("tags", help="comma-separated tags, or '' for none")
    _config(q)
    q.set_defaults(run=run_users_set_tags)
    q = users_sub.add_parser("set-password", help=f"change a user's password (from ${PASSWORD_ENV} or asked)")
    q.add_argument("name")
    _config(q)
    q.set_defaults(run=run_users_set_password)


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="TOML", help="the review config file")


def _load(args: argparse.Namespace) -> ReviewConfig:
    return load_review_config(args.config)


def _operator() -> str | None:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return None
    return name if _OPERATOR.fullmatch(name) else None


def _audit_cli(config: ReviewConfig, event: AuditEvent, **detail: str | int) -> None:
    operator = _operator()
    if operator is not None:
        detail["operator"] = operator
    AuditLog(config.state).append(event, source=CLI_SOURCE, detail=detail)


# audit


def run_audit_verify(args: argparse.Namespace) -> int:
    config = _load(args)
    result = verify(config.state)
    if result.ok:
        print(f"audit trail OK: {result.records} records")
        return 0
    print(f"audit trail BROKEN: {result.problem}")
    return 1


def run_audit_show(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.last is not None and args.last <= 0:
        raise BleeplineError(f"--last must be a positive number, got {args.last}")
    log = AuditLog(config.state)
    records = log.records()
    if args.last is not None:
        records = records[-args.last :]
    for record in records:
        print(record_json(record) if args.json else format_record(record))
    if not records:
        print("(no audit records)")
    try:
        _audit_cli(config, AuditEvent.AUDIT_VIEW, records=len(records))
    except AuditError as exc:
        # Showing a damaged trail is exactly when it is needed: say so rather than refuse.
        print(f"bleepline: warning: this view could not be recorded: {exc}", file=sys.stderr)
    return 0


def record_json(record: AuditRecord) -> str:
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    fields["at"] = record.at.isoformat().replace("+00:00", "Z")
    fields["detail"] = dict(record.detail)
    return json.dumps(fields, sort_keys=True)


def format_record(record: AuditRecord) -> str:
    at = record.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    detail = " ".join(f"{k}={v}" for k, v in sorted(record.detail.items()))
    parts = [
        f"{record.seq:>6}",
        at,
        f"{record.event:<16}",
        f"user={record.user or '-'}",
        f"role={record.role or '-'}",
        f"call={record.call_id or '-'}",
        f"from={record.source or '-'}",
    ]
    return "  ".join(parts) + (f"  {detail}" if detail else "")


# retention


def run_retention_command(args: argparse.Namespace) -> int:
    config = _load(args)
    now = None
    if args.as_of is not None:
        if not args.dry_run:
            raise BleeplineError("--as-of only previews: use it with --dry-run")
        now = _parse_as_of(args.as_of)
    overrides = PolicyStore.in_state(config.state).overrides()  # set by admins in the web app
    configured = config.retention_days is not None or config.retention_by_tag
    if not configured and overrides.days is None and not overrides.by_tag:
        print("no retention period configured ([retention] days or by_tag, or an override): nothing expires")
    report = run_retention(config, now=now, dry_run=args.dry_run, source=CLI_SOURCE)
    verb = "would shred" if report.dry_run else "shredded"
    for outcome in report.shredded:
        print(
            f"{verb} {outcome.call_id}: created {outcome.created_at:%Y-%m-%d}, {outcome.age_days} days old; "
            f"{describe_rule(outcome.rule)} period {outcome.period_days} days"
        )
    for failure in report.failed:
        print(f"FAILED {failure.call_id}: {failure.reason}")
    for skipped in report.skipped:
        print(f"skipped {skipped.name}: {skipped.reason}")
    total = f"{verb} {len(report.shredded)} recording{'s' if len(report.shredded) != 1 else ''}"
    print(f"{total}, kept {report.kept}, failed {len(report.failed)}, skipped {len(report.skipped)}")
    return 1 if report.failed else 0


def _parse_as_of(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BleeplineError(f"--as-of: {text!r} is not a date or time like 2027-01-01") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# crm


def run_crm_send(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.force and not args.call:
        raise BleeplineError("--force resends one call: give --call ID")
    if args.watch is not None and (args.call or args.watch <= 0):
        raise BleeplineError("--watch takes a positive number of seconds, and sends every call (no --call)")
    sender, catalog = sender_for(config)
    if args.watch is not None:
        try:
            asyncio.run(watch_and_send(sender, catalog, args.watch))
        except KeyboardInterrupt:
            print("stopped")
        return 0
    results = asyncio.run(sender.send_pending(catalog, call_id=args.call, force=args.force))
    _print_deliveries(results)
    failed = sum(1 for d in results if d.status is not DeliveryStatus.SENT)
    print(f"sent {len(results) - failed}, failed {failed}")
    return 1 if failed else 0


async def watch_and_send(sender: WebhookSender, catalog: Catalog, every_s: float) -> None:
    """One webhook per call as calls finish: the store is looked at every ``every_s``; failed deliveries
    are tried again on each pass, so an outage of the CRM delays outcomes rather than losing them."""
    while True:
        _print_deliveries(await sender.send_pending(catalog), flush=True)
        await asyncio.sleep(every_s)


def _print_deliveries(results: list[Delivery], *, flush: bool = False) -> None:
    for delivery in results:
        error = f" ({delivery.last_error})" if delivery.last_error else ""
        print(
            f"{delivery.status.value:<7} {delivery.call_id}: {delivery.attempts} attempt(s){error}",
            flush=flush,
        )


def run_crm_status(args: argparse.Namespace) -> int:
    config = _load(args)
    sender, catalog = sender_for(config)
    deliveries = sender.deliveries.all()
    for delivery in deliveries:
        error = f"; last error: {delivery.last_error}" if delivery.last_error else ""
        print(
            f"{delivery.status.value:<7} {delivery.call_id}: {delivery.attempts} attempt(s), "
            f"updated {delivery.updated_at}{error}"
        )
    counts = {status: sum(1 for d in deliveries if d.status is status) for status in DeliveryStatus}
    never = unsent(catalog, sender.deliveries)
    print(
        f"sent {counts[DeliveryStatus.SENT]}, pending {counts[DeliveryStatus.PENDING]}, "
        f"failed {counts[DeliveryStatus.FAILED]}, not yet attempted {len(never)}"
    )
    return 0


# users


def _users(config: ReviewConfig) -> UserStore:
    return UserStore(config.state / USERS_DB)


def _split_tags(text: str) -> frozenset[str]:
    return frozenset(t.strip() for t in text.split(",") if t.strip())


def _new_password(name: str) -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise BleeplineError(f"no password: set ${PASSWORD_ENV} or run in a terminal to be asked")
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("repeat password: ") != first:
        raise BleeplineError("the passwords do not match")
    return first


def run_users_add(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _users(config)
    user = store.add(args.name, _new_password(args.name), args.role, _split_tags(args.tags))
    _audit_cli(config, AuditEvent.USER_CHANGE, action="add", target=user.name, new_role=user.role.value)
    print(f"added {user.name} as {user.role.value}{_scope(user.tags)}")
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    config = _load(args)
    users = _users(config).list()
    for user in users:
        print(f"{user.name:<24} {user.role.value:<10} {','.join(sorted(user.tags)) or '(all calls)'}")
    if not users:
        print("(no users: add one with `bleepline users add NAME --role admin --config ...`)")
    return 0


def run_users_remove(args: argparse.Namespace) -> int:
    config = _load(args)
    _users(config).remove(args.name)
    _audit_cli(config, AuditEvent.USER_CHANGE, action="remove", target=args.name)
    print(f"removed {args.name}")
    return 0


def run_users_set_role(args: argparse.Namespace) -> int:
    config = _load(args)
    user = _users(config).set_role(args.name, args.role)
    _audit_cli(config, AuditEvent.USER_CHANGE, action="set_role", target=user.name, new_role=user.role.value)
    print(f"{user.name} is now {user.role.value}")
    return 0


def run_users_set_tags(args: argparse.Namespace) -> int:
    config = _load(args)
    user = _users(config).set_tags(args.name, _split_tags(args.tags))
    _audit_cli(config, AuditEvent.USER_CHANGE, action="set_tags", target=user.name, tags=len(user.tags))
    print(
        f"{user.name} now sees {'calls tagged ' + ', '.join(sorted(user.tags)) if user.tags else 'all calls'}"
    )
    return 0


def run_users_set_password(args: argparse.Namespace) -> int:
    config = _load(args)
    _users(config).set_password(args.name, _new_password(args.name))
    _audit_cli(config, AuditEvent.USER_CHANGE, action="set_password", target=args.name)
    print(f"password changed for {args.name}")
    return 0


def _scope(tags: frozenset[str]) -> str:
    return f", limited to calls tagged {', '.join(sorted(tags))}" if tags else ""
