"""How many concurrent WHIP sessions this machine carries, and what the WebRTC stack costs per session.

The relay (``RelayServer`` with its control API and WHIP on 127.0.0.1) runs in this process; a client
process of its own publishes N calls at once over WHIP (aiortc, Opus, the fixture looped in real time),
for ``--duration`` seconds, then ends them with DELETE. Per step the table shows: the relay process's
CPU (100 % is one core) and its CPU per session (CPU-seconds per second of call), the event-loop lag of
the relay (p50/p99, ms), frames lost or duplicated, and seconds masked as unverified per call.

- ``--mode record``: no listener: the cost of the WebRTC stack (ICE, DTLS, SRTP, Opus decoding) and the
  media plane (timeline, delay line, recording), which is what a WHIP session adds to a call;
- ``--mode listen``: with Whisper tiny.en and the PII detector, loaded once; the step fails once a call
  shows unverified masking (the recognizer did not keep up) or the loop lag p99 passes ``--max-late-ms``.

Run: PYTHONPATH=. .venv/bin/python -m bench.webrtc_capacity [--mode record|listen] [--calls 1,2,4]
[--duration S]. The machine is shared: compare steps of one run rather than runs.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bleepline.audio.codecs import PCMU
from bleepline.audio.files import read_audio_chunks
from bleepline.call import Listener
from bleepline.control import make_app, start_control
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.store.keys import Identity, load_recipient, write_key_pair
from bleepline.webrtc.gateway import WebRtcGateway, WebRtcOptions

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "phone_awb_8k.wav"
TOKEN = "bench-token"
LOOPBACK = ("127.0.0.1",)


def _publish_all(address: tuple[str, int], calls: int, duration: float, fixture: str) -> None:
    """The client process: ``calls`` WHIP sessions at once, each playing the fixture looped."""
    import aiohttp
    import av
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    from bleepline.webrtc.ice import host_addresses

    chunks = list(read_audio_chunks(Path(fixture)))
    samples = np.concatenate([c.samples for c in chunks])
    rate = chunks[0].sample_rate

    class Looped(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.started: float | None = None

        async def recv(self) -> av.AudioFrame:
            if self.readyState != "live":
                raise MediaStreamError
            loop = asyncio.get_running_loop()
            if self.started is None:
                self.started = loop.time()
            else:
                await asyncio.sleep(max(0.0, self.started + self.sent / rate - loop.time()))
            frame_len = rate // 50
            start = self.sent % (len(samples) - frame_len)
            data = samples[start : start + frame_len]
            frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = self.sent
            frame.time_base = fractions.Fraction(1, rate)
            self.sent += frame_len
            return frame

    async def main() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sdp"}
        async with aiohttp.ClientSession(base_url=f"http://{address[0]}:{address[1]}") as http:
            pcs, locations = [], []
            for _ in range(calls):
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pc.addTransceiver(Looped(), direction="sendonly")
                with host_addresses(LOOPBACK):
                    await pc.setLocalDescription(await pc.createOffer())
                async with http.post("/v1/whip", data=pc.localDescription.sdp, headers=headers) as reply:
                    if reply.status != 201:
                        print(f"publish refused: {reply.status}", file=sys.stderr)
                        continue
                    answer = await reply.text()
                    locations.append(reply.headers["Location"])
                await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
                pcs.append(pc)
                await asyncio.sleep(0.02 / max(calls, 1))  # phases spread over a frame
            await asyncio.sleep(duration)
            for location in locations:
                async with http.delete(location, headers=headers):
                    pass
            for pc in pcs:
                await pc.close()

    asyncio.run(main())


@dataclass
class Step:
    calls: int
    cpu_pct: float
    cpu_per_call: float
    lag_p50_ms: float
    lag_p99_ms: float
    lost: int
    duplicates: int
    unverified_s: float


async def _run_step(
    calls: int, duration: float, listener_factory: Callable[[int], Listener | None], models: dict[str, str]
) -> Step:
    work = Path(tempfile.mkdtemp(prefix="bleepline-webrtc-bench-"))
    pub, _ = write_key_pair(work / "keys", Identity.generate())
    store = work / "store"
    store.mkdir()
    server = RelayServer(
        codec=PCMU,
        recipients=[load_recipient(pub)],
        store=store,
        policy=RedactionPolicy(),
        listener_factory=listener_factory,
        models=models,
        max_calls=calls + 1,
        max_listening_calls=calls + 1,
    )
    gateway = WebRtcGateway(server, WebRtcOptions(ice_addresses=LOOPBACK))
    app = make_app(server, token=TOKEN, rtp_host="127.0.0.1", rtp_ports=range(40000, 40010), webrtc=gateway)
    runner, address = await start_control(app, "127.0.0.1", 0)
    running = asyncio.create_task(server.run(None))
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    client = mp.get_context("spawn").Process(
        target=_publish_all, args=(address, calls, duration, str(FIXTURE)), daemon=True
    )
    client.start()
    # Measured once every session is up (a second in), for the steady part of the calls only.
    await asyncio.sleep(1.5 + 0.1 * calls)
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < duration - 2.0:
        before = loop.time()
        await asyncio.sleep(0.02)
        lags.append(max(0.0, loop.time() - before - 0.02))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    await loop.run_in_executor(None, client.join, duration + 60)
    statuses = [s for s in (server.negotiated_status(i) for i, _ in server.negotiated_calls()) if s]
    server.stop()
    await running
    await runner.cleanup()
    unverified = [r.masked_s.get("unverified", 0.0) for r in server.stats.reports]
    lags.sort()
    return Step(
        calls=calls,
        cpu_pct=100 * cpu / wall,
        cpu_per_call=cpu / wall / max(calls, 1),
        lag_p50_ms=1000 * statistics.median(lags) if lags else 0.0,
        lag_p99_ms=1000 * lags[int(0.99 * (len(lags) - 1))] if lags else 0.0,
        lost=sum(s.drops["lost"] for s in statuses),
        duplicates=sum(s.drops["duplicates"] for s in statuses),
        unverified_s=max(unverified) if unverified else 0.0,
    )


def _real_listener() -> tuple[Callable[[int], Listener | None], dict[str, str]]:
    from bleepline.commands.redact import Redactor
    from bleepline.speech.models import resolve_model

    keys = Path(tempfile.mkdtemp(prefix="bleepline-webrtc-bench-keys-"))
    pub, _ = write_key_pair(keys, Identity.generate())
    redactor = Redactor([load_recipient(pub)], RedactionPolicy(), resolve_model())
    return redactor.listener, redactor.models


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["record", "listen"], default="record")
    parser.add_argument("--calls", default="1,2,4,8", help="steps: concurrent WHIP sessions")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds each step's calls last")
    parser.add_argument("--max-late-ms", type=float, default=20.0, help="p99 loop lag that fails a step")
    args = parser.parse_args(argv)
    if args.mode == "listen":
        factory, models = _real_listener()
    else:
        factory, models = (lambda rate: None), {"asr": "none", "pii": "none"}
    print("calls  cpu%   cpu/call  lag p50/p99 ms  lost  dup  unverified s")
    for calls in [int(n) for n in args.calls.split(",")]:
        step = asyncio.run(_run_step(calls, args.duration, factory, models))
        print(
            f"{step.calls:5d}  {step.cpu_pct:5.1f}  {step.cpu_per_call:8.3f}  "
            f"{step.lag_p50_ms:6.1f}/{step.lag_p99_ms:6.1f}  {step.lost:4d}  {step.duplicates:3d}  "
            f"{step.unverified_s:6.2f}"
        )
        failed = step.lag_p99_ms > args.max_late_ms or (args.mode == "listen" and step.unverified_s > 0)
        if failed:
            print(f"step {calls} failed: the relay did not keep up")
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
