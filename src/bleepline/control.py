"""The HTTP control API (aiohttp): calls set up by SDP offer/answer, listed, inspected and ended.

Every endpoint wants ``Authorization: Bearer <token>``, except ``/healthz`` (open), ``/metrics`` (the
token, or a separate read-only metrics token) and a call's WHEP endpoint (its listener tokens too, see
``bleepline.webrtc.routes``); errors are one-line JSON, never a traceback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

from bleepline.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bleepline.metrics import MetricsCollector
from bleepline.server import NEGOTIABLE_CODECS, CallRefusedError, RelayServer
from bleepline.transport.sdp import SdpError, answer_direction, build_answer, negotiate, parse_offer
from bleepline.transport.srtp import SRTP_SUITES, srtp_for_offer
from bleepline.webrtc.demo import add_demo_route
from bleepline.webrtc.gateway import WebRtcGateway
from bleepline.webrtc.routes import Scope, add_webrtc_routes, listener_scope

log = logging.getLogger(__name__)

#: Largest request body: an SDP offer is a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SERVER_KEY = web.AppKey("server", RelayServer)
_CONFIG_KEY = web.AppKey("config", dict)
_METRICS_KEY = web.AppKey("metrics", MetricsCollector)

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _auth_middleware(token: str, metrics_token: str | None = None, scope: Scope | None = None) -> Middleware:
    expected = f"Bearer {token}".encode()
    # A scraper gets a token of its own where one is configured: the control token also sets up and ends
    # calls, and a monitoring system's secrets are not guarded like the PBX's.
    metrics_expected = f"Bearer {metrics_token}".encode() if metrics_token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        # Constant time: how much of a guess was right must not show in how long the answer takes.
        allowed = hmac.compare_digest(given, expected)
        if request.path == HEALTH_PATH:
            # Open: load balancers and orchestrators probe without secrets, and the answer holds only
            # "ok" or "draining" and a count of calls.
            allowed = True
        elif request.path == METRICS_PATH and metrics_expected is not None:
            allowed = allowed or hmac.compare_digest(given, metrics_expected)
        # /metrics otherwise wants the control token: its counters hold no content, but call volumes
        # and refusals are still the operator's business, not anyone's who can reach the port.
        if not allowed and scope is not None:
            # A listener token opens its own call's WHEP endpoint and nothing else: held out of scope,
            # it is refused as such (403), not as no token at all.
            verdict = scope(request, given)
            if verdict is False:
                return _error(403, "a listener token opens only its own call's WHEP endpoint")
            allowed = verdict is True
        if not allowed:
            return _error(401, "authorization required", {"WWW-Authenticate": "Bearer"})
        try:
            return await handler(request)
        except web.HTTPException as exc:
            # aiohttp's own errors (404 for no route, 405, 413) as the same one-line JSON as ours.
            if exc.status >= 400:
                return _error(exc.status, exc.reason)
            raise
        except Exception as exc:
            # By type only: the message could quote the request, and the request could hold anything.
            log.error("control request failed (%s)", type(exc).__name__)
            return _error(500, "internal error")

    return middleware


def _call_id(request: web.Request) -> str | None:
    text = request.match_info.get("call_id", "")
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    # The canonical form only: anything else (braces, urn:, upper case) is not an id we handed out.
    return text if str(parsed) == text else None


#: What a JSON call request may hold: the SDP offer, and where the outgoing legs go (each optional).
_CALL_REQUEST_KEYS = ("sdp", "passthrough", "redacted")


class _BadRequestError(Exception):
    """A call request that is not understood; the message is for the one-line 400 answer."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # A key given twice could mean either value: refused rather than the last one silently winning.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _BadRequestError("the JSON body repeats a key")
        result[key] = value
    return result


def _host_port(name: str, value: object) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a numeric host; the message never quotes the value."""
    rule = f'"{name}" must be a string HOST:PORT with a numeric IP address ([v6]:PORT for IPv6)'
    if not isinstance(value, str):
        raise _BadRequestError(rule)
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise _BadRequestError(rule)
    # isascii too: str.isdigit takes superscripts and other scripts' digits, which int() then refuses.
    if not colon or not (port.isascii() and port.isdigit()) or len(port) > 5 or "%" in host:
        raise _BadRequestError(rule)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise _BadRequestError(rule) from None
    if not 0 < int(port) <= 0xFFFF:
        raise _BadRequestError(f'"{name}" port must be 1-65535')
    if ip.is_multicast or ip.is_unspecified:
        raise _BadRequestError(f'"{name}" must be a unicast address')
    return str(ip), int(port)


def _json_call_request(body: bytes) -> tuple[str, tuple[str, int] | None, tuple[str, int] | None]:
    """The offer and the legs of a JSON request: ``{"sdp": ..., "passthrough": ..., "redacted": ...}``."""
    try:
        request = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: a body of nested brackets is hostile, not a server fault.
        raise _BadRequestError("the body is not a JSON object") from None
    if not isinstance(request, dict):
        raise _BadRequestError("the body is not a JSON object")
    unknown = sorted(set(request) - set(_CALL_REQUEST_KEYS))
    if unknown:
        # Names only if they are ours to name: an unknown key is text from the request.
        raise _BadRequestError(f"unknown keys in the request; it takes {', '.join(_CALL_REQUEST_KEYS)}")
    offer = request.get("sdp")
    if not isinstance(offer, str):
        raise _BadRequestError('"sdp" (the SDP offer, a string) is required')
    passthrough = _host_port("passthrough", request["passthrough"]) if "passthrough" in request else None
    redacted = _host_port("redacted", request["redacted"]) if "redacted" in request else None
    return offer, passthrough, redacted


async def _create_call(request: web.Request) -> web.Response:
    if request.content_type not in ("application/sdp", "application/json"):
        return _error(
            415,
            "the body must be an SDP offer (Content-Type: application/sdp) or a JSON call request "
            "(Content-Type: application/json)",
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = await request.read()  # client_max_size stops a body without a length at the same limit
    passthrough: tuple[str, int] | None = None
    redacted: tuple[str, int] | None = None
    if request.content_type == "application/json":
        try:
            text, passthrough, redacted = _json_call_request(body)
        except _BadRequestError as exc:
            return _error(400, str(exc))
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "the SDP offer is not UTF-8 text")
    server = request.app[_SERVER_KEY]
    config = request.app[_CONFIG_KEY]
    try:
        offer = parse_offer(text)
        if offer.protocol == "RTP/AVP" and not config["allow_plain_rtp"]:
            # Call audio in the clear: only where the operator said the network allows it.
            raise SdpError("plain RTP is not allowed here; offer RTP/SAVP with a=crypto (SDES)")
        negotiated = negotiate(offer, tuple(NEGOTIABLE_CODECS), srtp_suites=SRTP_SUITES)
        # The caller's key for what it sends, and a fresh one of ours for the redacted leg.
        contexts = srtp_for_offer(negotiated.crypto) if negotiated.crypto is not None else None
        # RFC 3264 6.1: the direction speaks for this stream only, between the offer's address and the
        # answer's. The relay always receives the offerer's media; it sends on this stream only when
        # the redacted leg goes back to the offer's own address and port: then sendrecv (cut to what
        # the offer allows). A leg sent anywhere else (passthrough, or redacted to a third address) is
        # no part of this stream, so the answer stays recvonly, and the offerer is not told to expect
        # media it will never get.
        to_offerer = redacted is not None and redacted == (offer.address, offer.port)
        direction = answer_direction(offer.direction, "sendrecv" if to_offerer else "recvonly")
        if to_offerer and direction not in ("sendrecv", "sendonly"):
            raise SdpError(f"the offer is {offer.direction}: the redacted leg cannot be sent back to it")
    except SdpError as exc:
        return _error(400, str(exc))
    try:
        call = await server.start_negotiated_call(
            negotiated,
            config["rtp_host"],
            config["rtp_ports"],
            passthrough=passthrough,
            redacted=redacted,
            srtp=contexts,
        )
    except CallRefusedError as exc:
        return _error(503, str(exc))
    except ValueError as exc:  # a leg the call's socket cannot send to; the message quotes no address
        return _error(400, str(exc))
    assert call.endpoint is not None
    host, port = call.endpoint.local_address
    answer = build_answer(
        negotiated,
        address=config.get("advertise") or host,
        port=port,
        session_id=uuid.UUID(call.call_id).int >> 66,  # any number; from the id, so it is unique enough
        direction=direction,
        crypto=None if contexts is None else contexts.answer,
    )
    # The answer holds the relay's SRTP key: it goes to the caller in the body, never to a log.
    return web.Response(
        status=201,
        text=answer,
        content_type="application/sdp",
        headers={"Location": f"/v1/calls/{call.call_id}"},
    )


async def _list_calls(request: web.Request) -> web.Response:
    calls = request.app[_SERVER_KEY].negotiated_calls()
    return web.json_response({"calls": [{"id": call_id, "state": state} for call_id, state in calls]})


async def _get_call(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    status = None if call_id is None else request.app[_SERVER_KEY].negotiated_status(call_id)
    if status is None:
        return _error(404, "no such call")
    return web.json_response(
        {
            "id": status.call_id,
            "state": status.state,
            "duration_s": status.duration_s,
            "packets": status.packets,
            "drops": status.drops,
            "masked_s": status.masked_s,
            "sent": status.sent,
        }
    )


async def _delete_call(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    if call_id is None or not await request.app[_SERVER_KEY].end_negotiated_call(call_id):
        return _error(404, "no such call")
    return web.Response(status=204)


async def _healthz(request: web.Request) -> web.Response:
    server = request.app[_SERVER_KEY]
    # 503 while draining: a load balancer stops sending new calls to a relay that is ending its own.
    status, code = ("draining", 503) if server.draining else ("ok", 200)
    return web.json_response({"status": status, "calls_active": server.active_calls}, status=code)


async def _metrics(request: web.Request) -> web.Response:
    text = request.app[_METRICS_KEY].render()
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


def make_app(
    server: RelayServer,
    *,
    token: str,
    rtp_host: str,
    rtp_ports: range,
    advertise: str | None = None,
    metrics_token: str | None = None,
    allow_plain_rtp: bool = False,
    demo: bool = False,
    webrtc: WebRtcGateway | Literal[False] | None = None,
) -> web.Application:
    """The control API for ``server``; calls get a UDP port on ``rtp_host`` from ``rtp_ports``.

    ``advertise`` is the address the SDP answer names, when ``rtp_host`` is not reachable as such
    (a wildcard bind, or NAT); by default the bound address. ``GET /healthz`` needs no token;
    ``GET /metrics`` takes ``token`` or, where given, ``metrics_token`` (which opens nothing else).
    Offers of SRTP (RTP/SAVP with SDES keys) are always taken; plain RTP only with ``allow_plain_rtp``.
    WHIP and WHEP (``bleepline.webrtc.routes``) are served by ``webrtc``: None for a gateway with the
    default options, False for none.
    """
    if not token:
        raise ValueError("the control API needs a non-empty token")
    gateway = WebRtcGateway(server) if webrtc is None else webrtc or None
    scope = None if gateway is None else listener_scope(gateway)
    app = web.Application(
        middlewares=[_auth_middleware(token, metrics_token, scope)], client_max_size=MAX_BODY_BYTES
    )
    app[_SERVER_KEY] = server
    app[_METRICS_KEY] = MetricsCollector(server)
    app[_CONFIG_KEY] = {
        "rtp_host": rtp_host,
        "rtp_ports": rtp_ports,
        "advertise": advertise,
        "allow_plain_rtp": allow_plain_rtp,
    }
    app.router.add_post("/v1/calls", _create_call)
    app.router.add_get("/v1/calls", _list_calls)
    app.router.add_get("/v1/calls/{call_id}", _get_call)
    app.router.add_delete("/v1/calls/{call_id}", _delete_call)
    app.router.add_get(HEALTH_PATH, _healthz)
    app.router.add_get(METRICS_PATH, _metrics)
    if gateway is not None:
        add_webrtc_routes(app, gateway)
    if demo:  # the browser page at /v1/demo (no token to load it); off unless asked for
        add_demo_route(app)
    return app


async def start_control(
    app: web.Application, host: str, port: int, *, tls: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, tuple[str, int]]:
    """Serve ``app`` on ``host:port`` (0: any free port), over HTTPS with ``tls``; returns the runner
    (``cleanup`` it) and the address."""
    runner = web.AppRunner(app, access_log=None)  # an access log would keep callers' addresses
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockname = runner.addresses[0]  # the port the OS chose, for port 0
    return runner, (str(sockname[0]), int(sockname[1]))


def tls_context(certificate: str, key: str) -> ssl.SSLContext:
    """A server TLS context from PEM files: TLS 1.2 at least; errors are one line, naming the file."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise ValueError(f"cannot load the TLS certificate {certificate} and key {key}: {reason}") from None
    return context
