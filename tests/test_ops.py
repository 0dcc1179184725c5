"""Operating `serve`: /metrics in Prometheus text format (counts only, never an id or address), /healthz
(open; 503 while draining), JSON logs that hold no content, and SIGTERM with a config file: calls ended,
recordings finalised, exit 0.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bleepline.call import Listener
from bleepline.commands.recordings import inspect_recording
from bleepline.listener import Hearing
from bleepline.logs import configure_logging, remove_logging
from bleepline.server import RelayServer
from bleepline.timeline import AudioChunk
from bleepline.transport.sdp import parse_offer
from tests.harness import LOOPBACK_ANY, make_server, request, serving
from tests.test_control import AUTH, SDP, TOKEN, free_ports, free_tcp_port, offer
from tests.test_serve import packets, send_paced, udp, wait_for

METRICS_TOKEN = "scrape-only-token"
CARD = "4111 1111 1111 1111"
TONE = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)  # 1 s at 8 kHz

Api = tuple[str, int]


@contextmanager
def relay(
    tmp_path: Path,
    pub: Path,
    factory: Callable[[int], Listener | None] = lambda rate: None,
) -> Iterator[tuple[RelayServer, Api, tuple[str, int]]]:
    """Server (static port, control API with a metrics token) on a loop in a thread; stopped at the end."""
    server = make_server(tmp_path / "store", pub, factory)
    with serving(
        server,
        token=TOKEN,
        rtp_ports=free_ports(4),
        metrics_token=METRICS_TOKEN,
        allow_plain_rtp=True,
        static=LOOPBACK_ANY,
        join_timeout=30,
    ) as api:
        assert server.local_address is not None
        yield server, api, server.local_address


# -- a small parser for the text exposition format 0.0.4 ----------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)"
_SAMPLE = re.compile(rf'({_NAME})(?:\{{((?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*",?)*)\}})? ({_VALUE})')
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\\n]|\\.)*)"')
_ALLOWED_LABELS = {"reason", "entity", "leg"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every line checked: HELP and TYPE once per family and before its samples; samples well formed."""
    assert text.endswith("\n")
    samples: Samples = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(_NAME, name), line
            assert name not in helped, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped, line
            assert name not in types, line
            assert kind in ("counter", "gauge"), line
            assert name.startswith("bleepline_"), line
            assert name.endswith("_total") == (kind == "counter"), line
            types[name] = kind
        else:
            match = _SAMPLE.fullmatch(line)
            assert match is not None, line
            name, labels, value = match.groups()
            assert name in types, line
            pairs = frozenset(_LABEL.findall(labels or ""))
            assert {k for k, _ in pairs} <= _ALLOWED_LABELS, line
            key = (name, pairs)
            assert key not in samples, line
            samples[key] = float(value)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(api: Api, token: str = TOKEN) -> tuple[str, Samples]:
    status, headers, body = request(api, "GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    return text, parse_metrics(text)


# -- /metrics ----------------------------------------------------------------------------------------------


def test_metrics_parse_and_move_after_calls(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    with relay(tmp_path, key_pair[0]) as (server, api, static), udp() as caller, udp() as other:
        _, before = scrape(api)
        assert value(before, "bleepline_calls_started_total") == 0
        assert value(before, "bleepline_calls_active") == 0
        assert value(before, "bleepline_draining") == 0
        assert value(before, "bleepline_masked_seconds_total", reason="unverified") == 0

        # A static-mode call, and garbage on the static port.
        caller.sendto(b"\x00" * 12, static)  # RTP version 0
        send_paced(caller, static, packets(TONE, ssrc=0x42))
        wait_for(lambda: server.stats.rtp == len(TONE) // 160, 5)
        _, during = scrape(api)
        assert value(during, "bleepline_calls_active") == 1
        assert value(during, "bleepline_calls_started_total") == 1
        assert value(during, "bleepline_rtp_packets_received_total") == 50
        assert value(during, "bleepline_packets_dropped_total", reason="malformed") == 1
        assert value(during, "bleepline_datagrams_total") == 51
        assert 0 < value(during, "bleepline_delay_line_fill_ratio") <= 1

        # A call set up over the API, ended over it.
        status, headers, body = request(api, "POST", "/v1/calls", offer(other.getsockname()[1]), SDP)
        assert status == 201, body
        port = parse_offer(body.decode()).port
        send_paced(other, ("127.0.0.1", port), packets(TONE, ssrc=0x43))
        wait_for(lambda: value(scrape(api)[1], "bleepline_rtp_packets_received_total") == 100, 5)
        status, _, _ = request(api, "DELETE", headers["Location"], headers=AUTH)
        assert status == 204

        text, after = scrape(api)
        assert value(after, "bleepline_calls_ended_total") == 1
        # The ended call's packets stay counted: a counter never goes down.
        assert value(after, "bleepline_rtp_packets_received_total") == 100
        # No listener: all of the ended call is masked, as unverified (fail closed).
        assert value(after, "bleepline_masked_seconds_total", reason="unverified") >= 0.9
        assert value(after, "bleepline_audio_seconds_total") == pytest.approx(1.0, abs=0.1)
        assert value(after, "bleepline_redactions_total", entity="CREDIT_CARD") == 0
        for key, seen in before.items():
            if key[0].endswith("_total"):
                assert after[key] >= seen, key

        # Counts only: no call id, no address (the relay's or the callers'), no port.
        ids = [path.name.split(".")[0] for path in server.store.glob("*.bleep")]
        assert len(ids) == 2
        for forbidden in [*ids, "127.0.0.1", str(static[1]), str(port), *map(str, caller.getsockname())]:
            assert forbidden not in text, forbidden
        assert str(other.getsockname()[1]) not in text


def test_metrics_want_a_token_and_the_metrics_token_opens_nothing_else(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    with relay(tmp_path, key_pair[0]) as (_, api, _static):
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}]:
            status, got, reply = request(api, "GET", "/metrics", headers=headers)
            assert status == 401
            assert got["WWW-Authenticate"] == "Bearer"
            assert json.loads(reply) == {"error": "authorization required"}
        scrape(api, TOKEN)
        scrape(api, METRICS_TOKEN)
        scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        for method, path in [("GET", "/v1/calls"), ("POST", "/v1/calls"), ("GET", "/nowhere")]:
            status, _, _ = request(api, method, path, offer(5000) if method == "POST" else None, scraper)
            assert status == 401, (method, path)


# -- /healthz ----------------------------------------------------------------------------------------------


class SlowToEnd:
    """A listener that hears nothing and takes a while over its last word: a drain that can be watched."""

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def push(self, chunk: AudioChunk) -> Hearing:
        return Hearing(heard_until=chunk.end / chunk.sample_rate, final_until=0.0, spans=())

    def end(self, at: float) -> Hearing:
        time.sleep(1.5)
        return Hearing(heard_until=at, final_until=0.0, spans=())


def test_healthz_is_open_and_503_while_draining(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    with relay(tmp_path, key_pair[0], SlowToEnd) as (server, api, static), udp() as caller:
        status, headers, body = request(api, "GET", "/healthz")  # no token
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"status": "ok", "calls_active": 0}
        send_paced(caller, static, packets(TONE[:1600], ssrc=9))
        wait_for(lambda: server.active_calls == 1, 5)
        assert json.loads(request(api, "GET", "/healthz")[2])["calls_active"] == 1

        server.stop()
        seen: list[tuple[int, dict[str, object]]] = []

        def draining() -> bool:
            status, _, body = request(api, "GET", "/healthz")
            seen.append((status, json.loads(body)))
            return status == 503

        wait_for(draining, 5)
        assert seen[-1][1]["status"] == "draining"
        _, samples = scrape(api)
        assert value(samples, "bleepline_draining") == 1
        # New calls are refused meanwhile.
        status, _, _ = request(api, "POST", "/v1/calls", offer(caller.getsockname()[1]), SDP)
        assert status == 503
    [recording] = server.store.glob("*.bleep")
    assert inspect_recording(recording, key_pair[1])["integrity"] == "complete"


# -- JSON logs -----------------------------------------------------------------------------------------------


class Blabbing:
    """A listener whose failure quotes what it heard, as a careless recognizer's exception might."""

    def __init__(self, rate: int) -> None:
        self.rate = rate

    def push(self, chunk: AudioChunk) -> Hearing:
        raise ValueError(f"could not parse {CARD!r}")

    def end(self, at: float) -> Hearing:
        raise ValueError(f"still holding {CARD!r}")


def test_json_logs_are_json_and_hold_no_content(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    stream = io.StringIO()
    handler = configure_logging("json", "debug", stream=stream)
    try:
        with relay(tmp_path, key_pair[0], Blabbing) as (_, api, _static), udp() as caller:
            caller_port = caller.getsockname()[1]
            status, headers, body = request(api, "POST", "/v1/calls", offer(caller_port), SDP)
            assert status == 201, body
            call_id = headers["Location"].rsplit("/", 1)[1]
            send_paced(caller, ("127.0.0.1", parse_offer(body.decode()).port), packets(TONE[:4000], ssrc=5))
            assert request(api, "DELETE", headers["Location"], headers=AUTH)[0] == 204
            _, samples = scrape(api)
            assert value(samples, "bleepline_listener_failures_total") == 1
            log = logging.getLogger("bleepline.test")
            try:
                raise RuntimeError(f"card {CARD}")
            except RuntimeError:
                log.exception("call %s: something broke", call_id)
            log.info("tagged", extra={"call_id": call_id})
            log.info("not an id", extra={"call_id": CARD})
    finally:
        remove_logging(handler)
    lines = stream.getvalue().splitlines()
    assert lines
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert set(entry) <= {"time", "level", "logger", "message", "call_id", "exception"}, entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
        assert entry["level"] in ("debug", "info", "warning", "error")
    text = stream.getvalue()
    for forbidden in [CARD, "4111", f":{caller_port}", str(caller_port), "Traceback"]:
        assert forbidden not in text, forbidden
    about_call = [e for e in entries if call_id in e["message"]]
    assert any("listener failed (ValueError)" in e["message"] for e in about_call)
    assert all(e.get("call_id") == call_id for e in about_call)
    [broke] = [e for e in entries if e["message"].endswith("something broke")]
    assert broke["exception"] == "RuntimeError"
    assert broke["level"] == "error"
    assert [e.get("call_id") for e in entries if e["message"] in ("tagged", "not an id")] == [call_id, None]


def test_text_logs_show_an_exception_by_type_only() -> None:
    stream = io.StringIO()
    handler = configure_logging("text", "info", stream=stream)
    try:
        try:
            raise KeyError(CARD)
        except KeyError:
            logging.getLogger("bleepline.test").exception("lookup failed")
        logging.getLogger("bleepline.test").debug("below the level")
    finally:
        remove_logging(handler)
    assert stream.getvalue() == "bleepline: lookup failed [KeyError]\n"


# -- SIGTERM with a config file --------------------------------------------------------------------------


def test_serve_from_a_config_file_drains_on_sigterm(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    pub, identity = key_pair
    store = tmp_path / "store"
    control_port = free_tcp_port()
    ports = free_ports(4)
    config = tmp_path / "serve.toml"
    config.write_text(
        f"""
codec = "pcmu"
recipients = ["{pub}"]
store = "store"
rtp_listen = "127.0.0.1:0"
control = "127.0.0.1:{control_port}"
token_env = "OPS_TEST_TOKEN"
rtp_ports = "{ports.start}-{ports.stop - 1}"
log_format = "json"
"""
    )
    env = {name: text for name, text in os.environ.items() if not name.startswith("BLEEPLINE_")}
    env["OPS_TEST_TOKEN"] = TOKEN
    process = subprocess.Popen(
        [sys.executable, "-m", "bleepline", "serve", "--config", str(config), "--idle-timeout", "30"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    api = ("127.0.0.1", control_port)
    try:
        assert process.stderr is not None
        first = [json.loads(process.stderr.readline()) for _ in range(2)]  # once the models have loaded
        assert first[0]["message"].startswith("control API on")
        assert first[1]["message"].startswith("listening for RTP")
        host, port = first[1]["message"].rsplit(" ", 1)[1].rsplit(":", 1)
        assert request(api, "GET", "/healthz")[0] == 200
        with udp() as caller:
            send_paced(caller, (host, int(port)), packets(TONE[:4000], ssrc=7))
        started = json.loads(process.stderr.readline())
        assert started["message"].startswith(f"call {started['call_id']}: started")
        _, samples = scrape(api)
        assert value(samples, "bleepline_calls_active") == 1
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines()]
    assert any(e["message"].startswith("SIGTERM: ending 1 calls") for e in entries)
    [ended] = [e for e in entries if "ended (stop)" in e["message"]]
    assert ended["call_id"] == started["call_id"]
    assert "Traceback" not in err
    [recording] = store.glob("*.bleep")
    assert recording.stem == started["call_id"]
    report = inspect_recording(recording, identity)
    assert report["integrity"] == "complete"
    assert report["authenticated"] is True
    assert abs(report["duration"] - 0.5) < 0.1
    assert (store / f"{started['call_id']}.transcript.json").exists()
    assert uuid.UUID(started["call_id"])
