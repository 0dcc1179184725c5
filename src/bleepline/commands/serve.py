"""`bleepline serve`: the live relay, RTP in (one static UDP port, or calls set up over the HTTP control
API), redacted recordings out.

Runs until SIGINT or SIGTERM, then ends every call cleanly (recordings and transcripts finalised), exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from bleepline.audio.codecs import PCMA, PCMU
from bleepline.commands.redact import Redactor, output_directory, policy_from_args
from bleepline.control import make_app, start_control
from bleepline.errors import BleeplineError
from bleepline.server import RelayServer
from bleepline.speech.models import resolve_model
from bleepline.store.keys import load_recipient

CODECS = {"pcmu": PCMU, "pcma": PCMA}


#: Per-call UDP ports when --rtp-ports is not given.
DEFAULT_RTP_PORTS = "20000-20999"


def parse_host_port(text: str, option: str = "--rtp-listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a pair; a one-line error otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BleeplineError(f"{option} must be HOST:PORT, got {text!r}")
    return host, int(port)


def parse_port_range(text: str) -> range:
    """``LO-HI`` (inclusive, 1-65535) as a range; a one-line error otherwise."""
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or not 1 <= int(lo) <= int(hi) <= 65535:
        raise BleeplineError(f"--rtp-ports must be LO-HI within 1-65535, got {text!r}")
    return range(int(lo), int(hi) + 1)


def _control_token(args: argparse.Namespace) -> str:
    # From the environment, never the command line: argv is visible to every user via ps.
    if not args.token_env:
        raise BleeplineError("--control needs --token-env VAR naming the variable that holds the token")
    token = os.environ.get(args.token_env, "")
    if not token.strip():
        raise BleeplineError(f"--control needs a token: ${args.token_env} is empty or not set")
    return token


def run(args: argparse.Namespace) -> int:
    if args.rtp_listen is None and args.control is None:
        raise BleeplineError("give --rtp-listen, --control, or both")
    host, port = parse_host_port(args.rtp_listen) if args.rtp_listen is not None else (None, 0)
    control: tuple[str, int] | None = None
    token = ""
    ports = parse_port_range(args.rtp_ports or DEFAULT_RTP_PORTS)
    if args.control is not None:
        control = parse_host_port(args.control, "--control")
        token = _control_token(args)
    if not args.idle_timeout > 0:
        raise BleeplineError(f"--idle-timeout must be positive, got {args.idle_timeout}")
    recipients = [load_recipient(p) for p in args.recipient]
    policy = policy_from_args(args)
    store = output_directory(args.store)
    # The models load once, before the port opens: the first call must not wait for them.
    redactor = Redactor(recipients, policy, resolve_model(args.model))
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="bleepline: %(message)s")
    server = RelayServer(
        codec=CODECS[args.codec],
        recipients=recipients,
        store=store,
        policy=policy,
        listener_factory=redactor.listener,
        models=redactor.models,
        idle_timeout_s=args.idle_timeout,
    )
    asyncio.run(_serve(server, host, port, control, token, ports))
    return 0


async def _serve(
    server: RelayServer,
    host: str | None,
    port: int,
    control: tuple[str, int] | None,
    token: str,
    ports: range,
) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.stop)
    runner = None
    if control is not None:
        # Calls get their ports on the control API's address, which the SDP answer names.
        app = make_app(server, token=token, rtp_host=control[0], rtp_ports=ports)
        try:
            runner, bound = await start_control(app, *control)
        except OSError as exc:
            raise BleeplineError(
                f"cannot listen on {control[0]}:{control[1]}: {exc.strerror or exc}"
            ) from None
        logging.getLogger(__name__).info("control API on http://%s:%d/v1/calls", *bound)
    try:
        await server.run(host, port)
    except OSError as exc:
        raise BleeplineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        if runner is not None:
            await runner.cleanup()
