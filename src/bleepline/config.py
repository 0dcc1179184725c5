"""`bleepline serve` settings: a TOML file, then ``BLEEPLINE_*`` environment variables, then flags.

A later source wins key by key (a list, such as ``recipients``, is replaced whole, never merged). Every
value is checked where it is read, so an error is one line that names the key and where it came from:
``serve.toml: max_calls ...``, ``$BLEEPLINE_MAX_CALLS ...`` or ``--max-calls ...``.

Secrets never come from a file or a flag (argv is visible to every user via ps, and config files end up
in repositories): the file or a flag only names the environment variable that holds a token.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bleepline.errors import BleeplineError
from bleepline.redact.policy import MAX_DELAY_S
from bleepline.server import DEFAULT_MAX_CALLS, OVER_CAPACITY
from bleepline.speech.models import COMPUTE_TYPES, DEVICES

ENV_PREFIX = "BLEEPLINE_"
#: The config file when ``--config`` is not given.
CONFIG_ENV = "BLEEPLINE_CONFIG"

CODECS = ("pcmu", "pcma")
MASK_MODES = ("beep", "silence")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Per-call UDP ports for calls set up over the control API.
DEFAULT_RTP_PORTS = range(20000, 21000)
MIN_DELAY_S = 0.5

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST = re.compile(r"[A-Za-z0-9.:_%-]{1,253}")


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``serve`` needs, checked. Field names are the config file's keys.

    ``rtp_host`` is where calls set up over the control API get their UDP ports (default: the control
    API's host); ``advertise`` is the address their SDP answers name (default: the bound address).
    The tokens are read from the environment variables named by ``token_env`` and ``metrics_token_env``;
    they are kept out of ``repr`` so that printing a config never shows them.
    """

    codec: str
    recipients: tuple[Path, ...]
    store: Path
    rtp_listen: tuple[str, int] | None = None
    control: tuple[str, int] | None = None
    token_env: str | None = None
    metrics_token_env: str | None = None
    rtp_host: str | None = None
    advertise: str | None = None
    rtp_ports: range = DEFAULT_RTP_PORTS
    max_calls: int = DEFAULT_MAX_CALLS
    max_listening_calls: int | None = None  # None: LISTENING_CALLS_PER_CORE per core (server.py)
    over_capacity: str = "refuse"
    idle_timeout: float = 10.0
    delay: float | None = None
    mask: str | None = None
    model: str | None = None
    device: str = "cpu"  # where the speech model runs: cpu, cuda or auto
    compute_type: str | None = None  # None: int8 on cpu, float16 on cuda (speech.models)
    asr_batch: bool | None = None  # None: batch calls' windows on a GPU only (speech.batch)
    log_format: str = "text"
    log_level: str = "info"
    allow_plain_rtp: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    webrtc: bool = True  # WHIP ingest and WHEP listening on the control API
    ice_addresses: tuple[str, ...] | None = None  # None: every interface but loopback
    ice_timeout: float = 15.0
    demo: bool = False  # the browser demo page at /v1/demo
    control_token: str = field(default="", repr=False)
    metrics_token: str | None = field(default=None, repr=False)

    @property
    def rtp_bind_host(self) -> str | None:
        """The host calls set up over the control API bind their ports on; None without a control API."""
        if self.control is None:
            return None
        return self.rtp_host or self.control[0]


# -- sources ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where a value came from, to name it in an error the way the user wrote it."""

    kind: str  # "file", "env" or "flag"
    file: Path | None = None

    @property
    def text(self) -> bool:
        # The environment and argv hold strings; TOML holds typed values, and a wrong type is an error.
        return self.kind != "file"

    def label(self, key: str) -> str:
        if self.kind == "flag":
            return _FLAGS.get(key, "--" + key.replace("_", "-"))
        if self.kind == "env":
            return f"${env_name(key)}"
        return f"{self.file}: {key}"


def env_name(key: str) -> str:
    """The environment variable that overrides ``key``: ``BLEEPLINE_`` and the key in capitals."""
    return ENV_PREFIX + key.upper()


# -- values -----------------------------------------------------------------------------------------------


class _InvalidValueError(ValueError):
    """A value that breaks its key's rule; the message is the rule ("must be ...")."""


def _string(value: object, source: _Source, rule: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _InvalidValueError(rule)
    return value.strip()


def _host_port(value: object, source: _Source) -> tuple[str, int]:
    rule = "must be HOST:PORT"
    host, sep, port = _string(value, source, rule).rpartition(":")
    host = host.strip("[]")
    if not sep or not _HOST.fullmatch(host) or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise _InvalidValueError(rule)
    return host, int(port)


def _port_range(value: object, source: _Source) -> range:
    rule = "must be LO-HI within 1-65535"
    lo, sep, hi = _string(value, source, rule).partition("-")
    lo, hi = lo.strip(), hi.strip()
    if not sep or not lo.isdigit() or not hi.isdigit() or not 1 <= int(lo) <= int(hi) <= 65535:
        raise _InvalidValueError(rule)
    return range(int(lo), int(hi) + 1)


def _variable(value: object, source: _Source) -> str:
    rule = "must name an environment variable (letters, digits, _)"
    text = _string(value, source, rule)
    if not _ENV_NAME.fullmatch(text):
        raise _InvalidValueError(rule)
    return text


def _host(value: object, source: _Source) -> str:
    rule = "must be a host name or address"
    text = _string(value, source, rule)
    if not _HOST.fullmatch(text):
        raise _InvalidValueError(rule)
    return text


def _unicast_ip(value: object, source: _Source) -> str:
    # It goes into every SDP answer, which only takes a literal address (and must never take a new line).
    rule = "must be a literal unicast IPv4 or IPv6 address"
    text = _string(value, source, rule)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise _InvalidValueError(rule) from None
    if ip.is_multicast or ip.is_unspecified or "%" in text:
        raise _InvalidValueError(rule)
    return text


def _number(value: object, source: _Source, rule: str) -> float:
    # bool is an int: "max_calls = true" must not pass as 1.
    if isinstance(value, str) and source.text:
        try:
            number = float(value)
        except ValueError:
            raise _InvalidValueError(rule) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _InvalidValueError(rule)
    if not math.isfinite(number):
        raise _InvalidValueError(rule)
    return number


def _count(value: object, source: _Source) -> int:
    rule = "must be a whole number from 1 to 100000"
    if isinstance(value, str) and source.text and value.strip().isdigit():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise _InvalidValueError(rule)
    if not 1 <= number <= 100_000:
        raise _InvalidValueError(rule)
    return number


def _seconds(value: object, source: _Source) -> float:
    rule = "must be a number of seconds above 0"
    number = _number(value, source, rule)
    if not number > 0:
        raise _InvalidValueError(rule)
    return number


def _delay(value: object, source: _Source) -> float:
    rule = f"must be between {MIN_DELAY_S} and {MAX_DELAY_S:g} seconds"
    number = _number(value, source, rule)
    if not MIN_DELAY_S <= number <= MAX_DELAY_S:
        raise _InvalidValueError(rule)
    return number


def _choice(options: tuple[str, ...]) -> Callable[[object, _Source], str]:
    rule = "must be one of " + ", ".join(options)

    def parse(value: object, source: _Source) -> str:
        text = _string(value, source, rule)
        if text not in options:
            raise _InvalidValueError(rule)
        return text

    return parse


def _path(value: object, source: _Source) -> Path:
    if isinstance(value, Path) and source.kind == "flag":
        return value
    path = Path(_string(value, source, "must be a path"))
    # Relative to the file that names it, so that a config file and the keys beside it move together.
    if source.file is not None and not path.is_absolute():
        return source.file.parent / path
    return path


def _paths(value: object, source: _Source) -> tuple[Path, ...]:
    rule = (
        "must be a list of paths" if source.kind == "file" else f"must be paths separated by {os.pathsep!r}"
    )
    if source.kind == "env" and isinstance(value, str):
        value = [part for part in value.split(os.pathsep) if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise _InvalidValueError(rule)
    try:
        return tuple(_path(item, source) for item in value)
    except _InvalidValueError:
        raise _InvalidValueError(rule) from None


def _bool(value: object, source: _Source) -> bool:
    rule = "must be true or false"
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and source.text:
        word = value.strip().lower()
        if word in ("true", "yes", "1", "on"):
            return True
        if word in ("false", "no", "0", "off"):
            return False
    raise _InvalidValueError(rule)


def _addresses(value: object, source: _Source) -> tuple[str, ...]:
    # Each becomes a host candidate in every WebRTC answer: literal unicast addresses only.
    rule = (
        "must be a list of literal IP addresses"
        if source.kind == "file"
        else "must be literal IP addresses separated by ','"
    )
    if isinstance(value, str) and source.text:
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise _InvalidValueError(rule)
    try:
        return tuple(_unicast_ip(item, source) for item in value)
    except _InvalidValueError:
        raise _InvalidValueError(rule) from None


def _model(value: object, source: _Source) -> str:
    return _string(value, source, "must be a model name or a CTranslate2 directory")


#: Every key, with its parser. The dataclass fields not listed here (the tokens) have no key on purpose.
_PARSERS: dict[str, Callable[[object, _Source], Any]] = {
    "rtp_listen": _host_port,
    "control": _host_port,
    "token_env": _variable,
    "metrics_token_env": _variable,
    "rtp_host": _host,
    "advertise": _unicast_ip,
    "rtp_ports": _port_range,
    "max_calls": _count,
    "max_listening_calls": _count,
    "over_capacity": _choice(OVER_CAPACITY),
    "idle_timeout": _seconds,
    "codec": _choice(CODECS),
    "recipients": _paths,
    "store": _path,
    "delay": _delay,
    "mask": _choice(MASK_MODES),
    "model": _model,
    "device": _choice(DEVICES),
    "compute_type": _choice(COMPUTE_TYPES),
    "asr_batch": _bool,
    "log_format": _choice(LOG_FORMATS),
    "log_level": _choice(LOG_LEVELS),
    "allow_plain_rtp": _bool,
    "tls_cert": _path,
    "tls_key": _path,
    "webrtc": _bool,
    "ice_addresses": _addresses,
    "ice_timeout": _seconds,
    "demo": _bool,
}
KEYS = tuple(_PARSERS)

#: Flags whose name is not the key's (``--recipient`` is given once per key).
_FLAGS = {"recipients": "--recipient", "webrtc": "--no-webrtc"}

#: Keys a config file might reach for that must stay out of it, and what to do instead.
_SECRETS = {
    "token": "token_env",
    "control_token": "token_env",
    "metrics_token": "metrics_token_env",
}


def _shown(value: object) -> str:
    # repr escapes new lines, so the error stays one line; long values are cut, they add nothing.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse(key: str, value: object, source: _Source) -> Any:
    try:
        return _PARSERS[key](value, source)
    except _InvalidValueError as exc:
        raise BleeplineError(f"{source.label(key)} {exc}, got {_shown(value)}") from None


# -- loading ----------------------------------------------------------------------------------------------


def read_config_file(path: Path) -> dict[str, Any]:
    """The checked values of a TOML config file, by key; a one-line error for anything wrong in it."""
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except OSError as exc:
        raise BleeplineError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        reason = " ".join(str(exc).split())
        raise BleeplineError(f"{path}: not valid TOML: {reason}") from None
    source = _Source("file", path)
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key in _SECRETS:
            raise BleeplineError(
                f"{path}: {key}: a token is never read from a file; put it in an environment variable "
                f"and name that with {_SECRETS[key]}"
            )
        if key not in _PARSERS:
            raise BleeplineError(f"{path}: unknown key {_shown(key)} (known: {', '.join(KEYS)})")
        values[key] = _parse(key, value, source)
    return values


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The checked values of the ``BLEEPLINE_<KEY>`` variables that are set and not empty.

    Other ``BLEEPLINE_*`` variables are left alone: some belong to other commands (the passphrase, debug).
    """
    source = _Source("env")
    values: dict[str, Any] = {}
    for key in KEYS:
        text = environ.get(env_name(key), "")
        if text.strip():
            values[key] = _parse(key, text, source)
    return values


def read_flags(flags: Mapping[str, object]) -> dict[str, Any]:
    """The checked values of the flags that were given (None: not given), by key."""
    source = _Source("flag")
    return {key: _parse(key, value, source) for key, value in flags.items() if value is not None}


def load_config(
    flags: Mapping[str, object],
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServeConfig:
    """Defaults, then ``config_file`` (or ``$BLEEPLINE_CONFIG``), then the environment, then ``flags``.

    ``flags`` maps keys to what the command line gave (None where a flag was not given). The tokens are
    read from the environment variables the result names. Raises ``BleeplineError``, one line.
    """
    env = os.environ if environ is None else environ
    if config_file is None and env.get(CONFIG_ENV, "").strip():
        config_file = Path(env[CONFIG_ENV].strip())
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(read_config_file(config_file))
    values.update(read_environment(env))
    values.update(read_flags(flags))
    return _complete(values, env)


def _complete(values: dict[str, Any], env: Mapping[str, str]) -> ServeConfig:
    for key, what in (("codec", "the calls' codec"), ("recipients", "a recipient"), ("store", "a store")):
        if key not in values:
            raise BleeplineError(
                f"{what} is needed: give {_FLAGS.get(key, '--' + key)}, ${env_name(key)} "
                f"or {key} in the config file"
            )
    if values.get("rtp_listen") is None and values.get("control") is None:
        raise BleeplineError(
            "give --rtp-listen, --control, or both (or rtp_listen, control in the config file)"
        )
    control_token = ""
    metrics_token = None
    if values.get("control") is not None:
        control_token = _token("the control API", values.get("token_env"), "token_env", env)
        if values.get("metrics_token_env") is not None:
            metrics_token = _token("/metrics", values["metrics_token_env"], "metrics_token_env", env)
        host = values.get("rtp_host") or values["control"][0]
        if values.get("advertise") is None and _is_wildcard(host):
            raise BleeplineError(
                f"calls' RTP ports are bound on the wildcard address {host}: give --advertise "
                "(or advertise in the config file), the address callers send their audio to"
            )
    elif values.get("metrics_token_env") is not None:
        raise BleeplineError("metrics_token_env is for the control API's /metrics: give --control as well")
    if (values.get("tls_cert") is None) != (values.get("tls_key") is None):
        raise BleeplineError(
            "HTTPS for the control API needs both tls_cert and tls_key (--tls-cert, --tls-key)"
        )
    if values.get("demo") and not values.get("webrtc", True):
        raise BleeplineError("the demo page publishes and listens over WebRTC: demo needs webrtc")
    if values.get("tls_cert") is not None and values.get("control") is None:
        raise BleeplineError("tls_cert and tls_key are for the control API: give --control as well")
    known = {f.name for f in fields(ServeConfig)}
    return ServeConfig(
        **{key: value for key, value in values.items() if key in known},
        control_token=control_token,
        metrics_token=metrics_token,
    )


def _token(what: str, variable: str | None, key: str, env: Mapping[str, str]) -> str:
    if variable is None:
        raise BleeplineError(
            f"{what} needs a token: give {_Source('flag').label(key)} VAR (or {key} in the config file) "
            "naming the environment variable that holds it"
        )
    token = env.get(variable, "")
    if not token.strip():
        raise BleeplineError(f"{what} needs a token: ${variable} is empty or not set")
    return token


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
