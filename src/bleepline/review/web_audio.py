"""Audio over HTTP: the player's range-request stream, and the opening and sending it shares with the export.

Every byte comes from ``DecryptedWav`` (``review/audio.py``): decrypted chunk by chunk as it is sent,
each chunk authenticated first, nothing written to disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web

from bleepline.review.audio import DecryptedWav, RangeNotSatisfiableError, parse_range
from bleepline.review.audit import AuditEvent
from bleepline.review.catalog import CallEntry
from bleepline.review.users import Action
from bleepline.review.web_common import Visit, log, open_call, plain, record, state_of
from bleepline.store.errors import NotARecipientError, RecordingIntegrityError, StoreError

WavSender = Callable[[web.Request, Visit, CallEntry, DecryptedWav], Awaitable[web.StreamResponse]]


async def serve_wav(request: web.Request, action: Action, send: WavSender) -> web.StreamResponse:
    """Open the call for ``action`` (role, then scope), unlock its recording as a WAV, and let ``send``
    answer with it; the recording is closed afterwards, however ``send`` ends. 503 where the recording
    cannot be unlocked: no identity, not one of its recipients, or a header that fails verification."""
    opened = await open_call(request, action)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    identity = state_of(request).identity
    if identity is None:
        return plain(503, "this review server has no identity to decrypt recordings with")
    try:
        wav = await asyncio.to_thread(DecryptedWav, entry.recording, identity)
    except NotARecipientError:
        return plain(503, "this review server's identity cannot open this recording")
    except StoreError as exc:
        problem = type(exc).__name__
        log.warning("review: call %s cannot be played: recording failed to open (%s)", entry.call_id, problem)
        return plain(503, "the recording failed verification and cannot be played")
    try:
        return await send(request, visit, entry, wav)
    finally:
        await asyncio.to_thread(wav.close)


async def audio(request: web.Request) -> web.StreamResponse:
    return await serve_wav(request, Action.PLAY, _stream)


async def _stream(
    request: web.Request, visit: Visit, entry: CallEntry, wav: DecryptedWav
) -> web.StreamResponse:
    call_id = entry.call_id
    headers = {"Accept-Ranges": "bytes"}
    # If-Range names a version we never gave out (no validators): the whole file, as RFC 9110 says.
    asked = None if "If-Range" in request.headers else request.headers.get("Range")
    try:
        wanted = parse_range(asked, wav.size)
    except RangeNotSatisfiableError:
        return plain(416, "range not satisfiable", {**headers, "Content-Range": f"bytes */{wav.size}"})
    response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
    response.content_type = "audio/wav"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{wav.size}"
    response.content_length = wav.size if wanted is None else wanted.length
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    if call_id not in visit.session.played:
        await record(request, AuditEvent.PLAY, visit.user, call_id=call_id)
        await record(request, AuditEvent.DECRYPT, visit.user, call_id=call_id, detail={"for": "playback"})
        visit.session.played.add(call_id)
    return await send_pieces(request, response, wav.read(wanted), call_id)


async def send_pieces(
    request: web.Request, response: web.StreamResponse, pieces: Iterator[bytes], call_id: str
) -> web.StreamResponse:
    """Send ``pieces`` (from ``DecryptedWav.read``) as ``response``'s body, each decrypted off the
    event loop just before it goes."""
    # The first piece is decrypted before the headers go: a recording damaged at its start gets a
    # clear 503 rather than a 200 with nothing behind it.
    try:
        piece = await asyncio.to_thread(next, pieces, None)
    except RecordingIntegrityError as exc:
        _log_stopped(call_id, exc)
        return plain(503, "the recording failed verification and cannot be played")
    await response.prepare(request)
    while piece is not None:
        try:
            await response.write(piece)
        except ConnectionResetError:  # the player went away (a seek often does that): nothing to say
            return response
        try:
            piece = await asyncio.to_thread(next, pieces, None)
        except RecordingIntegrityError as exc:
            # What was sent had verified; the rest is withheld, and the short body tells the player.
            _log_stopped(call_id, exc)
            response.force_close()
            return response
    await response.write_eof()
    return response


def _log_stopped(call_id: str, exc: RecordingIntegrityError) -> None:
    # One line, no content: the call id (a plain name, checked) and the failure's type.
    log.warning(
        "review: audio of call %s stopped: a chunk failed verification (%s)", call_id, type(exc).__name__
    )
