"""How many concurrent real-time calls this machine carries through a ``RelayServer`` on loopback.

A load generator in a process of its own sends N calls of a fixture in real time (PCMU, one packet per
20 ms per call, the calls' phases spread over the 20 ms) to N SDP-negotiated calls, each with a
passthrough leg and a redacted leg back to the generator. Steps of increasing N run until one fails:

- record-only (``--mode record``): no listener, so every call is masked as unverified: the media plane's
  own ceiling (receive, delay line, recording, redacted leg, passthrough);
- with the listener (``--mode listen``): Whisper tiny.en and the PII detector, loaded once and shared as
  ``bleepline serve`` does; a step also fails once any call's report shows ``unverified`` masking.

A step fails when the receivers count lost or late packets, or the p99 of the relay's event-loop lag or
of the passthrough latency exceeds ``--max-late-ms``. The table shows, per N: the relay process's CPU
(100 % is one core) and the whole machine's, the event-loop lag (how late the relay's 20 ms tick runs:
the lateness of every packet it releases), the passthrough's added latency (generator send to generator
receive, two loopback hops included), the redacted leg's jitter, the receivers' drops, and the unverified
seconds per call. The generator's own send lateness is shown too: if it is high, the generator (not the
relay) is what ran out of CPU, and the step says nothing.

Run: PYTHONPATH=. .venv/bin/python -m bench.capacity [--mode record|listen|both] [--calls 1,2,4]
[--duration S] [--model DIR --device cuda] [--json PATH]. The machine is shared: figures are noisy;
compare steps of one run rather than runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from bleepline.audio.codecs import PCMU, encoder_for
from bleepline.audio.files import read_audio_chunks
from bleepline.call import Listener
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import NEGOTIABLE_CODECS, RelayServer
from bleepline.store.keys import Identity, load_recipient, write_key_pair
from bleepline.transport.rtp import RtcpBye, RtpPacket, is_rtcp
from bleepline.transport.sdp import negotiate, parse_offer

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "phone_awb_8k.wav"
RATE = 8000
PACKET = 160
PERIOD_S = PACKET / RATE
SSRC_BASE = 0x0B1E0000
LOCAL = "127.0.0.1"

Address = tuple[str, int]


# --- the load generator (its own process, so it does not share the relay's GIL) -----------------------


def _payloads(fixture: str) -> list[bytes]:
    audio = np.concatenate([chunk.samples for chunk in read_audio_chunks(fixture, sample_rate=RATE)])
    encoder = encoder_for(PCMU)
    return [encoder.encode(audio[i : i + PACKET]) for i in range(0, len(audio) - PACKET + 1, PACKET)]


def _udp(rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if rcvbuf:
        # The generator reads between sends: a deep buffer keeps a busy moment of its own from
        # becoming loss that would be blamed on the relay.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((LOCAL, 0))
    sock.setblocking(False)
    return sock


def _address(sock: socket.socket) -> Address:
    host, port = sock.getsockname()
    return (str(host), int(port))


def _percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p99 and max in milliseconds; zeros for no values."""
    if not values:
        return (0.0, 0.0, 0.0)
    array = np.asarray(values) * 1000.0
    return (float(np.percentile(array, 50)), float(np.percentile(array, 99)), float(array.max()))


def _less(values: Sequence[float], by: float) -> tuple[float, float, float]:
    low, high, top = values
    return (low - by, high - by, top - by)


def _generator(conn: Connection, fixture: str) -> None:
    """The child process: answers ``prepare``, ``run`` and ``quit`` messages from the parent."""
    payloads = _payloads(fixture)
    sources: list[socket.socket] = []
    passthrough = _udp(rcvbuf=8 << 20)
    redacted = _udp(rcvbuf=8 << 20)
    try:
        while True:
            message = conn.recv()
            if message[0] == "quit":
                return
            if message[0] == "prepare":
                for sock in sources:
                    sock.close()
                sources = [_udp() for _ in range(int(message[1]))]
                conn.send(([_address(s) for s in sources], _address(passthrough), _address(redacted)))
            elif message[0] == "run":
                _, relay_ports, duration_s, tail_s = message
                conn.send(
                    _send_calls(payloads, sources, relay_ports, duration_s, tail_s, passthrough, redacted)
                )
    finally:
        for sock in [*sources, passthrough, redacted]:
            sock.close()


def _send_calls(
    payloads: list[bytes],
    sources: list[socket.socket],
    relay_ports: list[int],
    duration_s: float,
    tail_s: float,
    passthrough: socket.socket,
    redacted: socket.socket,
) -> dict[str, Any]:
    n = len(sources)
    packets = round(duration_s / PERIOD_S)
    began = time.monotonic() + 0.1
    # Call i's packet k is due at began + k * period + i * period / n: the calls' phases spread out, as
    # independent callers' would be, rather than a burst of n datagrams every 20 ms.
    sent_at = np.zeros((n, packets))
    send_late: list[float] = []
    through: list[float] = []
    legs: dict[int, list[tuple[float, int]]] = {}  # relay port -> (arrival, RTP timestamp)

    def drain(until: float) -> None:
        while True:
            wait = until - time.monotonic()
            readable, _, _ = select.select([passthrough, redacted], [], [], max(wait, 0.0))
            if not readable:
                if wait <= 0:
                    return
                continue
            now = time.monotonic()
            for sock in readable:
                while True:
                    try:
                        data, addr = sock.recvfrom(2048)
                    except BlockingIOError:
                        break
                    if len(data) < 12 or is_rtcp(data):
                        continue
                    if sock is passthrough:
                        i = int.from_bytes(data[8:12], "big") - SSRC_BASE
                        k = int.from_bytes(data[2:4], "big")
                        if 0 <= i < n and k < packets and sent_at[i, k]:
                            through.append(now - sent_at[i, k])
                    else:
                        legs.setdefault(int(addr[1]), []).append((now, int.from_bytes(data[4:8], "big")))

    for k in range(packets):
        payload = payloads[k % len(payloads)]
        for i in range(n):
            due = began + (k + i / n) * PERIOD_S
            drain(due)
            data = RtpPacket(0, k & 0xFFFF, (k * PACKET) & 0xFFFFFFFF, SSRC_BASE + i, payload, k == 0)
            sources[i].sendto(data.serialize(), (LOCAL, relay_ports[i]))
            now = time.monotonic()
            sent_at[i, k] = now
            send_late.append(now - due)
    drain(time.monotonic() + 0.3)  # the last packets' passthrough, before the BYEs end the calls
    for i, sock in enumerate(sources):
        sock.sendto(RtcpBye((SSRC_BASE + i,)).serialize(), (LOCAL, relay_ports[i]))
    drain(time.monotonic() + tail_s)  # the redacted legs' last delay-worth of audio
    jitter: list[float] = []
    behind: list[float] = []
    call_of = {port: i for i, port in enumerate(relay_ports)}
    for port, arrivals in legs.items():
        first_ts = arrivals[0][1]
        # Each packet against its place on the leg's own timeline; the earliest packet sets zero.
        offsets = [at - ((ts - first_ts) & 0xFFFFFFFF) / RATE for at, ts in arrivals]
        floor = min(offsets)
        jitter += [offset - floor for offset in offsets]
        # How long after the caller sent a packet its audio came back on the redacted leg: the delay D,
        # plus a packet's time (the audio is released once it is all there), plus what the relay adds.
        # The leg starts at the call's first sample, which the caller's packet 0 carried.
        call = call_of.get(port)
        if call is None:
            continue
        for at, ts in arrivals:
            k = round(((ts - first_ts) & 0xFFFFFFFF) / PACKET)
            if 0 <= k < packets and sent_at[call, k]:
                behind.append(at - sent_at[call, k])
    return {
        "sent": n * packets,
        "send_late": _percentiles(send_late),
        "through": len(through),
        "through_ms": _percentiles(through),
        "redacted": sum(len(a) for a in legs.values()),
        "redacted_jitter_ms": _percentiles(jitter),
        "redacted_behind_ms": _percentiles(behind),
    }


# --- the relay (this process) ------------------------------------------------------------------------


class Relay:
    """A ``RelayServer`` without a static port, on its own event loop in a thread."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None

    @contextmanager
    def running(self) -> Iterator[Relay]:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.loop.call_soon(ready.set)
            await self.server.run(None)

        def thread_main() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # reported by the parent thread
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=thread_main, name="relay", daemon=True)
        thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"relay did not start: {failure}")
        try:
            yield self
        finally:
            self.server.stop()
            thread.join(60)

    def call(self, remote: Address, passthrough: Address, redacted: Address) -> tuple[str, int]:
        """A negotiated PCMU call from ``remote`` with both legs; its id and the relay's port for it."""
        offer = "\r\n".join(
            [
                "v=0",
                f"o=- 1 1 IN IP4 {remote[0]}",
                "s=-",
                f"c=IN IP4 {remote[0]}",
                "t=0 0",
                f"m=audio {remote[1]} RTP/AVP 0",
                "a=sendrecv",
                "",
            ]
        )
        negotiated = negotiate(parse_offer(offer), tuple(NEGOTIABLE_CODECS))
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self.server.start_negotiated_call(
                negotiated, LOCAL, range(1), passthrough=passthrough, redacted=redacted
            ),
            self.loop,
        )
        call = future.result(10)
        assert call.endpoint is not None
        return call.call_id, call.endpoint.local_address[1]

    def probe_lag(self, stop: threading.Event) -> list[float]:
        """How late a 20 ms sleep on the relay's loop wakes, until ``stop``: the loop's lag, which every
        tick of every call (release, redacted leg) and every datagram read waits out."""
        lags: list[float] = []

        async def probe() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                asked = loop.time() + 0.02
                await asyncio.sleep(0.02)
                lags.append(loop.time() - asked)

        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(probe(), self.loop)
        return lags


def _system_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def _udp_receive_errors() -> int:
    """The kernel's UDP receive-buffer overflows, machine-wide: datagrams dropped before any socket read."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


@dataclass
class Step:
    mode: str
    calls: int
    relay_cpu: float
    system_cpu: float
    send_late_p99_ms: float
    lag_ms: tuple[float, float, float]
    through_ms: tuple[float, float, float]
    through_missing: int
    jitter_ms: tuple[float, float, float]
    behind_ms: tuple[float, float, float]  # redacted leg: caller's send to leg arrival, less the delay D
    redacted_missing: int
    drops: int
    rcvbuf_errors: int
    unverified_s: float
    masked_pii_s: float
    ok: bool
    why: str


def run_step(
    mode: str,
    n: int,
    duration_s: float,
    listener_factory: Callable[[int], Listener | None],
    models: dict[str, str],
    generator: Connection,
    max_late_ms: float,
) -> Step:
    policy = RedactionPolicy()
    with tempfile.TemporaryDirectory(prefix="bleepline-capacity-") as tmp:
        keys = write_key_pair(Path(tmp) / "keys", Identity.generate())
        store = Path(tmp) / "store"
        store.mkdir()
        server = RelayServer(
            codec=PCMU,
            recipients=[load_recipient(keys[0])],
            store=store,
            policy=policy,
            listener_factory=listener_factory,
            models=models,
            idle_timeout_s=30.0,
            max_calls=n + 1,
            # Admission would refuse past its default; the point here is to find where it should be.
            max_listening_calls=n + 1,
        )
        with Relay(server).running() as relay:
            generator.send(("prepare", n))
            sources, passthrough, redacted = generator.recv()
            calls = [relay.call(source, passthrough, redacted) for source in sources]
            stop = threading.Event()
            lags = relay.probe_lag(stop)
            cpu0, wall0, busy0, errors0 = (
                time.process_time(),
                time.monotonic(),
                _system_busy(),
                _udp_receive_errors(),
            )
            generator.send(("run", [port for _, port in calls], duration_s, policy.delay_s + 1.5))
            sent = generator.recv()
            cpu1, wall1, busy1, errors1 = (
                time.process_time(),
                time.monotonic(),
                _system_busy(),
                _udp_receive_errors(),
            )
            stop.set()
            deadline = time.monotonic() + 60
            states: list[Any] = []
            while time.monotonic() < deadline:
                states = [server.negotiated_status(call_id) for call_id, _ in calls]
                if all(s is not None and s.state in ("ended", "failed") for s in states):
                    break
                time.sleep(0.2)
    ended = [s for s in states if s is not None and s.state == "ended"]
    drops = sum(s.drops["lost"] + s.drops["late"] for s in states if s is not None)
    unverified = statistics.fmean(s.masked_s.get("unverified", 0.0) for s in ended) if ended else 0.0
    pii = statistics.fmean(s.masked_s.get("pii", 0.0) for s in ended) if ended else 0.0
    lag = _percentiles(lags)
    expected = int(sent["sent"])
    step = Step(
        mode=mode,
        calls=n,
        relay_cpu=100.0 * (cpu1 - cpu0) / (wall1 - wall0),
        system_cpu=100.0 * (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1.0),
        send_late_p99_ms=sent["send_late"][1],
        lag_ms=lag,
        through_ms=sent["through_ms"],
        through_missing=expected - int(sent["through"]),
        jitter_ms=sent["redacted_jitter_ms"],
        behind_ms=_less(sent["redacted_behind_ms"], 1000 * policy.delay_s),
        redacted_missing=expected - int(sent["redacted"]),
        drops=drops,
        rcvbuf_errors=errors1 - errors0,
        unverified_s=unverified,
        masked_pii_s=pii,
        ok=True,
        why="",
    )
    reasons = []
    if len(ended) != n:
        reasons.append(f"{n - len(ended)} calls not finalised")
    if drops or step.through_missing > 0:
        reasons.append("packets lost or late")
    if lag[1] > max_late_ms:
        reasons.append(f"loop lag p99 {lag[1]:.0f} ms")
    if step.through_ms[1] > max_late_ms:
        reasons.append(f"passthrough p99 {step.through_ms[1]:.0f} ms")
    if mode == "listen" and unverified > 0.0:
        reasons.append("unverified masking")
    step.ok = not reasons
    step.why = "; ".join(reasons)
    return step


HEADER = (
    f"{'mode':6} {'N':>3} {'relay CPU':>9} {'box CPU':>7} {'gen late':>8} {'loop lag p50/p99':>16} "
    f"{'passthru p50/p99':>16} {'red. jitter p50/p99':>19} {'red. lag-D p50/p99':>18} {'drops':>5} "
    f"{'unverif s/call':>14} "
    f"{'pii s/call':>10}  verdict"
)


def show(step: Step) -> str:
    return (
        f"{step.mode:6} {step.calls:>3} {step.relay_cpu:>8.0f}% {step.system_cpu:>6.0f}% "
        f"{step.send_late_p99_ms:>6.1f}ms {step.lag_ms[0]:>7.1f}/{step.lag_ms[1]:>5.1f}ms "
        f"{step.through_ms[0]:>7.2f}/{step.through_ms[1]:>5.2f}ms "
        f"{step.jitter_ms[0]:>9.1f}/{step.jitter_ms[1]:>6.1f}ms "
        f"{step.behind_ms[0]:>8.1f}/{step.behind_ms[1]:>6.1f}ms "
        f"{step.drops + max(step.through_missing, 0):>5} {step.unverified_s:>14.2f} "
        f"{step.masked_pii_s:>10.2f}  " + ("ok" if step.ok else f"FAIL: {step.why}")
    )


def _counts(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("call counts are positive integers, comma-separated")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.capacity", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--mode", choices=["record", "listen", "both"], default="both")
    parser.add_argument(
        "--calls", type=_counts, default=None, help="N per step, e.g. 1,2,4 (per mode default)"
    )
    parser.add_argument(
        "--listen-calls", type=_counts, default=[1, 2, 4, 6, 8], help="N per step with the listener"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds of audio per step")
    parser.add_argument("--max-late-ms", type=float, default=20.0, help="p99 lag that fails a step")
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--keep-going", action="store_true", help="run every step even after one fails")
    parser.add_argument("--model", default=None, help="speech model: name or CTranslate2 directory")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--json", type=Path, help="also write the steps as JSON here")
    args = parser.parse_args(argv)

    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    generator = context.Process(target=_generator, args=(child, str(args.fixture)), daemon=True)
    generator.start()
    plans: list[tuple[str, list[int], float]] = []
    if args.mode in ("record", "both"):
        plans.append(("record", args.calls or [1, 4, 8, 16, 32, 64], args.duration or 10.0))
    if args.mode in ("listen", "both"):
        plans.append(("listen", args.calls or args.listen_calls, args.duration or 20.0))
    print(f"fixture {args.fixture.name}; {mp.cpu_count()} CPUs; 20 ms PCMU; passthrough and redacted legs on")
    print(HEADER, flush=True)
    steps: list[Step] = []
    try:
        for mode, counts, duration in plans:
            if mode == "listen":
                factory, models = _real_listener(args.model, args.device, args.compute_type)
            else:
                factory, models = (lambda rate: None), {"asr": "none", "pii": "none"}
            for n in counts:
                step = run_step(mode, n, duration, factory, models, parent, args.max_late_ms)
                steps.append(step)
                print(show(step), flush=True)
                if not step.ok and not args.keep_going:
                    break
    finally:
        parent.send(("quit",))
        generator.join(10)
        if args.json:
            # Written even when a step raised part-way: the steps that ran are the result.
            args.json.write_text(json.dumps([asdict(s) for s in steps], indent=2))
    return 0


def _real_listener(
    model: str | None = None, device: str = "cpu", compute_type: str = "int8"
) -> tuple[Callable[[int], Listener | None], dict[str, str]]:
    """The listener ``bleepline serve`` uses: the models loaded once here and shared by every call."""
    from bleepline.commands.redact import Redactor
    from bleepline.speech.models import resolve_model

    began = time.monotonic()
    spec = resolve_model(model, compute_type=compute_type, device=device)
    redactor = Redactor([], RedactionPolicy(), spec)
    print(f"(models loaded in {time.monotonic() - began:.1f} s)", flush=True)
    return redactor.listener, redactor.models


if __name__ == "__main__":
    sys.exit(main())
