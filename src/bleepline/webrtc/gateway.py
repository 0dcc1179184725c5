"""WebRTC sessions of the relay: WHIP publishers (each one a call) and WHEP listeners (each one hearing a
running call's redacted audio), their listener tokens, and their ends, whichever side ends first.

A publisher's peer connection is closed when its call ends for any reason (the client's DELETE, the
media ending, ICE or DTLS failing or never connecting, the idle timeout, the control API, ``stop``), and
the call is ended when its peer connection fails or closes. Every end finalises the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from bleepline.server import CallRefusedError, RelayServer
from bleepline.webrtc.ice import check_addresses, host_addresses, new_peer_connection
from bleepline.webrtc.ingest import FrameReceiver, read_track
from bleepline.webrtc.listen import RedactedAudioTrack
from bleepline.webrtc.offers import OfferError, check_offer

log = logging.getLogger(__name__)

#: How long a peer connection may take to connect (ICE and DTLS) before its session is given up.
DEFAULT_ICE_TIMEOUT_S = 15.0
#: Listeners of one call, and of all calls, at once: each costs an Opus encoder and a socket.
DEFAULT_MAX_LISTENERS_PER_CALL = 8
DEFAULT_MAX_LISTENERS = 256
#: How long closing a peer connection may take before it is left to aiortc.
_CLOSE_TIMEOUT_S = 5.0
#: After its call ended, how long a listener has (beyond the delay) to play out the released tail.
_PLAY_OUT_MARGIN_S = 2.0


@dataclass(frozen=True)
class WebRtcOptions:
    """``ice_addresses``: the only host addresses ICE offers (e.g. ``("127.0.0.1",)`` for tests or a
    single-homed host); None: every interface but loopback (aioice's default). ``ice_timeout_s``: a peer
    connection not connected by then is given up (its call ended, finalised)."""

    ice_addresses: tuple[str, ...] | None = None
    ice_timeout_s: float = DEFAULT_ICE_TIMEOUT_S
    max_listeners_per_call: int = DEFAULT_MAX_LISTENERS_PER_CALL
    max_listeners: int = DEFAULT_MAX_LISTENERS

    def __post_init__(self) -> None:
        if self.ice_addresses is not None:
            object.__setattr__(self, "ice_addresses", check_addresses(self.ice_addresses))
        if not self.ice_timeout_s > 0:
            raise ValueError(f"ice_timeout_s must be > 0, got {self.ice_timeout_s}")
        if self.max_listeners_per_call < 1 or self.max_listeners < 1:
            raise ValueError("listener limits must be at least 1")


class NoSuchCallError(LookupError):
    """No running call has that id (never had, or already ended)."""


class ListenersFullError(Exception):
    """The call, or the relay, has as many listeners as it takes."""


@dataclass(frozen=True)
class Answer:
    """An SDP answer (it holds ICE credentials: for the client, never a log) and its session's id."""

    session_id: str
    sdp: str = field(repr=False)


@dataclass
class _Publisher:
    call_id: str
    pc: RTCPeerConnection
    receiver: FrameReceiver
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ending: asyncio.Task[None] | None = None


@dataclass
class _Listener:
    listener_id: str
    call_id: str
    pc: RTCPeerConnection
    track: RedactedAudioTrack
    token: str | None = field(repr=False)  # the listener token that opened it; None: the control token
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closing: asyncio.Task[None] | None = None


def _opus_only(transceiver: RTCRtpTransceiver) -> None:
    opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
    transceiver.setCodecPreferences(opus)


class WebRtcGateway:
    """WHIP and WHEP for ``server``; its coroutines run on the server's loop (aiortc is asyncio)."""

    def __init__(self, server: RelayServer, options: WebRtcOptions | None = None) -> None:
        self.server = server
        self.options = options if options is not None else WebRtcOptions()
        self._publishers: dict[str, _Publisher] = {}
        self._listeners: dict[str, _Listener] = {}
        self._tokens: dict[str, str] = {}  # listener token -> call id (never logged)
        self._watched: set[str] = set()  # calls whose end this gateway is told of
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # aiortc and aioice log whole SDPs (ICE passwords) and callers' addresses at debug and info, and
        # tracebacks as message text at warning: only their errors get through, whatever the relay's own
        # log level. What matters (a peer failing, a session ending) the gateway logs itself.
        for name in ("aiortc", "aioice"):
            library = logging.getLogger(name)
            if library.level < logging.ERROR:
                library.setLevel(logging.ERROR)

    # -- WHIP ----------------------------------------------------------------------------------------

    async def publish(self, body: bytes) -> Answer:
        """A WHIP offer in, its answer out (ICE gathered in full: no trickle); the session is a call whose
        id is the answer's ``session_id``. Raises ``OfferError`` (400) or ``CallRefusedError`` (503)."""
        offer = check_offer(body, "publish")
        if self._closed or self.server.draining:
            raise CallRefusedError("the relay is stopping")
        pc = new_peer_connection()
        try:
            transceiver = pc.addTransceiver("audio", direction="recvonly")
            _opus_only(transceiver)
            answer = await self._answer(pc, offer.sdp)
            track = transceiver.receiver.track
            receiver = FrameReceiver()
            call = self.server.start_webrtc_call(receiver)
        except BaseException:
            await self._close_pc(pc)
            raise
        publisher = _Publisher(call.call_id, pc, receiver)
        self._publishers[call.call_id] = publisher
        self._watched.add(call.call_id)
        call.on_end.append(lambda why: self._call_ending(call.call_id, why))

        def touched(arrival: float) -> None:
            call.last_activity = arrival  # the relay's idle timeout ends a call whose media stopped

        async def read() -> None:
            why = await read_track(track, receiver, touched)
            self._end_publisher(publisher, why)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._end_publisher(publisher, f"connection {pc.connectionState}")

        publisher.tasks.append(self._spawn(read(), f"whip-read-{call.call_id}"))
        publisher.tasks.append(self._spawn(self._watch_connect(pc, publisher), f"whip-ice-{call.call_id}"))
        return Answer(call.call_id, answer)

    async def unpublish(self, call_id: str) -> bool:
        """End a WHIP session and its call; returns once the recording and transcript are finalised.
        False for an id that is no WHIP session of this gateway (or one already ended)."""
        publisher = self._publishers.get(call_id)
        if publisher is None:
            return False
        await self._end_publisher(publisher, "ended by client")
        return True

    def _end_publisher(self, publisher: _Publisher, why: str) -> asyncio.Task[None]:
        # Once: whichever end comes first does the work; the others (and DELETE) wait for it.
        if publisher.ending is None:
            publisher.ending = self._spawn(
                self._finish_publisher(publisher, why), f"whip-end-{publisher.call_id}"
            )
        return publisher.ending

    async def _finish_publisher(self, publisher: _Publisher, why: str) -> None:
        current = asyncio.current_task()
        for task in publisher.tasks:
            if task is not current:
                task.cancel()
        try:
            await self._close_pc(publisher.pc)
            # Waits for the recording and transcript (the call may already be ending: not ended twice).
            await self.server.end_webrtc_call(publisher.call_id, why)
        finally:
            self._publishers.pop(publisher.call_id, None)

    async def _watch_connect(self, pc: RTCPeerConnection, session: _Publisher | _Listener) -> None:
        await asyncio.sleep(self.options.ice_timeout_s)
        if pc.connectionState != "connected":
            log.warning(
                "call %s: WebRTC peer did not connect within %.0f s; session ended",
                session.call_id,
                self.options.ice_timeout_s,
            )
            if isinstance(session, _Publisher):
                self._end_publisher(session, "ICE timeout")
            else:
                self._close_listener(session)

    # -- listener tokens ------------------------------------------------------------------------------

    def grant_listener(self, call_id: str) -> str:
        """A new listener token for a running call: it opens only that call's WHEP endpoint (and DELETE of
        the sessions it opened), and expires when the call ends. Raises ``NoSuchCallError``."""
        self._watch(call_id)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = call_id
        return token

    def token_call(self, given: bytes) -> tuple[str, str] | None:
        """(token, call id) for an ``Authorization`` header holding a live listener token, else None."""
        prefix = b"Bearer "
        if not given.startswith(prefix):
            return None
        candidate = given[len(prefix) :]
        found = None
        # Every token compared, each in constant time: neither which token nor how much of one matched
        # shows in the time taken.
        for token, call_id in list(self._tokens.items()):
            if hmac.compare_digest(candidate, token.encode()):
                found = (token, call_id)
        return found

    def listener_opened_by(self, listener_id: str, token: str) -> bool:
        """Whether the listener session ``listener_id`` was opened with ``token``."""
        listener = self._listeners.get(listener_id)
        return (
            listener is not None and listener.token is not None and hmac.compare_digest(listener.token, token)
        )

    def _watch(self, call_id: str) -> None:
        call = self.server.running_call(call_id)
        if call is None:
            raise NoSuchCallError(call_id)
        if call_id not in self._watched:
            self._watched.add(call_id)
            call.on_end.append(lambda why: self._call_ending(call_id, why))

    # -- WHEP ------------------------------------------------------------------------------------------

    async def listen(self, call_id: str, body: bytes, token: str | None) -> Answer:
        """A WHEP offer for a running call's redacted audio; the answer's ``session_id`` is the listener's.
        ``token``: the listener token that opened it (None: the control token). Raises
        ``NoSuchCallError`` (404), ``OfferError`` (400) or ``ListenersFullError`` (503)."""
        call = self.server.running_call(call_id)
        if call is None or self._closed:
            raise NoSuchCallError(call_id)
        offer = check_offer(body, "listen")
        if len(self._listeners) >= self.options.max_listeners:
            raise ListenersFullError("the relay has as many listeners as it takes")
        if (
            sum(1 for x in self._listeners.values() if x.call_id == call_id)
            >= self.options.max_listeners_per_call
        ):
            raise ListenersFullError("this call has as many listeners as it takes")
        self._watch(call_id)
        # Room for the tail the call's end releases at once (the delay line's length): it still plays.
        track = RedactedAudioTrack(
            call.live.session.sample_rate, max_queued_s=self.server.policy.delay_s + _PLAY_OUT_MARGIN_S
        )
        pc = new_peer_connection()
        try:
            _opus_only(pc.addTransceiver(track, direction="sendonly"))
            answer = await self._answer(pc, offer.sdp)
        except BaseException:
            track.stop()
            await self._close_pc(pc)
            raise
        listener = _Listener(str(uuid.uuid4()), call_id, pc, track, token)
        # Only now does the call's released audio go to it: nothing from before it was let in.
        if not self.server.add_sink(call_id, track):
            track.stop()
            await self._close_pc(pc)
            raise NoSuchCallError(call_id)
        self._listeners[listener.listener_id] = listener

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._close_listener(listener)

        listener.tasks.append(
            self._spawn(self._watch_connect(pc, listener), f"whep-ice-{listener.listener_id}")
        )
        return Answer(listener.listener_id, answer)

    async def stop_listening(self, call_id: str, listener_id: str) -> bool:
        """Close one listener session; False for one this call does not have."""
        listener = self._listeners.get(listener_id)
        if listener is None or listener.call_id != call_id:
            return False
        await self._close_listener(listener)
        return True

    def _close_listener(self, listener: _Listener) -> asyncio.Task[None]:
        if listener.closing is None:
            listener.closing = self._spawn(
                self._finish_listener(listener), f"whep-end-{listener.listener_id}"
            )
        return listener.closing

    async def _finish_listener(self, listener: _Listener) -> None:
        current = asyncio.current_task()
        for task in listener.tasks:
            if task is not current:
                task.cancel()
        self.server.remove_sink(listener.call_id, listener.track)
        listener.track.stop()
        try:
            await self._close_pc(listener.pc)
        finally:
            self._listeners.pop(listener.listener_id, None)

    async def _play_out(self, listener: _Listener) -> None:
        """The call has ended and its tail was released: the listener hears it, then is closed."""
        listener.track.finish()
        with contextlib.suppress(TimeoutError):  # played out or not, it is closed now
            await asyncio.wait_for(
                listener.track.played_out.wait(), self.server.policy.delay_s + _PLAY_OUT_MARGIN_S
            )
        await self._close_listener(listener)

    # -- ends ------------------------------------------------------------------------------------------

    def _call_ending(self, call_id: str, why: str) -> None:
        """Told by the relay (on the loop) that a call is ending, whatever ended it."""
        # Its tokens die with it: nothing can open a session on it from now on.
        for token in [t for t, c in self._tokens.items() if c == call_id]:
            del self._tokens[token]
        self._watched.discard(call_id)
        self._spawn(self._after_call(call_id, why), f"webrtc-after-{call_id}")

    async def _after_call(self, call_id: str, why: str) -> None:
        publisher = self._publishers.get(call_id)
        if publisher is not None:
            self._end_publisher(publisher, why)
        # The recording is finalised once the delay line has drained: the listeners then have the tail.
        await self.server.end_webrtc_call(call_id, why)
        listeners = [x for x in self._listeners.values() if x.call_id == call_id]
        await asyncio.gather(*(self._play_out(x) for x in listeners), return_exceptions=True)

    async def close(self) -> None:
        """Close every session (the relay is stopping: it ends and finalises the calls itself)."""
        self._closed = True
        for publisher in list(self._publishers.values()):
            self._end_publisher(publisher, "stop")
        for listener in list(self._listeners.values()):
            self._close_listener(listener)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._tokens.clear()

    @property
    def sessions(self) -> dict[str, int]:
        """Open sessions by kind, for tests and metrics."""
        return {"publishers": len(self._publishers), "listeners": len(self._listeners)}

    # -- helpers --------------------------------------------------------------------------------------

    async def _answer(self, pc: RTCPeerConnection, offer: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            answer = await pc.createAnswer()
        except Exception as exc:  # aiortc's messages may quote the offer: the type only
            raise OfferError(f"the offer could not be answered ({type(exc).__name__})") from None
        assert answer is not None
        # ICE is gathered in full here (host candidates only: quick), so the answer is complete and
        # nothing trickles afterwards (WHIP's PATCH is not needed).
        with host_addresses(self.options.ice_addresses):
            await pc.setLocalDescription(answer)
        local = pc.localDescription
        assert local is not None
        return local.sdp

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        try:
            await asyncio.wait_for(pc.close(), _CLOSE_TIMEOUT_S)
        except Exception as exc:
            log.warning("WebRTC peer connection did not close cleanly (%s)", type(exc).__name__)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
