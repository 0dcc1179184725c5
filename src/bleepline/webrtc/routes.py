"""The HTTP side of WebRTC: WHIP (RFC 9725) to publish a call, listener tokens, WHEP to hear a call's
redacted audio. Errors are one-line JSON like the rest of the control API; nothing from a body is quoted.

    POST   /v1/whip                              control token; SDP offer -> 201 answer, Location
    DELETE /v1/whip/{call_id}                    control token; 204 once recording and transcript are final
    PATCH  /v1/whip/{call_id}                    405: ICE is gathered in full before answering (no trickle)
    POST   /v1/calls/{call_id}/listeners         control token -> 201 {"token", "whep"}
    POST   /v1/calls/{call_id}/whep              listener token (that call's) or control token -> 201 answer
    DELETE /v1/calls/{call_id}/whep/{listener}   the token that opened it, or the control token -> 204
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiohttp import web

from bleepline.server import CallRefusedError
from bleepline.webrtc.gateway import ListenersFullError, NoSuchCallError, WebRtcGateway
from bleepline.webrtc.offers import MAX_OFFER_BYTES, OfferError

_GATEWAY_KEY = web.AppKey("webrtc", WebRtcGateway)
#: Where the middleware leaves the listener token a request came with (None: the control token).
LISTENER_TOKEN = web.RequestKey("listener_token", str)

#: The route names a listener token may open (with its own call id, and its own session for DELETE).
WHEP_ROUTE = "whep"
WHEP_SESSION_ROUTE = "whep-session"

#: Answers to an allowed request carry a verdict of the middleware's hook: allowed, out of scope, or no
#: listener token at all (then the control token's 401 stands).
Scope = Callable[[web.Request, bytes], "bool | None"]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _uuid(text: str) -> str | None:
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    return text if str(parsed) == text else None  # the canonical form only: the ids handed out


async def _offer_body(request: web.Request) -> bytes | web.Response:
    if request.content_type != "application/sdp":
        return _error(415, "the body must be an SDP offer (Content-Type: application/sdp)")
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        return _error(413, f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    return await request.read()


def _sdp_answer(answer: str, location: str) -> web.Response:
    # The answer holds ICE credentials and DTLS fingerprints: for the client, never for a log.
    return web.Response(
        status=201, text=answer, content_type="application/sdp", headers={"Location": location}
    )


async def _whip_publish(request: web.Request) -> web.StreamResponse:
    body = await _offer_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        answer = await request.app[_GATEWAY_KEY].publish(body)
    except OfferError as exc:
        return _error(400, str(exc))
    except CallRefusedError as exc:
        return _error(503, str(exc))
    return _sdp_answer(answer.sdp, f"/v1/whip/{answer.session_id}")


async def _whip_end(request: web.Request) -> web.StreamResponse:
    call_id = _uuid(request.match_info["call_id"])
    if call_id is None or not await request.app[_GATEWAY_KEY].unpublish(call_id):
        return _error(404, "no such WHIP session")
    return web.Response(status=204)


async def _whip_patch(request: web.Request) -> web.StreamResponse:
    return _error(
        405,
        "trickle ICE and ICE restarts are not supported: the answer holds every candidate",
        {"Allow": "DELETE"},
    )


async def _grant_listener(request: web.Request) -> web.StreamResponse:
    if request.get(LISTENER_TOKEN) is not None:  # never reached (the middleware), but never by a listener
        return _error(403, "a listener token cannot make listener tokens")
    call_id = _uuid(request.match_info["call_id"])
    try:
        if call_id is None:
            raise NoSuchCallError
        token = request.app[_GATEWAY_KEY].grant_listener(call_id)
    except NoSuchCallError:
        return _error(404, "no such running call")
    return web.json_response({"token": token, "whep": f"/v1/calls/{call_id}/whep"}, status=201)


async def _whep_listen(request: web.Request) -> web.StreamResponse:
    call_id = _uuid(request.match_info["call_id"])
    gateway = request.app[_GATEWAY_KEY]
    if call_id is None or gateway.server.running_call(call_id) is None:
        return _error(404, "no such running call")
    body = await _offer_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        answer = await gateway.listen(call_id, body, request.get(LISTENER_TOKEN))
    except NoSuchCallError:
        return _error(404, "no such running call")
    except OfferError as exc:
        return _error(400, str(exc))
    except ListenersFullError as exc:
        return _error(503, str(exc))
    return _sdp_answer(answer.sdp, f"/v1/calls/{call_id}/whep/{answer.session_id}")


async def _whep_end(request: web.Request) -> web.StreamResponse:
    call_id = _uuid(request.match_info["call_id"])
    listener_id = _uuid(request.match_info["listener_id"])
    gateway = request.app[_GATEWAY_KEY]
    if call_id is None or listener_id is None or not await gateway.stop_listening(call_id, listener_id):
        return _error(404, "no such listener session")
    return web.Response(status=204)


def listener_scope(gateway: WebRtcGateway) -> Scope:
    """The auth middleware's hook for a request the control token did not open: True if a listener
    token opens it (its own call's WHEP offer, or DELETE of a session it opened), False if the request
    holds a listener token that does not open it (403), None if it holds none (401)."""

    def scope(request: web.Request, given: bytes) -> bool | None:
        found = gateway.token_call(given)
        if found is None:
            return None
        token, call_id = found
        route = request.match_info.route.name
        if request.match_info.get("call_id") != call_id:
            return False
        if route == WHEP_ROUTE and request.method == "POST":
            request[LISTENER_TOKEN] = token
            return True
        if route == WHEP_SESSION_ROUTE and request.method == "DELETE":
            listener_id = request.match_info.get("listener_id", "")
            if gateway.listener_opened_by(listener_id, token):
                request[LISTENER_TOKEN] = token
                return True
        return False

    return scope


def add_webrtc_routes(app: web.Application, gateway: WebRtcGateway) -> None:
    """WHIP, listener tokens and WHEP on ``app`` (the control API, whose auth middleware takes
    ``listener_scope(gateway)``); the gateway's sessions are closed when the app shuts down."""
    app[_GATEWAY_KEY] = gateway
    app.router.add_post("/v1/whip", _whip_publish)
    app.router.add_delete("/v1/whip/{call_id}", _whip_end)
    app.router.add_patch("/v1/whip/{call_id}", _whip_patch)
    app.router.add_post("/v1/calls/{call_id}/listeners", _grant_listener)
    app.router.add_post("/v1/calls/{call_id}/whep", _whep_listen, name=WHEP_ROUTE)
    app.router.add_delete("/v1/calls/{call_id}/whep/{listener_id}", _whep_end, name=WHEP_SESSION_ROUTE)

    async def close(_: web.Application) -> None:
        await gateway.close()

    app.on_shutdown.append(close)
