"""`bleepline serve`: the live relay, RTP in (one static UDP port, or calls set up over the HTTP control
API), redacted recordings out.

Settings come from a TOML file (``--config``), then ``BLEEPLINE_*`` variables, then flags (see
``bleepline.config`` and docs/serve-config.md). Runs until SIGINT or SIGTERM, then ends every call
cleanly (recordings and transcripts finalised; ``/healthz`` answers 503 meanwhile), exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Literal

from bleepline.audio.codecs import PCMA, PCMU
from bleepline.commands.redact import Redactor, output_directory, policy_from_args
from bleepline.config import CODECS as CODEC_NAMES
from bleepline.config import (
    LOG_FORMATS,
    LOG_LEVELS,
    MASK_MODES,
    ServeConfig,
    load_config,
)
from bleepline.control import make_app, start_control, tls_context
from bleepline.errors import BleeplineError
from bleepline.logs import configure_logging, remove_logging
from bleepline.server import DEFAULT_MAX_CALLS, LISTENING_CALLS_PER_CORE, OVER_CAPACITY, RelayServer
from bleepline.speech.models import default_compute_type, resolve_model
from bleepline.store.keys import load_recipient
from bleepline.webrtc.gateway import WebRtcGateway, WebRtcOptions

CODECS = {"pcmu": PCMU, "pcma": PCMA}  # by the names bleepline.config accepts

#: Per-call UDP ports when --rtp-ports is not given.
DEFAULT_RTP_PORTS = "20000-20999"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s flags. None is the default of each, so that only a flag given overrides the config
    file and the environment; values are checked by ``bleepline.config``, for one-line errors."""
    add = parser.add_argument
    add("--config", type=Path, metavar="FILE", help="TOML settings file (default: $BLEEPLINE_CONFIG)")
    add("--rtp-listen", metavar="HOST:PORT", help="UDP address to receive RTP on (static mode)")
    add("--control", metavar="HOST:PORT", help="HTTP control API address: calls set up by SDP")
    add("--token-env", metavar="VAR", help="environment variable holding the control API's token")
    add("--metrics-token-env", metavar="VAR", help="environment variable holding a token for /metrics only")
    add("--rtp-host", metavar="HOST", help="where control API calls bind their ports (default: its host)")
    add("--advertise", metavar="IP", help="address SDP answers name (default: the bound address)")
    add(
        "--rtp-ports",
        metavar="LO-HI",
        help=f"UDP ports for calls set up over the control API (default {DEFAULT_RTP_PORTS})",
    )
    add("--max-calls", metavar="N", help=f"calls at once; more are refused (default {DEFAULT_MAX_CALLS})")
    add(
        "--max-listening-calls",
        metavar="N",
        help=f"calls the recognizer hears at once (default {LISTENING_CALLS_PER_CORE} per CPU core)",
    )
    add(
        "--over-capacity",
        metavar="|".join(OVER_CAPACITY),
        help="a call the recognizer cannot take: refused (default), or recorded all masked",
    )
    add("--codec", metavar="|".join(CODEC_NAMES), help="the static-mode calls' audio codec")
    add(
        "--recipient",
        dest="recipients",
        type=Path,
        action="append",
        metavar="PUB",
        help="recipient public key; repeat for several recipients",
    )
    add("--store", type=Path, metavar="DIR", help="directory for the recordings")
    add("--delay", metavar="S", help="seconds audio is held for the recognizer (default 3.5)")
    add("--mask", metavar="|".join(MASK_MODES), help="how personal data is masked (default beep)")
    add(
        "--idle-timeout",
        metavar="S",
        help="end a call after this many seconds without packets (default 10)",
    )
    add("--model", help="speech model: whisper-tiny-en (default) or a CTranslate2 directory")
    add("--device", metavar="cpu|cuda|auto", help="where the speech model runs (default cpu)")
    add("--compute-type", metavar="TYPE", help="the model's precision (default int8 on cpu, float16 on cuda)")
    add(
        "--asr-batch",
        metavar="true|false",
        help="decode the windows of calls due together in one batch (default: on a GPU only)",
    )
    add("--log-format", metavar="|".join(LOG_FORMATS), help="log lines as text (default) or JSON")
    add("--log-level", metavar="|".join(LOG_LEVELS), help="least important lines logged (default info)")
    add(
        "--allow-plain-rtp",
        action="store_const",
        const="true",
        help="take control API offers of plain RTP/AVP (default: SRTP with SDES keys only)",
    )
    add("--tls-cert", type=Path, metavar="PEM", help="serve the control API over HTTPS with this certificate")
    add("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    add(
        "--no-webrtc",
        dest="webrtc",
        action="store_const",
        const="false",
        help="no WHIP ingest nor WHEP listening on the control API (default: on)",
    )
    add("--ice-addresses", metavar="IP,...", help="the only host addresses WebRTC offers ICE (default: all)")
    add("--ice-timeout", metavar="S", help="give up a WebRTC peer not connected by then (default 15)")
    add("--demo", action="store_const", const="true", help="serve the browser demo page at /v1/demo")


#: The flags' destinations that are config keys (all but --config).
_FLAG_KEYS = (
    "rtp_listen",
    "control",
    "token_env",
    "metrics_token_env",
    "rtp_host",
    "advertise",
    "rtp_ports",
    "max_calls",
    "max_listening_calls",
    "over_capacity",
    "codec",
    "recipients",
    "store",
    "delay",
    "mask",
    "idle_timeout",
    "model",
    "device",
    "compute_type",
    "asr_batch",
    "log_format",
    "log_level",
    "allow_plain_rtp",
    "tls_cert",
    "tls_key",
    "webrtc",
    "ice_addresses",
    "ice_timeout",
    "demo",
)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """The settings: ``--config`` (or ``$BLEEPLINE_CONFIG``), then the environment, then the flags."""
    return load_config({key: getattr(args, key, None) for key in _FLAG_KEYS}, config_file=args.config)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    recipients = [load_recipient(p) for p in config.recipients]
    # One place for the policy's rules: the same builder as `redact`, from the checked settings.
    policy = policy_from_args(argparse.Namespace(delay=config.delay, mask=config.mask))
    store = output_directory(config.store)
    handler = configure_logging(config.log_format, config.log_level)
    try:
        # The models load once, before the port opens: the first call must not wait for them.
        model = resolve_model(
            config.model,
            device=config.device,
            compute_type=config.compute_type or default_compute_type(config.device),
        )
        redactor = Redactor(recipients, policy, model, batch=config.asr_batch)
        server = RelayServer(
            codec=CODECS[config.codec],
            recipients=recipients,
            store=store,
            policy=policy,
            listener_factory=redactor.listener,
            models=redactor.models,
            idle_timeout_s=config.idle_timeout,
            max_calls=config.max_calls,
            max_listening_calls=config.max_listening_calls,
            over_capacity=config.over_capacity,
        )
        asyncio.run(_serve(server, config))
    finally:
        remove_logging(handler)
    return 0


async def _serve(server: RelayServer, config: ServeConfig) -> None:
    loop = asyncio.get_running_loop()

    def stop(signum: signal.Signals) -> None:
        # Draining starts here: /healthz answers 503 until every call's recording is finalised.
        log.info("%s: ending %d calls, then stopping", signum.name, server.active_calls)
        server.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    runner = None
    control, rtp_host = config.control, config.rtp_bind_host
    if control is not None and rtp_host is not None:
        webrtc: WebRtcGateway | Literal[False] = (
            WebRtcGateway(
                server, WebRtcOptions(ice_addresses=config.ice_addresses, ice_timeout_s=config.ice_timeout)
            )
            if config.webrtc
            else False
        )
        app = make_app(
            server,
            token=config.control_token,
            rtp_host=rtp_host,
            rtp_ports=config.rtp_ports,
            advertise=config.advertise,
            metrics_token=config.metrics_token,
            allow_plain_rtp=config.allow_plain_rtp,
            demo=config.demo,
            webrtc=webrtc,
        )
        tls = None
        if config.tls_cert is not None and config.tls_key is not None:
            try:
                tls = tls_context(str(config.tls_cert), str(config.tls_key))
            except ValueError as exc:
                raise BleeplineError(str(exc)) from None
        try:
            runner, bound = await start_control(app, *control, tls=tls)
        except OSError as exc:
            raise BleeplineError(
                f"cannot listen on {control[0]}:{control[1]}: {exc.strerror or exc}"
            ) from None
        scheme = "https" if tls is not None else "http"
        # One line (operators' tooling reads it): WHIP and WHEP, when on, share the port.
        log.info(
            "control API on %s://%s:%d/v1/calls%s",
            scheme,
            *bound,
            " (and WebRTC: /v1/whip)" if webrtc else "",
        )
    host, port = config.rtp_listen if config.rtp_listen is not None else (None, 0)
    try:
        await server.run(host, port)
    except OSError as exc:
        raise BleeplineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        if runner is not None:
            await runner.cleanup()
