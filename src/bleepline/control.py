"""The HTTP control API (aiohttp): calls set up by SDP offer/answer, listed, inspected and ended.

Every endpoint wants ``Authorization: Bearer <token>``; errors are one-line JSON, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from bleepline.server import NEGOTIABLE_CODECS, CallRefusedError, RelayServer
from bleepline.transport.sdp import SdpError, answer_direction, build_answer, negotiate, parse_offer

log = logging.getLogger(__name__)

#: Largest request body: an SDP offer is a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SERVER_KEY = web.AppKey("server", RelayServer)
_CONFIG_KEY = web.AppKey("config", dict)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _auth_middleware(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        # Constant time: how much of a guess was right must not show in how long the answer takes.
        if not hmac.compare_digest(given, expected):
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


async def _create_call(request: web.Request) -> web.Response:
    if request.content_type != "application/sdp":
        return _error(415, "the body must be an SDP offer (Content-Type: application/sdp)")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = await request.read()  # client_max_size stops a body without a length at the same limit
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "the SDP offer is not UTF-8 text")
    server = request.app[_SERVER_KEY]
    config = request.app[_CONFIG_KEY]
    try:
        offer = parse_offer(text)
        if offer.protocol != "RTP/AVP":
            # SRTP needs the keys wired into the receive path: not in this step, so refused plainly.
            raise SdpError(f"{offer.protocol} is not supported yet; offer plain RTP/AVP")
        negotiated = negotiate(offer, tuple(NEGOTIABLE_CODECS))
        # The relay only listens: it answers recvonly (or inactive, for an offer that will not send).
        direction = answer_direction(offer.direction, "recvonly")
    except SdpError as exc:
        return _error(400, str(exc))
    try:
        call = await server.start_negotiated_call(negotiated, config["rtp_host"], config["rtp_ports"])
    except CallRefusedError as exc:
        return _error(503, str(exc))
    assert call.endpoint is not None
    host, port = call.endpoint.local_address
    answer = build_answer(
        negotiated,
        address=config.get("advertise") or host,
        port=port,
        session_id=uuid.UUID(call.call_id).int >> 66,  # any number; from the id, so it is unique enough
        direction=direction,
        crypto=None,
    )
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
        }
    )


async def _delete_call(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    if call_id is None or not await request.app[_SERVER_KEY].end_negotiated_call(call_id):
        return _error(404, "no such call")
    return web.Response(status=204)


def make_app(
    server: RelayServer,
    *,
    token: str,
    rtp_host: str,
    rtp_ports: range,
    advertise: str | None = None,
) -> web.Application:
    """The control API for ``server``; calls get a UDP port on ``rtp_host`` from ``rtp_ports``.

    ``advertise`` is the address the SDP answer names, when ``rtp_host`` is not reachable as such
    (a wildcard bind, or NAT); by default the bound address.
    """
    if not token:
        raise ValueError("the control API needs a non-empty token")
    app = web.Application(middlewares=[_auth_middleware(token)], client_max_size=MAX_BODY_BYTES)
    app[_SERVER_KEY] = server
    app[_CONFIG_KEY] = {"rtp_host": rtp_host, "rtp_ports": rtp_ports, "advertise": advertise}
    app.router.add_post("/v1/calls", _create_call)
    app.router.add_get("/v1/calls", _list_calls)
    app.router.add_get("/v1/calls/{call_id}", _get_call)
    app.router.add_delete("/v1/calls/{call_id}", _delete_call)
    return app


async def start_control(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, tuple[str, int]]:
    """Serve ``app`` on ``host:port`` (0: any free port); returns the runner (``cleanup`` it) and address."""
    runner = web.AppRunner(app, access_log=None)  # an access log would keep callers' addresses
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    sockname = runner.addresses[0]  # the port the OS chose, for port 0
    return runner, (str(sockname[0]), int(sockname[1]))
