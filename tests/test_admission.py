"""Admission: a call the recognizer cannot hear in time is refused, or taken unheard and masked whole;
the calls already running keep their listeners."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.harness import request
from tests.test_call import ScriptedListener
from tests.test_control import AUTH, SDP, offer
from tests.test_legs import relay
from tests.test_serve import decoded, packets, send_paced, udp, wait_for


def test_a_call_past_the_recognizers_capacity_is_refused_with_a_reason(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    with relay(tmp_path, key_pair[0], ScriptedListener([], lag=0.1)) as (server, api):
        server.max_listening_calls = 1
        first, _, _ = request(api, "POST", "/v1/calls", offer(5000), SDP)
        assert first == 201
        status, _, reply = request(api, "POST", "/v1/calls", offer(5002), SDP)
        assert status == 503
        assert "recognizer is at capacity" in json.loads(reply)["error"]
        assert server.stats.refused_busy == 1
        assert server.stats.calls_started == 1


def test_over_capacity_mask_takes_the_call_unheard_and_masks_all_of_it(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    pub, identity = key_pair
    tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 8000).astype(np.int16)
    with relay(tmp_path, pub, ScriptedListener([], lag=0.1)) as (server, api), udp() as sock:
        server.max_listening_calls = 1
        server.over_capacity = "mask"
        first, _, _ = request(api, "POST", "/v1/calls", offer(5000), SDP)
        assert first == 201
        port = int(sock.getsockname()[1])
        status, headers, reply = request(api, "POST", "/v1/calls", offer(port), SDP)
        assert status == 201
        assert server.stats.calls_unheard == 1
        relay_port = int(
            next(line for line in reply.decode().splitlines() if line.startswith("m=")).split()[1]
        )
        send_paced(sock, ("127.0.0.1", relay_port), packets(tone, ssrc=77))
        call_id = headers["Location"].rsplit("/", 1)[1]
        assert request(api, "DELETE", headers["Location"], None, AUTH)[0] == 204
        wait_for(lambda: (server.store / f"{call_id}.bleep").exists(), 5)
    recording = decoded(server.store / f"{call_id}.bleep", tmp_path, identity)
    assert len(recording) >= len(tone) - 160
    assert not np.any(recording)  # unverified: silence, every sample


def test_a_listener_falling_behind_makes_the_recognizer_busy(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    with relay(tmp_path, key_pair[0], ScriptedListener([], lag=0.1)) as (server, api):
        assert not server.recognizer_busy()
        assert request(api, "POST", "/v1/calls", offer(5000), SDP)[0] == 201
        (call,) = list(server._calls.values())
        # As if the worker were stuck: audio queued for it, more than the busy limit.
        with call.live._lock:
            call.live._queued_samples = 8000
        assert server.recognizer_busy()
        with call.live._lock:
            call.live._queued_samples = 0
        assert not server.recognizer_busy()


def test_calls_without_a_listener_do_not_count_against_capacity(
    tmp_path: Path, key_pair: tuple[Path, Path]
) -> None:
    with relay(tmp_path, key_pair[0], None) as (server, api):
        server.max_listening_calls = 1
        for port in (5000, 5002, 5004):
            assert request(api, "POST", "/v1/calls", offer(port), SDP)[0] == 201
