"""Exports (supervisors): a call's redacted transcript as stored (JSON or WebVTT), or its redacted audio
as a WAV decrypted on the fly exactly as the player gets it, each as a download.

The same rules as the call page (role, then scope: 404 for a call outside the user's tags). Each export
is audited (``export`` with ``kind``; audio also ``decrypt``) before a byte of it is sent; a HEAD, which
sends none, is not.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from aiohttp import web

from bleepline.review.audio import DecryptedWav
from bleepline.review.audit import AuditEvent
from bleepline.review.catalog import CallEntry, Catalog, TranscriptUnavailable
from bleepline.review.users import Action
from bleepline.review.web_audio import send_pieces, serve_wav
from bleepline.review.web_common import Visit, fail, open_call, record, state_of

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def attachment(call_id: str, suffix: str) -> str:
    """A Content-Disposition naming a file after the call. Ids are plain names already (checked before
    the call was opened); anything else is replaced all the same, so no quote or path gets in."""
    return f'attachment; filename="{_UNSAFE.sub("_", call_id)}{suffix}"'


async def _transcript(
    request: web.Request, read: Callable[[Catalog, str], bytes], kind: str, suffix: str, content_type: str
) -> web.StreamResponse:
    opened = await open_call(request, Action.EXPORT)
    if isinstance(opened, web.Response):
        return opened
    visit, entry = opened
    try:
        data = await asyncio.to_thread(read, state_of(request).catalog, entry.call_id)
    except TranscriptUnavailable:
        return fail(request, 404, "this call has no transcript to export (still running, or not redacted)")
    await _audit(request, visit, entry, kind)
    return web.Response(
        body=data,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Disposition": attachment(entry.call_id, suffix)},
    )


async def transcript_json(request: web.Request) -> web.StreamResponse:
    return await _transcript(
        request, Catalog.transcript_bytes, "json", ".transcript.json", "application/json"
    )


async def transcript_vtt(request: web.Request) -> web.StreamResponse:
    return await _transcript(request, Catalog.subtitles_bytes, "vtt", ".vtt", "text/vtt")


async def audio_wav(request: web.Request) -> web.StreamResponse:
    return await serve_wav(request, Action.EXPORT, _send_wav)


async def _send_wav(
    request: web.Request, visit: Visit, entry: CallEntry, wav: DecryptedWav
) -> web.StreamResponse:
    # The whole file, no ranges: a download is one request, and one audit record.
    response = web.StreamResponse(headers={"Content-Disposition": attachment(entry.call_id, ".wav")})
    response.content_type = "audio/wav"
    response.content_length = wav.size
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    await _audit(request, visit, entry, "wav")
    await record(request, AuditEvent.DECRYPT, visit.user, call_id=entry.call_id, detail={"for": "export"})
    return await send_pieces(request, response, wav.read(), entry.call_id)


async def _audit(request: web.Request, visit: Visit, entry: CallEntry, kind: str) -> None:
    if request.method != "HEAD":
        await record(request, AuditEvent.EXPORT, visit.user, call_id=entry.call_id, detail={"kind": kind})
