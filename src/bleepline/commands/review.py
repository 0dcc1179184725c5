"""`bleepline review`: the QA web app over a recordings store (``bleepline.review.app``).

It holds the reviewer identity (the private key), so it runs apart from the relay, on a host reviewers
reach; ``serve`` never gets that key.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from bleepline.control import start_control, tls_context
from bleepline.errors import BleeplineError
from bleepline.logs import configure_logging, remove_logging
from bleepline.review.app import make_review_app
from bleepline.review.config import load_review_config

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--config", type=Path, required=True, metavar="TOML", help="the review config file (review.toml)")
    add("--host", help="address to listen on (default: the config's host, else 127.0.0.1)")
    add("--port", type=int, help="port to listen on (default: the config's port, else 8450; 0: any free)")
    add("--tls-cert", type=Path, metavar="PEM", help="serve over HTTPS with this certificate")
    add("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")


def run(args: argparse.Namespace) -> int:
    config = load_review_config(args.config)
    host = args.host or config.host
    port = config.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise BleeplineError(f"--port must be 0..65535, got {port}")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise BleeplineError("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert is not None:
        try:
            tls = tls_context(str(args.tls_cert), str(args.tls_key))
        except ValueError as exc:
            raise BleeplineError(str(exc)) from None
    app = make_review_app(config)  # reads the identity now: a wrong passphrase fails before listening
    handler = configure_logging("text")
    try:
        if tls is None and not _is_loopback(host):
            # Cookies then travel in the clear: fine behind a TLS-terminating proxy on the same host only.
            log.warning("serving plain HTTP on %s: use --tls-cert/--tls-key, or a TLS proxy", host)
        asyncio.run(_serve(app, host, port, tls))
    finally:
        remove_logging(handler)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(app: web.Application, host: str, port: int, tls: ssl.SSLContext | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        runner, bound = await start_control(app, host, port, tls=tls)
    except OSError as exc:
        raise BleeplineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    scheme = "https" if tls is not None else "http"
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    # One line on stdout, flushed: scripts (and the browser test) read the address from it.
    print(f"review app on {scheme}://{shown}:{bound[1]}/", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    print("review app stopped", file=sys.stderr)
