"""The redaction policy: defaults that suit live calls, and configurations that cannot work refused."""

from __future__ import annotations

from typing import Any

import pytest

from bleepline.audio.tones import BeepStyle
from bleepline.redact.policy import MaskMode, MaskReason, RedactionPolicy


def test_default_policy_beeps_personal_data_and_silences_what_was_never_verified() -> None:
    policy = RedactionPolicy()
    assert policy.mode_for(MaskReason.PII) is MaskMode.BEEP
    assert policy.mode_for(MaskReason.DTMF) is MaskMode.BEEP
    assert policy.mode_for(MaskReason.UNVERIFIED) is MaskMode.SILENCE
    assert 2.0 <= policy.delay_s <= 4.0  # seconds: the recognizer's lag, not a minute of hold
    assert 0.0 < policy.pad_after_s <= policy.pad_before_s <= 0.3


def test_policy_describes_itself_in_plain_values_for_headers_and_transcripts() -> None:
    described = RedactionPolicy(version="acme-7", mode=MaskMode.SILENCE).describe()
    assert described["version"] == "acme-7"
    assert described["mode"] == "silence"
    assert all(isinstance(value, str | float) for value in described.values())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"delay_s": 0.0}, "delay_s"),
        ({"delay_s": -1.0}, "delay_s"),
        ({"delay_s": 3600.0}, "delay_s"),
        ({"delay_s": float("nan")}, "delay_s"),
        ({"delay_s": True}, "delay_s"),
        ({"pad_before_s": -0.1}, "pad_before_s"),
        ({"pad_after_s": float("inf")}, "pad_after_s"),
        ({"pad_after_s": 10.0}, "pad_after_s"),
        ({"fade_ms": -1.0}, "fade_ms"),
        ({"fade_ms": 500.0}, "fade_ms"),
        ({"mode": "bleep"}, "mode"),
        ({"mode": 1}, "mode"),
        ({"unverified_mode": "loud"}, "unverified_mode"),
        ({"beep": "1000 Hz"}, "beep"),
        ({"version": ""}, "version"),
        ({"version": "1\n2"}, "version"),
        ({"version": "x" * 65}, "version"),
    ],
)
def test_impossible_policies_are_refused_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RedactionPolicy(**kwargs)


def test_modes_read_from_a_config_file_as_plain_strings_are_taken() -> None:
    policy = RedactionPolicy(mode="silence", unverified_mode="beep")  # type: ignore[arg-type]
    assert policy.mode is MaskMode.SILENCE
    assert policy.unverified_mode is MaskMode.BEEP
    assert policy == RedactionPolicy(mode=MaskMode.SILENCE, unverified_mode=MaskMode.BEEP)


def test_a_policy_is_a_value() -> None:
    a = RedactionPolicy(beep=BeepStyle(frequency=800.0))
    b = RedactionPolicy(beep=BeepStyle(frequency=800.0))
    assert a == b
    assert hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.delay_s = 1.0  # type: ignore[misc]
