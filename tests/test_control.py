"""The HTTP control API over real sockets on 127.0.0.1: a call set up by SDP offer/answer is redacted into
a .bleep file, and missing tokens, hostile bodies and unknown ids get one-line JSON errors.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bleepline.server import RelayServer
from bleepline.transport.sdp import parse_offer
from tests.harness import make_server, request, sdp_offer, serving
from tests.test_serve import decoded, packets, send_paced, udp, wait_for

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_ports(count: int) -> range:
    # Probed, then released: good enough on loopback for a test, and the server skips a taken one.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        first = int(probe.getsockname()[1])
    return range(first, min(first + count, 65536))


def free_tcp_port() -> int:
    """A TCP port to listen on. Probed over TCP: a port free for UDP may be the local end of a TCP
    connection (both come from the same ephemeral range), and binding it to listen then fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def relay(
    tmp_path: Path, pub: Path, ports: range, *, allow_plain_rtp: bool = True
) -> Iterator[tuple[RelayServer, tuple[str, int]]]:
    """The server (no static port) and its control API on one loop in a thread; all closed on the way out."""
    server = make_server(tmp_path / "store", pub)  # unheard: everything masked, and fast
    with serving(server, token=TOKEN, rtp_ports=ports, allow_plain_rtp=allow_plain_rtp) as api:
        yield server, api


def offer(port: int, protocol: str = "RTP/AVP", kind: str = "audio") -> bytes:
    attributes = ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=sendrecv"]
    if protocol == "RTP/SAVP":
        key = base64.b64encode(bytes(range(30))).decode()
        attributes.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}")
    return sdp_offer(f"{kind} {port} {protocol} 0 101", *attributes).encode()


SDP = {"Content-Type": "application/sdp", **AUTH}


def test_a_call_set_up_by_sdp_is_recorded(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    pub, key = key_pair
    ports = free_ports(4)
    tone = (np.sin(np.arange(16000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)  # 2 s
    threads_before = threading.active_count()
    with relay(tmp_path, pub, ports) as (server, api), udp() as caller:
        caller_port = caller.getsockname()[1]
        status, headers, body = request(api, "POST", "/v1/calls", offer(caller_port), SDP)
        assert status == 201, body
        assert headers["Content-Type"].startswith("application/sdp")
        answer = parse_offer(body.decode())
        assert answer.address == "127.0.0.1"
        assert answer.port in ports
        assert [c.encoding for c in answer.codecs] == ["PCMU/8000", "telephone-event/8000"]
        assert answer.direction == "recvonly"
        location = headers["Location"]
        call_id = location.rsplit("/", 1)[1]
        assert location == f"/v1/calls/{uuid.UUID(call_id)}"

        send_paced(caller, ("127.0.0.1", answer.port), packets(tone, ssrc=0x77))
        with udp() as stranger:  # another address on the call's port: dropped, counted
            stranger.sendto(packets(tone[:160], ssrc=0x78)[0], ("127.0.0.1", answer.port))

        def counted() -> dict[str, Any]:
            status, _, body = request(api, "GET", location, headers=AUTH)
            assert status == 200
            return dict(json.loads(body))

        wait_for(lambda: counted()["packets"] == 100 and counted()["drops"]["stranger"] == 1, 5)
        stats = counted()
        assert stats["state"] == "active"
        assert stats["id"] == call_id
        assert "127.0.0.1" not in json.dumps(stats)  # no caller address
        status, _, body = request(api, "GET", "/v1/calls", headers=AUTH)
        assert status == 200
        assert json.loads(body) == {"calls": [{"id": call_id, "state": "active"}]}

        started = time.monotonic()
        status, _, body = request(api, "DELETE", location, headers=AUTH)
        assert status == 204, body
        assert time.monotonic() - started < 10
        ended = counted()
        assert ended["state"] == "ended"
        assert ended["masked_s"]
        assert abs(float(ended["duration_s"]) - 2.0) < 0.1
        [recording] = server.store.glob("*.bleep")
        assert recording.stem == call_id
        assert abs(len(decoded(recording, tmp_path, key)) - len(tone)) / 8000 < 0.1
        assert (server.store / f"{call_id}.transcript.json").exists()
        status, _, _ = request(api, "DELETE", location, headers=AUTH)  # already ended: nothing to do
        assert status == 204
    assert server.stats.calls_started == server.stats.calls_ended == 1
    assert threading.active_count() <= threads_before


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic eDp5"}],
)
def test_every_endpoint_wants_the_token(
    headers: dict[str, str], tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    with relay(tmp_path, key_pair[0], free_ports(2)) as (server, api):
        for method, path, body in [
            ("GET", "/v1/calls", None),
            ("POST", "/v1/calls", offer(5000)),
            ("GET", f"/v1/calls/{uuid.uuid4()}", None),
            ("DELETE", f"/v1/calls/{uuid.uuid4()}", None),
            ("GET", "/nowhere", None),
        ]:
            status, got, reply = request(
                api, method, path, body, {"Content-Type": "application/sdp", **headers}
            )
            assert status == 401, (method, path)
            assert got["WWW-Authenticate"] == "Bearer"
            assert json.loads(reply) == {"error": "authorization required"}
        assert server.stats.calls_started == 0


def test_hostile_requests_get_one_line_errors(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    with relay(tmp_path, key_pair[0], free_ports(2)) as (server, api):
        cases = [
            ("POST", "/v1/calls", b"garbage\r\n", SDP, 400),
            ("POST", "/v1/calls", b"\xff\xfe not utf-8", SDP, 400),
            ("POST", "/v1/calls", offer(5000, kind="video"), SDP, 400),
            ("POST", "/v1/calls", offer(5000, protocol="UDP/TLS/RTP/SAVPF"), SDP, 400),
            ("POST", "/v1/calls", offer(5000) + b"a=x:" + b"y" * 70_000 + b"\r\n", SDP, 413),
            ("POST", "/v1/calls", offer(5000), {"Content-Type": "text/plain", **AUTH}, 415),
            ("POST", "/v1/calls", offer(5000), AUTH, 415),
            ("GET", f"/v1/calls/{uuid.uuid4()}", None, AUTH, 404),
            ("DELETE", f"/v1/calls/{uuid.uuid4()}", None, AUTH, 404),
            ("GET", "/v1/calls/not-a-uuid", None, AUTH, 404),
            ("GET", "/v1/calls/..%2F..%2Fetc%2Fpasswd", None, AUTH, 404),
            ("DELETE", "/v1/calls/%7B" + str(uuid.uuid4()) + "%7D", None, AUTH, 404),
            ("GET", f"/v1/calls/{str(uuid.uuid4()).upper()}", None, AUTH, 404),
            ("PUT", "/v1/calls", b"", AUTH, 405),
        ]
        for method, path, body, headers, expected in cases:
            status, _, reply = request(api, method, path, body, headers)
            assert status == expected, (method, path, status, reply)
            message = json.loads(reply)["error"]
            assert isinstance(message, str)
            assert "\n" not in message
            assert "Traceback" not in message
        assert server.stats.calls_started == 0
        assert list(server.store.iterdir()) == []


def test_no_port_free_is_503(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    with udp() as taken:
        port = int(taken.getsockname()[1])
        with relay(tmp_path, key_pair[0], range(port, port + 1)) as (server, api):
            status, _, reply = request(api, "POST", "/v1/calls", offer(5000), SDP)
            assert status == 503
            assert json.loads(reply) == {"error": "no RTP port free"}
            assert server.stats.calls_started == 0


@pytest.mark.parametrize(
    ("extra", "env", "says"),
    [
        (["--control", "127.0.0.1:0"], {}, "--token-env"),
        (["--control", "127.0.0.1:0", "--token-env", "BLEEP_TEST_TOKEN"], {}, "BLEEP_TEST_TOKEN"),
        (["--control", "127.0.0.1:0", "--token-env", "BLEEP_TEST_TOKEN"], {"BLEEP_TEST_TOKEN": " "}, "empty"),
        (["--control", "nowhere"], {}, "--control must be HOST:PORT"),
        (["--control", "127.0.0.1:0", "--rtp-ports", "9-1"], {}, "--rtp-ports"),
        ([], {}, "--rtp-listen, --control"),
    ],
)
def test_serve_refuses_a_control_api_without_a_token(
    extra: list[str],
    env: dict[str, str],
    says: str,
    tmp_path: Path,
    key_pair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bleepline import cli

    monkeypatch.delenv("BLEEP_TEST_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["serve", "--codec", "pcmu", "--recipient", str(key_pair[0]), "--store", str(tmp_path / "s")]
    assert cli.main(argv + extra) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert says in err, err


JSON_TYPE = {"Content-Type": "application/json", **AUTH}


def test_json_call_requests_with_bad_options_are_400(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    sdp = offer(5000).decode()
    bad: list[bytes | dict[str, Any]] = [
        b"not json",
        offer(5000),  # an SDP body labelled JSON
        b"\xff\xfe",
        b"[" * 30_000 + b"]" * 30_000,
        b'"just a string"',
        b'["sdp"]',
        b'{"sdp": "x", "sdp": "y"}',
        {},
        {"sdp": 5},
        {"sdp": None},
        {"sdp": sdp, "extra": 1},
        {"sdp": sdp, "Redacted": "127.0.0.1:5000"},
        {"sdp": sdp, "passthrough": 5000},
        {"sdp": sdp, "passthrough": None},
        {"sdp": sdp, "passthrough": ["127.0.0.1", 5000]},
        {"sdp": sdp, "redacted": "127.0.0.1"},
        {"sdp": sdp, "redacted": "127.0.0.1:"},
        {"sdp": sdp, "redacted": "127.0.0.1:0"},
        {"sdp": sdp, "redacted": "127.0.0.1:65536"},
        {"sdp": sdp, "redacted": "127.0.0.1:-5"},
        {"sdp": sdp, "redacted": "127.0.0.1:5\u00b2"},
        {"sdp": sdp, "redacted": "localhost:5000"},
        {"sdp": sdp, "redacted": "::1:5000"},
        {"sdp": sdp, "redacted": "[fe80::1%eth0]:5000"},
        {"sdp": sdp, "redacted": "224.0.0.1:5000"},
        {"sdp": sdp, "redacted": "0.0.0.0:5000"},
        {"sdp": sdp, "redacted": "[::1]:5000"},  # the RTP port is IPv4: it could not send there
        {"sdp": sdp, "passthrough": "[::1]:5000"},
        {"sdp": "garbage"},
        # The redacted leg back to an offerer that will not receive (RFC 3264): refused, not ignored.
        {"sdp": sdp.replace("a=sendrecv", "a=sendonly"), "redacted": "127.0.0.1:5000"},
    ]
    with relay(tmp_path, key_pair[0], free_ports(4)) as (server, api):
        for body in bad:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            status, headers, reply = request(api, "POST", "/v1/calls", data, JSON_TYPE)
            assert status == 400, (body, reply)
            assert headers["Content-Type"].startswith("application/json")
            message = json.loads(reply)["error"]
            assert "\n" not in message
            assert "Traceback" not in message
            assert "5000" not in message  # the request's address is not echoed
        assert server.stats.calls_started == 0
        assert list(server.store.iterdir()) == []


def test_json_call_request_answer_directions(tmp_path: Path, key_pair: tuple[Path, Path]) -> None:
    with relay(tmp_path, key_pair[0], free_ports(8)) as (server, api), udp() as elsewhere:
        there = f"127.0.0.1:{elsewhere.getsockname()[1]}"
        cases = [
            ({"sdp": offer(5000).decode()}, "recvonly"),
            # Sent to a third address, the redacted leg is no part of the offered stream: recvonly.
            ({"sdp": offer(5000).decode(), "passthrough": there, "redacted": there}, "recvonly"),
            # Back to the offer's own address and port, it is this stream's other direction: sendrecv.
            ({"sdp": offer(5000).decode(), "redacted": "127.0.0.1:5000"}, "sendrecv"),
            (
                {
                    "sdp": offer(5000).decode().replace("a=sendrecv", "a=recvonly"),
                    "redacted": "127.0.0.1:5000",
                },
                "sendonly",
            ),
        ]
        for body, direction in cases:
            status, headers, reply = request(api, "POST", "/v1/calls", json.dumps(body).encode(), JSON_TYPE)
            assert status == 201, (body, reply)
            assert parse_offer(reply.decode()).direction == direction, body
            status, _, reply = request(api, "GET", headers["Location"], headers=AUTH)
            assert status == 200
            assert json.loads(reply)["sent"] == {"passthrough": 0, "redacted": 0}
            status, _, _ = request(api, "DELETE", headers["Location"], headers=AUTH)
            assert status == 204
        assert server.stats.calls_started == server.stats.calls_ended == len(cases)
