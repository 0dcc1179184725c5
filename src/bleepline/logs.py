"""Log output for ``serve``: plain lines for a terminal, or one JSON object a line for a log shipper.

Log lines carry counters, call ids and exception *types* only. An exception's message or traceback can
quote what it was handed (a request, a transcript, a caller's address), so neither format ever prints
them, whoever logged with ``exc_info``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

#: How the relay's own call-scoped lines begin (``log.info("call %s: ...", call_id)``).
_CALL_PREFIX = "call %s:"


def _exception_type(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return record.exc_info[0].__name__
    return None


def call_id_of(record: logging.LogRecord) -> str | None:
    """The call a record is about: ``extra={"call_id": ...}``, or the id a ``"call %s: ..."`` line names.

    Only a canonical UUID is taken (the ids the relay hands out), so nothing else can ride in this field.
    """
    given = getattr(record, "call_id", None)
    if given is None and isinstance(record.msg, str) and record.msg.startswith(_CALL_PREFIX):
        args = record.args
        if isinstance(args, tuple) and args:
            given = args[0]
    if not isinstance(given, str):
        return None
    try:
        return given if str(uuid.UUID(given)) == given else None
    except ValueError:
        return None


class TextFormatter(logging.Formatter):
    """``bleepline: message``, and for an exception its type in brackets, never its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"bleepline: {record.getMessage()}"
        kind = _exception_type(record)
        return f"{line} [{kind}]" if kind else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``call_id``
    when the line is about a call, ``exception`` (the type's name) when one was logged."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = call_id_of(record)
        if call_id is not None:
            entry["call_id"] = call_id
        kind = _exception_type(record)
        if kind is not None:
            entry["exception"] = kind
        return json.dumps(entry, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler ``configure_logging`` installs, told apart from anyone else's so it can be replaced."""

    def __init__(self, stream: TextIO, previous: tuple[int, int]) -> None:
        super().__init__(stream)
        self.previous = previous  # the root's and bleepline's levels, given back by ``remove_logging``


def configure_logging(format: str, level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Send log records to ``stream`` (stderr) as ``format``: "text" or "json".

    ``level`` is for bleepline's own lines; other libraries' (the speech and PII models chat at info while
    they load) get through from warning up, or all of them at debug. Replaces the handler an earlier call
    installed; leaves other handlers (a test harness's) alone. Returns the handler, for ``remove_logging``.
    """
    if format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {format!r}")
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    root, own = logging.getLogger(), logging.getLogger("bleepline")
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        remove_logging(old)
    handler = _Handler(sys.stderr if stream is None else stream, (root.level, own.level))
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root.addHandler(handler)
    wanted = LEVELS[level]
    root.setLevel(wanted if wanted == logging.DEBUG else max(wanted, logging.WARNING))
    own.setLevel(wanted)
    return handler


def remove_logging(handler: logging.Handler) -> None:
    """Undo ``configure_logging``: the handler is taken off and closed (its stream is left open), and the
    levels it set are given back."""
    root = logging.getLogger()
    root.removeHandler(handler)
    if isinstance(handler, _Handler):
        root.setLevel(handler.previous[0])
        logging.getLogger("bleepline").setLevel(handler.previous[1])
    handler.close()
