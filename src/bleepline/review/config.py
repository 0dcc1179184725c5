"""The review side's configuration file (TOML): where recordings are, where its own state lives, and
the rules for retention and CRM export.

Relative paths are taken from the config file's directory, so a config can travel with its store. Every
key is checked: an unknown key is an error rather than silently ignored, since a misspelt retention key
would otherwise keep recordings longer than policy allows.

Example::

    store = "/srv/bleepline/recordings"
    state = "/srv/bleepline/review-state"
    identity = "/etc/bleepline/identity.key"
    session_timeout_s = 1800

    [retention]
    days = 90
    by_tag = { outsourced = 30 }

    [webhook]
    url = "https://crm.example/hooks/bleepline"
    secret_file = "/etc/bleepline/crm.secret"
    fields = ["call_id", "started_at", "duration_s", "entity_counts", "review_url"]
    base_url = "https://review.example"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from bleepline.errors import BleeplineError

#: Fields a CRM webhook may carry. ``transcript`` is not among them: it goes out only when the config
#: says ``include_transcript = true`` in so many words (see ``bleepline.review.crm``).
WEBHOOK_FIELDS = (
    "call_id",
    "started_at",
    "ended_at",
    "duration_s",
    "entity_counts",
    "masked_seconds",
    "review_url",
)
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_TOP_KEYS = frozenset(
    {
        "store",
        "state",
        "identity",
        "session_timeout_s",
        "login_attempts",
        "login_window_s",
        "host",
        "port",
        "retention",
        "webhook",
    }
)
_RETENTION_KEYS = frozenset({"days", "by_tag"})
_WEBHOOK_KEYS = frozenset({"url", "secret_file", "fields", "include_transcript", "max_attempts", "base_url"})


class ReviewConfigError(BleeplineError):
    """The review config file is missing, unreadable, or has a bad or unknown key."""


@dataclass(frozen=True)
class WebhookSettings:
    """Where and what the CRM webhook sends."""

    url: str
    secret_file: Path
    fields: tuple[str, ...]
    include_transcript: bool = False
    max_attempts: int = 5
    base_url: str | None = None  # the review app's public address, for the review-page link


@dataclass(frozen=True)
class ReviewConfig:
    """Everything the review side needs to know."""

    store: Path  # <call_id>.bleep, <call_id>.transcript.json, <call_id>.vtt, as redact/serve write them
    state: Path  # users.db, tags.db, audit.log, audit.key, audit.head, crm.db
    identity: Path | None  # the reviewer identity.key that decrypts; None: nothing can be played
    retention_days: int | None = None
    retention_by_tag: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    session_timeout_s: int = 1800
    login_attempts: int = 5
    login_window_s: int = 300
    webhook: WebhookSettings | None = None
    host: str = "127.0.0.1"  # where `bleepline review` listens unless told otherwise
    port: int = 8450


def load_review_config(path: Path) -> ReviewConfig:
    """Read and check a review config file; any problem is one ``ReviewConfigError`` line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReviewConfigError(f"{path}: config file does not exist") from None
    except IsADirectoryError:
        raise ReviewConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ReviewConfigError(f"{path}: cannot be read: {(exc.strerror or 'error').lower()}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReviewConfigError(f"{path}: not valid TOML: {first_line}") from None
    try:
        return parse_review_config(doc, path.parent)
    except ReviewConfigError as exc:
        raise ReviewConfigError(f"{path}: {exc}") from None


def parse_review_config(doc: Mapping[str, Any], base: Path) -> ReviewConfig:
    """Build a config from an already-parsed TOML document; relative paths are taken from ``base``."""
    _reject_unknown(doc, _TOP_KEYS, "")
    store = _path(doc, "store", base, required=True)
    state = _path(doc, "state", base, required=True)
    assert store is not None
    assert state is not None
    identity = _path(doc, "identity", base, required=False)
    retention = _table(doc, "retention")
    _reject_unknown(retention, _RETENTION_KEYS, "retention.")
    retention_days = _positive_int(retention, "days", "retention.", None)
    by_tag_doc = _table(retention, "by_tag", "retention.")
    by_tag: dict[str, int] = {}
    for tag in by_tag_doc:
        if not TAG_PATTERN.fullmatch(tag):
            raise ReviewConfigError(f"retention.by_tag: {tag!r} is not a tag name (letters, digits, . _ -)")
        days = _positive_int(by_tag_doc, tag, "retention.by_tag.", None)
        assert days is not None
        by_tag[tag] = days
    webhook = _webhook(doc, base)
    host = doc.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ReviewConfigError("host must be a host name or address")
    port = _positive_int(doc, "port", "", 8450)
    assert port is not None
    if port > 65535:
        raise ReviewConfigError(f"port must be 1..65535, got {port}")
    return ReviewConfig(
        store=store,
        state=state,
        identity=identity,
        retention_days=retention_days,
        retention_by_tag=MappingProxyType(by_tag),
        session_timeout_s=_required_default(doc, "session_timeout_s", 1800),
        login_attempts=_required_default(doc, "login_attempts", 5),
        login_window_s=_required_default(doc, "login_window_s", 300),
        webhook=webhook,
        host=host,
        port=port,
    )


def _webhook(doc: Mapping[str, Any], base: Path) -> WebhookSettings | None:
    if "webhook" not in doc:
        return None
    table = _table(doc, "webhook")
    _reject_unknown(table, _WEBHOOK_KEYS, "webhook.")
    url = table.get("url")
    if not isinstance(url, str) or not _is_http_url(url):
        raise ReviewConfigError("webhook.url must be an http:// or https:// URL")
    secret_file = _path(table, "secret_file", base, required=True, prefix="webhook.")
    assert secret_file is not None
    fields = table.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise ReviewConfigError("webhook.fields must be a non-empty list of field names")
    for name in fields:
        if name == "transcript":
            raise ReviewConfigError(
                "webhook.fields: the transcript is not a field; set webhook.include_transcript = true "
                "to send it"
            )
        if name not in WEBHOOK_FIELDS:
            raise ReviewConfigError(
                f"webhook.fields: {name!r} is not allowed (allowed: {', '.join(WEBHOOK_FIELDS)})"
            )
    if len(set(fields)) != len(fields):
        raise ReviewConfigError("webhook.fields names a field twice")
    include_transcript = table.get("include_transcript", False)
    if not isinstance(include_transcript, bool):
        raise ReviewConfigError("webhook.include_transcript must be true or false")
    max_attempts = _positive_int(table, "max_attempts", "webhook.", 5)
    assert max_attempts is not None
    if max_attempts > 20:
        raise ReviewConfigError("webhook.max_attempts must be at most 20")
    base_url = table.get("base_url")
    if base_url is not None and (not isinstance(base_url, str) or not _is_http_url(base_url)):
        raise ReviewConfigError("webhook.base_url must be an http:// or https:// URL")
    if "review_url" in fields and base_url is None:
        raise ReviewConfigError("webhook.fields has review_url, which needs webhook.base_url")
    return WebhookSettings(
        url=url,
        secret_file=secret_file,
        fields=tuple(fields),
        include_transcript=include_transcript,
        max_attempts=max_attempts,
        base_url=base_url,
    )


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in text)


def _reject_unknown(doc: Mapping[str, Any], known: frozenset[str], prefix: str) -> None:
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ReviewConfigError(f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")


def _table(doc: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ReviewConfigError(f"{prefix}{key} must be a table")
    return value


def _path(doc: Mapping[str, Any], key: str, base: Path, *, required: bool, prefix: str = "") -> Path | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise ReviewConfigError(f"missing key {prefix}{key}")
        return None
    if not isinstance(value, str) or not value:
        raise ReviewConfigError(f"{prefix}{key} must be a path (a string)")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _positive_int(doc: Mapping[str, Any], key: str, prefix: str, default: int | None) -> int | None:
    value = doc.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ReviewConfigError(f"{prefix}{key} must be a positive whole number, got {value!r}")
    return value


def _required_default(doc: Mapping[str, Any], key: str, default: int) -> int:
    value = _positive_int(doc, key, "", default)
    assert value is not None
    return value
