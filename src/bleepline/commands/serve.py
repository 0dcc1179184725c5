"""`bleepline serve`: the live relay in static mode, RTP in on one UDP port, redacted recordings out.

Runs until SIGINT or SIGTERM, then ends every call cleanly (recordings and transcripts finalised), exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from bleepline.audio.codecs import PCMA, PCMU
from bleepline.commands.redact import Redactor, policy_from_args
from bleepline.errors import BleeplineError
from bleepline.server import RelayServer
from bleepline.speech.models import resolve_model
from bleepline.store.keys import load_recipient

CODECS = {"pcmu": PCMU, "pcma": PCMA}


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a pair; a one-line error otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BleeplineError(f"--rtp-listen must be HOST:PORT, got {text!r}")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    host, port = parse_host_port(args.rtp_listen)
    if args.delay is not None and not 0.5 <= args.delay <= 30.0:
        raise BleeplineError(f"--delay must be between 0.5 and 30 seconds, got {args.delay}")
    if not args.idle_timeout > 0:
        raise BleeplineError(f"--idle-timeout must be positive, got {args.idle_timeout}")
    recipients = [load_recipient(p) for p in args.recipient]
    store: Path = args.store
    if store.exists() and not store.is_dir():
        raise BleeplineError(f"{store}: exists and is not a directory")
    store.mkdir(parents=True, exist_ok=True)
    policy = policy_from_args(args)
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
    asyncio.run(_serve(server, host, port))
    return 0


async def _serve(server: RelayServer, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.stop)
    try:
        await server.run(host, port)
    except OSError as exc:
        raise BleeplineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
