"""A real browser on both ends: headless Chromium publishes a fake microphone (the fixture call) over WHIP
from the demo page, a second Chromium listens to the call over WHEP from the same page and records what it
hears; the relay runs the real listener (Whisper tiny.en and the PII detector) in real time.

Then the decrypted recording is checked against the fixture's truth (every spoken digit masked, the rest of
the speech intact, the timeline where the browser put it), and what the listener heard against the
recording: the same redacted audio, and none of the original from the masked stretches.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import av
import numpy as np
import pytest

from bleepline.audio.codecs import PCMU
from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.commands.recordings import decrypt_file
from bleepline.control import make_app, start_control
from bleepline.redact.policy import RedactionPolicy
from bleepline.server import RelayServer
from bleepline.store.keys import Identity, load_recipient, write_key_pair
from bleepline.webrtc.gateway import WebRtcOptions
from tests.harness import make_server, request, serving
from tests.speech_frames import FRAME_S, SPEECH_DBFS, Frames

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"
CALL = "phone_awb_8k"
TOKEN = "browser-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEMO = "/v1/demo"
#: A frame closer than this to the reference (error relative to its level) is the original, heard; masked
#: frames (beep or silence) are >= 0.9. Opus from the browser, decoded by the relay: not sample-exact.
INTACT = 0.6
#: Where the browser may start the fixture relative to the call's timeline: connect first, then the
#: microphone (the page's order) puts it within tens of milliseconds; more means audio lost or padded.
MOST_START_OFFSET_S = 0.3


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        # CI installs Chromium (.ci/run); there a missing one is a failure, not a skip.
        if os.environ.get("CI"):
            raise RuntimeError("Chromium is not installed: .ci/run installs the Debian package chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


# -- the page itself (no browser needed) ----------------------------------------------------------------


def quiet_server(store: Path, recipient: Path) -> RelayServer:
    return RelayServer(
        codec=PCMU,
        recipients=[load_recipient(recipient)],
        store=store,
        policy=RedactionPolicy(),
        listener_factory=lambda rate: None,
        models={"asr": "test", "pii": "test"},
    )


def fetch_page(demo: bool, store: Path, recipient: Path) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Answers to the demo path's requests, without and with the token, from an app with(out) the demo."""

    async def main() -> dict[str, tuple[int, dict[str, str], bytes]]:
        app = make_app(
            quiet_server(store, recipient), token=TOKEN, rtp_host="127.0.0.1", rtp_ports=range(0), demo=demo
        )
        runner, address = await start_control(app, "127.0.0.1", 0)
        try:
            return await asyncio.to_thread(requests, address)
        finally:
            await runner.cleanup()

    def requests(address: tuple[str, int]) -> dict[str, tuple[int, dict[str, str], bytes]]:
        answers = {}
        for name, method, headers in [
            ("get", "GET", {}),
            ("head", "HEAD", {}),
            ("get with token", "GET", AUTH),
            ("post", "POST", {}),
        ]:
            answers[name] = request(address, method, DEMO, headers=headers, timeout=60)
        return answers

    return asyncio.run(main())


def test_the_demo_page_is_off_unless_enabled(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    answers = fetch_page(False, tmp_path, key_pair[0])
    assert answers["get"][0] == 401  # no token: nothing is said, not even that the path is unknown
    assert answers["get with token"][0] == 404


def test_the_demo_page_needs_no_token_and_runs_only_its_own_script(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    answers = fetch_page(True, tmp_path, key_pair[0])
    status, headers, body = answers["get"]
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert "<script>" in page
    assert "src=" not in page  # self-contained: nothing fetched from elsewhere
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["Cache-Control"] == "no-store"
    assert answers["head"][0] == 200
    assert answers["get with token"][0] == 200
    # Only reading the page is open: anything else on the path still wants the token.
    assert answers["post"][0] == 401


# -- the relay, the upload catcher and the browsers ------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_key_pair(tmp_path_factory.mktemp("keys"), Identity.generate())


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path], chromium: str
) -> Iterator[tuple[RelayServer, tuple[str, int], Path]]:
    """The relay with the real listener, its control API with WHIP, WHEP and the demo page, on one loop in
    a thread; ICE on 127.0.0.1 only."""
    from bleepline.commands.redact import Redactor
    from bleepline.speech.models import resolve_model

    store = tmp_path_factory.mktemp("store")
    policy = RedactionPolicy()
    redactor = Redactor([load_recipient(keys[0])], policy, resolve_model())
    server = make_server(
        store, keys[0], redactor.listener, policy=policy, models=redactor.models, idle_timeout_s=10.0
    )
    # ICE on loopback only: the test's browsers are on this machine, and nothing else should reach it.
    options = WebRtcOptions(ice_addresses=("127.0.0.1",))
    with serving(server, token=TOKEN, demo=True, webrtc=options, ready_timeout=30, join_timeout=60) as api:
        yield server, api, store


class Uploads:
    """A small HTTP server that takes what the listening page POSTs; it answers CORS preflights, since the
    page (the relay's origin) posts to another origin (this port)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.arrived = threading.Event()
        uploads = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "POST")
                self.send_header("Access-Control-Allow-Headers", "Content-Type")

            def do_OPTIONS(self) -> None:
                self.send_response(204)
                self._cors()
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200 if self.path == "/upload" else 404)
                self._cors()
                self.send_header("Content-Length", "0")
                self.end_headers()
                if self.path == "/upload":
                    uploads.bodies.append(body)
                    uploads.arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/upload"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Browser:
    """One headless Chromium on one page; its log (console lines included) goes to a file."""

    def __init__(
        self, chromium: str, url: str, work: Path, name: str, microphone: Path | None = None
    ) -> None:
        profile = work / f"{name}-profile"
        profile.mkdir()
        self.log = work / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    chromium,
                    "--headless=new",
                    "--no-sandbox",  # tests run as root in CI
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                    *([f"--use-file-for-fake-audio-capture={microphone}%noloop"] if microphone else []),
                    "--allow-loopback-in-peer-connection",
                    "--autoplay-policy=no-user-gesture-required",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--enable-logging=stderr",
                    f"--user-data-dir={profile}",
                    url,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def console(self) -> str:
        """What the page said (its status lines and errors), for a failing assertion's message."""
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in lines if "CONSOLE" in line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def fake_microphone(path: Path) -> Path:
    """The fixture at 48 kHz, the rate Chromium captures at: its fake device does not resample well."""
    samples, rate = mono_wav(FIXTURES / f"{CALL}.wav")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(np.asarray(resample(samples, rate, 48000), dtype="<i2").tobytes())
    return path


def mono_wav(path: Path) -> tuple[np.ndarray, int]:
    chunks = list(read_audio_chunks(path))
    return np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate


def decode_mono(data: bytes, rate: int, work: Path) -> np.ndarray:
    """What the listening page recorded (WebM/Opus), decoded to mono int16 at ``rate``."""
    path = work / "listened.webm"
    path.write_bytes(data)
    out: list[np.ndarray] = []
    resampler = av.AudioResampler("s16", "mono", rate)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            out += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16)


def json_get(address: tuple[str, int], path: str) -> Any:
    status, _, body = request(address, "GET", path, headers=AUTH, timeout=60)
    assert status == 200, body
    return json.loads(body)


def test_the_page_says_when_a_token_is_refused(
    relay: tuple[RelayServer, tuple[str, int], Path], chromium: str, tmp_path: Path
) -> None:
    _, address, _ = relay
    fragment = urlencode({"mode": "publish", "token": "not-the-token"})
    browser = Browser(chromium, f"http://{address[0]}:{address[1]}{DEMO}#{fragment}", tmp_path, "refused")
    try:
        deadline = time.monotonic() + 30
        while "Publishing failed" not in browser.console() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Publishing failed: 401: authorization required" in browser.console(), browser.console()
    finally:
        browser.close()
    assert json_get(address, "/v1/calls")["calls"] == []


@dataclass
class BrowserCall:
    call_id: str
    rate: int
    recording: np.ndarray  # decrypted, mono int16 at ``rate``
    listened: np.ndarray  # what the listening page recorded, mono int16 at ``rate``
    status: dict[str, Any]  # GET /v1/calls/<id> while the call was up
    up_s: float  # from the relay listing the call to the hang-up
    consoles: str  # both pages' console lines


@pytest.fixture(scope="module")
def browser_call(
    relay: tuple[RelayServer, tuple[str, int], Path],
    keys: tuple[Path, Path],
    chromium: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BrowserCall]:
    """One call published from the demo page and listened to from another, in real time."""
    _, address, store = relay
    work = tmp_path_factory.mktemp("browser")
    microphone = fake_microphone(work / "microphone-48k.wav")
    uploads = Uploads()
    base = f"http://{address[0]}:{address[1]}{DEMO}"
    browsers: list[Browser] = []
    delay_s = RedactionPolicy().delay_s
    fixture_s = float(truth()["duration"])
    try:
        # The token travels in the fragment, which the browser never sends to the server.
        publisher = Browser(
            chromium, f"{base}#{urlencode({'mode': 'publish', 'token': TOKEN})}", work, "publish", microphone
        )
        browsers.append(publisher)
        call_id = wait_for_call(address, publisher)
        started = time.monotonic()
        status, _, body = request(address, "POST", f"/v1/calls/{call_id}/listeners", headers=AUTH, timeout=60)
        assert status == 201, body
        listener = json.loads(body)
        assert listener["whep"] == f"/v1/calls/{call_id}/whep"
        # Long enough for the whole call as released: the fixture, D behind, and some slack.
        record_s = fixture_s + delay_s + 3.0
        fragment = urlencode(
            {
                "mode": "listen",
                "call": call_id,
                "token": listener["token"],
                "record": record_s,
                "upload": uploads.url,
            }
        )
        browsers.append(Browser(chromium, f"{base}#{fragment}", work, "listen"))
        # The fixture plays once from the moment the publishing page opens the microphone (just after the
        # call is up); the relay releases it D later. Hang up after that, with a margin.
        time.sleep(max(0.0, started + fixture_s + delay_s + 2.0 - time.monotonic()))
        call_status = json_get(address, f"/v1/calls/{call_id}")
        status, _, body = request(address, "DELETE", f"/v1/whip/{call_id}", headers=AUTH, timeout=60)
        assert status == 204, body
        up_s = time.monotonic() - started
        if not uploads.arrived.wait(record_s + 30):
            raise AssertionError(f"the listening page uploaded nothing:\n{consoles(browsers)}")
        wav = work / "recording.wav"
        decrypt_file(store / f"{call_id}.bleep", keys[1], wav)  # raises unless complete and authentic
        recording, rate = mono_wav(wav)
        listened = decode_mono(uploads.bodies[0], rate, work)
        yield BrowserCall(call_id, rate, recording, listened, call_status, up_s, consoles(browsers))
    finally:
        for browser in browsers:
            browser.close()
        uploads.close()


def consoles(browsers: list[Browser]) -> str:
    return "\n".join(browser.console() for browser in browsers)


def wait_for_call(address: tuple[str, int], publisher: Browser) -> str:
    """The publishing page's call, once the relay lists it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        calls = json_get(address, "/v1/calls")["calls"]
        if calls:
            (call,) = calls
            return str(call["id"])
        assert publisher.process.poll() is None, f"Chromium exited:\n{publisher.console()}"
        time.sleep(0.1)
    raise AssertionError(f"no call from the publishing page:\n{publisher.console()}")


# -- comparing audio ------------------------------------------------------------------------------------


def truth() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{CALL}.json").read_text())
    return loaded


def reference(rate: int) -> np.ndarray:
    """The fixture at ``rate``, as the browser's microphone played it."""
    samples, fixture_rate = mono_wav(FIXTURES / f"{CALL}.wav")
    return samples if rate == fixture_rate else resample(samples, fixture_rate, rate)


def lag_of(signal_: np.ndarray, reference_: np.ndarray) -> int:
    """Samples ``signal_`` runs behind ``reference_`` (negative: ahead), by cross-correlation over all of
    both (FFT), so that a start anywhere in the other is found."""
    a = reference_.astype(np.float64)
    b = signal_.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    correlation = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    # Index k holds lag k for k < len(b), and lag k - size (negative) for the tail.
    lags = np.r_[np.arange(len(b)), np.arange(-len(a) + 1, 0)]
    values = np.r_[correlation[: len(b)], correlation[size - len(a) + 1 :]]
    return int(lags[np.argmax(values)])


def shifted(signal_: np.ndarray, lag: int, length: int) -> np.ndarray:
    """``signal_`` on the reference's timeline (``lag`` from ``lag_of``); NaN where it has nothing."""
    out = np.full(length, np.nan)
    start = max(0, -lag)
    stop = min(length, len(signal_) - lag)
    if stop > start:
        out[start:stop] = signal_[start + lag : stop + lag]
    return out


def check_digits_masked(frames: Frames, what: str) -> int:
    """No spoken digit's frames are the original; returns how many digits ``frames`` covered."""
    covered = 0
    for item in truth()["pii"]:
        for digit in item["digits"]:
            window = frames.frames(digit["start"], digit["end"])
            if np.isnan(frames.error[window]).any():
                continue  # not heard at all (before the listener joined): nothing to leak
            covered += 1
            heard = frames.speech[window] & (frames.error[window] < INTACT)
            assert not heard.any(), f"{what}: digit at {digit['start']:.2f} s audible"
    return covered


def test_the_recording_masks_every_digit_and_keeps_the_rest(browser_call: BrowserCall) -> None:
    rate = browser_call.rate
    ref = reference(rate)
    lag = lag_of(browser_call.recording, ref)
    frames = Frames.compare(ref, shifted(browser_call.recording, lag, len(ref)), rate)
    digits = sum(len(item["digits"]) for item in truth()["pii"])
    assert check_digits_masked(frames, "recording") == digits
    outside = frames.speech.copy()
    for item in truth()["pii"]:
        outside[frames.frames(max(0.0, item["start"] - 0.3), item["end"] + 0.3)] = False
    intact = float(np.mean(frames.error[outside] < INTACT))
    lost = np.flatnonzero(outside & ~(frames.error < INTACT)) * FRAME_S
    # A floor against gross failure, as in tests/test_real_peers.py: live, the recognizer's words differ
    # from a file run's, and a cue's span may run on.
    assert intact >= 0.6, f"only {intact:.0%} of the other speech came through intact: {lost}"


def test_the_recording_keeps_the_timeline(browser_call: BrowserCall) -> None:
    rate = browser_call.rate
    ref = reference(rate)
    lag = lag_of(browser_call.recording, ref)
    # The browser starts the fixture when the page opens the microphone, just after the call is up; a
    # few milliseconds early is the codec's delay and the correlation's resolution, not lost speech.
    assert -FRAME_S * rate <= lag < MOST_START_OFFSET_S * rate, f"the fixture starts at {lag / rate:.3f} s"
    # Never shorter than the fixture (nothing lost or squeezed), and no longer than the call was up.
    assert len(ref) + lag - rate // 50 <= len(browser_call.recording) <= (browser_call.up_s + 1.0) * rate


#: The listener's audio went through the relay's Opus encoder, Chromium's jitter buffer and MediaRecorder:
#: its alignment with the recording wanders, enough to undo a waveform match. The jitter buffer starts
#: ~0.1 s behind and catches up over a second or two (time-stretching), then drifts by a few milliseconds.
#: So it is compared a second at a time, each window at its own best offset within this much of the
#: global one, at the fixture's own rate.
DRIFT_S = 0.15
COMPARE_RATE = 8000


def at_compare_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    samples = np.ascontiguousarray(samples, dtype=np.int16)
    converted = samples if rate == COMPARE_RATE else resample(samples, rate, COMPARE_RATE)
    return converted.astype(np.float64)


def best_match(output: np.ndarray, reference_: np.ndarray, lag: int, start_s: float, end_s: float) -> float:
    """The best normalised correlation of ``output`` with ``reference_[start_s:end_s]``, ``output`` being
    ``lag`` samples behind, give or take ``DRIFT_S``; NaN where ``output`` does not cover the window."""
    drift = int(DRIFT_S * COMPARE_RATE)
    start, end = int(start_s * COMPARE_RATE), int(end_s * COMPARE_RATE)
    first, last = start + lag - drift, end + lag + drift
    if first < 0 or last > len(output) or end > len(reference_):
        return float("nan")
    window = reference_[start:end]
    span = output[first:last]
    dots = np.correlate(span, window, mode="valid")  # one per shift, -drift .. +drift
    energy = np.convolve(span * span, np.ones(len(window)), mode="valid")
    norms = np.sqrt(energy * float(np.dot(window, window)))
    return float(np.max(dots / np.maximum(norms, 1e-9)))


def test_the_listener_heard_the_recordings_redacted_audio(browser_call: BrowserCall) -> None:
    recording = at_compare_rate(browser_call.recording, browser_call.rate)
    listened = at_compare_rate(browser_call.listened, browser_call.rate)
    assert np.sqrt(np.mean(listened**2)) > 30, f"the listener heard silence:\n{browser_call.consoles}"
    lag = lag_of(listened, recording)
    scores = []
    for second in range(int(len(recording) / COMPARE_RATE)):
        window = recording[second * COMPARE_RATE : (second + 1) * COMPARE_RATE]
        if 20 * np.log10(max(float(np.sqrt(np.mean(window**2))), 1e-9) / 32768) < SPEECH_DBFS:
            continue  # silence (or masked to silence) matches anything and proves nothing
        score = best_match(listened, recording, lag, second, second + 1)
        if not np.isnan(score):
            scores.append(round(score, 2))
    assert len(scores) >= 8, f"the listener heard only {len(scores)} s of the call's sound: {scores}"
    assert float(np.median(scores)) > 0.7, f"listener vs recording, per second: {scores}"
    assert np.mean(np.array(scores) > 0.5) >= 0.8, f"listener vs recording, per second: {scores}"


def test_the_listener_heard_none_of_the_masked_speech(browser_call: BrowserCall) -> None:
    fixture = at_compare_rate(reference(COMPARE_RATE), COMPARE_RATE)
    recording = at_compare_rate(browser_call.recording, browser_call.rate)
    listened = at_compare_rate(browser_call.listened, browser_call.rate)
    # On the fixture's timeline: the listener against the recording, the recording against the fixture.
    lag = lag_of(listened, recording) + lag_of(recording, fixture)
    leaks = {}
    for item in truth()["pii"]:
        for digit in item["digits"]:
            score = best_match(listened, fixture, lag, digit["start"], digit["end"])
            assert not np.isnan(score), f"the listener did not hear the digit at {digit['start']:.2f} s"
            leaks[digit["start"]] = round(score, 2)
    # Unmasked, a digit matches at 0.65-0.85 after three Opus passes (publishing, listening, recording in
    # the page); a beep or noise at 0.05 at most.
    assert max(leaks.values()) < 0.4, f"original speech in the listener's masked stretches: {leaks}"
    # And the same measure finds the original where the recording kept it (0.7 or so; a little less than
    # the recording, one Opus pass closer): the alignment is right, and the check above could have failed.
    to_fixture = lag_of(recording, fixture)
    kept = [
        second
        for second in range(int(len(fixture) / COMPARE_RATE))
        if best_match(recording, fixture, to_fixture, second, second + 1) > 0.8
    ]
    found = [round(best_match(listened, fixture, lag, second, second + 1), 2) for second in kept]
    assert kept, "the recording kept none of the fixture's speech"
    assert float(np.nanmedian(found)) > 0.5, f"the listener, where the recording kept the speech: {found}"


#: A console line of Chromium's log: ``[pid:tid:MMDD/HHMMSS.micro:INFO:CONSOLE...] "message", source: ...``.
CONSOLE_LINE = re.compile(r"^\[\d+:\d+:\d{4}/(\d\d)(\d\d)(\d\d\.\d+):INFO:CONSOLE[^\]]*\] \"(.*)\", source:")


def logged_at(consoles_: str, message: str) -> float:
    """When a page first said ``message`` (its start), as seconds of the day by the machine's clock: both
    browsers log by the same clock, so differences between their lines are real time."""
    for line in consoles_.splitlines():
        match = CONSOLE_LINE.match(line)
        if match and match.group(4).startswith(f"bleepline demo: {message}"):
            hours, minutes, seconds = match.group(1, 2, 3)
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise AssertionError(f"no page said {message!r}:\n{consoles_}")


def test_the_listener_is_d_seconds_behind_the_microphone(browser_call: BrowserCall) -> None:
    """The listener hears each moment D after the microphone played it (a little more: jitter buffers),
    never sooner: sooner would be audio out before the detector had its D to look at it."""
    fixture = at_compare_rate(reference(COMPARE_RATE), COMPARE_RATE)
    recording = at_compare_rate(browser_call.recording, browser_call.rate)
    listened = at_compare_rate(browser_call.listened, browser_call.rate)
    # The listener's sample ``lag`` is the fixture's first; the microphone played that when the page
    # opened it (it logs "Publishing" right after), the listener's first when it logged "Recording".
    lag = lag_of(listened, recording) + lag_of(recording, fixture)
    played = logged_at(browser_call.consoles, "Publishing: call")
    heard = logged_at(browser_call.consoles, "Recording") + lag / COMPARE_RATE
    behind = (heard - played) % 86400  # across midnight too
    delay_s = RedactionPolicy().delay_s
    assert delay_s - 0.1 <= behind <= delay_s + 1.0, f"the listener is {behind:.2f} s behind, D is {delay_s}"


def test_the_browsers_packets_all_arrived(browser_call: BrowserCall) -> None:
    status = browser_call.status  # GET /v1/calls/<id> just before the hang-up
    assert status["id"] == browser_call.call_id
    assert status["state"] == "active"
    # 20 ms a packet, the fixture and the silence the fake microphone sends after it.
    assert status["packets"] >= 0.95 * float(truth()["duration"]) / FRAME_S
    assert status["drops"]["decode_errors"] == 0
    assert status["drops"]["lost"] <= 0.01 * status["packets"]  # loopback
