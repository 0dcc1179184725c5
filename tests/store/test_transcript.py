from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bleepline.store import transcript as transcript_module
from bleepline.store.errors import StoreError, TranscriptWriteError
from bleepline.store.transcript import (
    Redaction,
    Transcript,
    TranscriptBuilder,
    write_transcript,
)
from bleepline.timeline import PiiSpan, Word

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "transcript.schema.json"
CREATED = datetime(2030, 1, 1, tzinfo=UTC)
MODELS = {"asr": "whisper-tiny-en int8", "pii": "spoken-pii 1 + en_core_web_sm 3.8.0"}
POLICY = {"version": "2030.1", "delay_s": 2.5, "mask": "beep"}
VTT_TIMING = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$")


def spoken(*items: tuple[str, float, float]) -> list[Word]:
    return [Word(start, end, text, final=True) for text, start, end in items]


def evenly(text: str, start: float = 0.0, step: float = 0.4) -> list[Word]:
    """One final word per whitespace-separated token, back to back, ``step`` seconds each."""
    return [
        Word(start + i * step, start + (i + 1) * step, token, final=True)
        for i, token in enumerate(text.split())
    ]


def build(
    words: Sequence[Word],
    redactions: Sequence[Redaction] = (),
    duration: float = 30.0,
    stats: Mapping[str, object] | None = None,
    pause_s: float = transcript_module.PAUSE_S,
    max_segment_s: float = transcript_module.MAX_SEGMENT_S,
) -> Transcript:
    builder = TranscriptBuilder(
        "call-7", models=MODELS, policy=POLICY, pause_s=pause_s, max_segment_s=max_segment_s
    )
    builder.add_words(words)
    builder.add_redactions(redactions)
    return builder.build(duration, stats, created_at=CREATED)


def texts(transcript: Transcript) -> list[str]:
    return [s.text for s in transcript.segments]


def cover(words: Sequence[Word], entity: str, source: str = "asr", inset: float = 0.0) -> Redaction:
    """A redaction over ``words``, pulled in by ``inset`` at both ends (as loose word edges would be)."""
    return Redaction(words[0].start + inset, words[-1].end - inset, entity, source, 0.9)


# --- placeholders ------------------------------------------------------------------------------------------


def test_a_word_under_a_redaction_becomes_its_entity_placeholder() -> None:
    words = evenly("my name is Zebulon thanks")
    result = build(words, [cover(words[3:4], "PERSON")])
    assert texts(result) == ["my name is [PERSON] thanks"]


def test_consecutive_words_of_one_entity_collapse_into_one_placeholder() -> None:
    words = evenly("card 4929 3817 5526 0043 please")
    result = build(words, [cover(words[1:5], "CREDIT_CARD")])
    assert texts(result) == ["card [CREDIT_CARD] please"]


def test_two_redactions_of_one_entity_back_to_back_still_read_as_one_placeholder() -> None:
    words = evenly("call 555 0199 or")
    result = build(words, [cover(words[1:2], "PHONE_NUMBER"), cover(words[2:3], "PHONE_NUMBER")])
    assert texts(result) == ["call [PHONE_NUMBER] or"]


def test_neighbouring_entities_keep_their_own_placeholders() -> None:
    words = evenly("I am Zebulon zeb@example.org today")
    result = build(words, [cover(words[2:3], "PERSON"), cover(words[3:4], "EMAIL_ADDRESS")])
    assert texts(result) == ["I am [PERSON] [EMAIL_ADDRESS] today"]


def test_sentence_punctuation_after_a_replaced_word_is_kept() -> None:
    words = evenly("it is 4929, 3817. Right")
    result = build(words, [cover(words[2:4], "CREDIT_CARD")])
    assert texts(result) == ["it is [CREDIT_CARD].", "Right"]


def test_a_short_masked_pause_between_words_gets_no_placeholder_but_stays_listed() -> None:
    words = spoken(("yes,", 0.0, 0.5), ("you", 0.7, 0.9), ("can", 0.9, 1.1), ("call", 2.0, 2.3))
    pause = Redaction(0.5, 0.7, "PHONE_NUMBER", "cue", 0.8)  # masking kept in a pause, no word under it
    lost = Redaction(1.1, 2.0, "PHONE_NUMBER", "cue", 0.8)  # long enough for a word the recognizer missed
    keypad = Redaction(2.3, 2.4, "DTMF", "dtmf", 1.0, digits=1)
    result = build(words, [pause, lost, keypad])
    assert texts(result) == ["yes, you can [PHONE_NUMBER] call [DTMF]"]
    assert len(result.redactions) == 3


def test_a_word_only_partly_under_a_redaction_is_replaced_whole() -> None:
    words = spoken(("before", 0.0, 1.0), ("Zebulon", 1.0, 2.0), ("after", 2.0, 3.0))
    # Only the last 10 ms of the name are covered: Whisper's word edges are looser than that.
    result = build(words, [Redaction(1.99, 2.0, "PERSON", "asr", 0.6)])
    assert texts(result) == ["before [PERSON] after"]


def test_a_redaction_inside_a_word_replaces_it() -> None:
    words = spoken(("alpha", 0.0, 1.0), ("Zebulon", 1.0, 2.0))
    result = build(words, [Redaction(1.4, 1.5, "PERSON", "cue", 0.5)])
    assert texts(result) == ["alpha [PERSON]"]


def test_words_that_only_touch_a_redaction_edge_are_kept() -> None:
    words = evenly("number is 4929 thanks")
    result = build(words, [cover(words[2:3], "CREDIT_CARD")])
    assert texts(result) == ["number is [CREDIT_CARD] thanks"]


@pytest.mark.parametrize("at", [1.0, 1.2, 1.4])
def test_a_zero_length_word_on_a_redaction_edge_or_inside_is_replaced(at: float) -> None:
    # Whisper does emit zero-length words; touching is their only way to overlap.
    words = spoken(("so", 0.0, 0.8), ("Zebulon", at, at), ("ok", 1.5, 1.8))
    result = build(words, [Redaction(1.0, 1.4, "PERSON", "asr", 0.9)])
    assert texts(result) == ["so [PERSON] ok"]


def test_a_zero_length_redaction_on_a_word_edge_replaces_the_word() -> None:
    words = spoken(("so", 0.0, 0.5), ("Zebulon", 1.0, 1.4), ("ok", 1.5, 1.8))
    result = build(words, [Redaction(1.4, 1.4, "PERSON", "asr", 0.9)])
    assert texts(result) == ["so [PERSON] ok"]


def test_words_in_an_unverified_stretch_become_unverified() -> None:
    words = evenly("we lost you there for a bit")
    result = build(words, [Redaction(0.9, 1.9, "UNVERIFIED", "unverified", 0.0)])
    assert texts(result) == ["we lost [UNVERIFIED] a bit"]


def test_a_named_entity_wins_over_unverified_on_the_same_word() -> None:
    words = evenly("hello Zebulon here")
    result = build(
        words,
        [Redaction(0.0, 1.2, "UNVERIFIED", "unverified", 0.0), cover(words[1:2], "PERSON", inset=0.1)],
    )
    assert texts(result) == ["[UNVERIFIED] [PERSON] [UNVERIFIED]"]


def test_dtmf_shows_as_a_placeholder_and_a_count_never_the_keys() -> None:
    words = evenly("enter your pin now") + evenly("thank you", start=3.0)
    dtmf = Redaction(1.8, 2.9, "PIN", "dtmf", 1.0, digits=4)
    result = build(words, [dtmf])
    assert texts(result) == ["enter your pin now [DTMF] thank you"]
    document = json.loads(result.to_json())
    assert document["redactions"] == [
        {"start": 1.8, "end": 2.9, "entity": "PIN", "source": "dtmf", "score": 1.0, "digits": 4}
    ]


def test_a_word_heard_over_dtmf_tones_becomes_dtmf() -> None:
    words = evenly("press four now")
    result = build(words, [Redaction(0.4, 0.8, "PIN", "dtmf", 1.0, digits=1)])
    assert texts(result) == ["press [DTMF] now"]


def test_a_dtmf_redaction_needs_a_count_and_others_refuse_one() -> None:
    with pytest.raises(ValueError, match="digits"):
        Redaction(0.0, 1.0, "PIN", "dtmf", 1.0)
    with pytest.raises(ValueError, match="digit count"):
        Redaction(0.0, 1.0, "CREDIT_CARD", "asr", 1.0, digits=16)


def test_a_redaction_no_word_touched_still_shows_where_audio_was_masked() -> None:
    words = evenly("one moment") + evenly("back again", start=20.0)
    result = build(words, [Redaction(5.0, 9.0, "UNVERIFIED", "unverified", 0.0)])
    assert texts(result) == ["one moment", "[UNVERIFIED]", "back again"]
    assert (result.segments[1].start, result.segments[1].end) == (5.0, 9.0)


@pytest.mark.parametrize(
    "word",
    ["4929", "4,929,381", "555-0199", "A12345", "0043.", "4\u200b929", "٤٩٢٩", "12/3456"],
)
def test_a_long_digit_string_no_redaction_covered_becomes_number(word: str) -> None:
    result = build(evenly(f"ref {word} ok"))
    shown = " ".join(texts(result))
    assert shown.startswith("ref [NUMBER]")
    assert not re.search(r"\d", shown)
    assert result.numbers_replaced == 1


@pytest.mark.parametrize("word", ["123", "12.5", "four", "2nd", "911", "3:45"])
def test_short_numbers_and_number_words_no_redaction_covered_stay(word: str) -> None:
    # The detector decided these were not personal data; only long digit strings are a risk by themselves.
    result = build(evenly(f"ref {word} ok"))
    assert texts(result) == [f"ref {word} ok"]
    assert result.numbers_replaced == 0


def test_redactions_added_after_the_words_still_apply() -> None:
    words = evenly("I am Zebulon")
    builder = TranscriptBuilder("call-7", models=MODELS, policy=POLICY)
    builder.add_words(words)
    assert [s.text for s in builder.build(2.0).segments] == ["I am Zebulon"]
    builder.add_redactions([cover(words[2:], "PERSON")])
    assert [s.text for s in builder.build(2.0).segments] == ["I am [PERSON]"]


def test_words_may_arrive_out_of_order() -> None:
    words = evenly("first second third")
    result = build([words[2], words[0], words[1]])
    assert texts(result) == ["first second third"]


def test_a_detector_span_converts_to_a_redaction() -> None:
    span = PiiSpan(1.0, 2.5, "US_SSN", 0.85, final=True, source="cue")
    assert Redaction.from_span(span) == Redaction(1.0, 2.5, "US_SSN", "cue", 0.85)


@pytest.mark.parametrize(
    ("start", "end", "entity", "source", "score"),
    [
        (1.0, 0.5, "PERSON", "asr", 0.5),
        (float("nan"), 1.0, "PERSON", "asr", 0.5),
        (0.0, 1.0, "Zebulon Quill", "asr", 0.5),
        (0.0, 1.0, "[PERSON]", "asr", 0.5),
        (0.0, 1.0, "PERSON", "guess", 0.5),
        (0.0, 1.0, "PERSON", "asr", 1.5),
    ],
)
def test_malformed_redactions_are_refused_without_echoing_the_entity(
    start: float, end: float, entity: str, source: str, score: float
) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]*$") as caught:
        Redaction(start, end, entity, source, score)
    assert "Zebulon" not in str(caught.value)


def test_tentative_words_are_refused() -> None:
    builder = TranscriptBuilder("call-7", models=MODELS, policy=POLICY)
    with pytest.raises(ValueError, match="final words only") as caught:
        builder.add_words([Word(0.0, 1.0, "Zebulon", final=False)])
    assert "Zebulon" not in str(caught.value)


def test_a_word_with_no_place_on_the_timeline_is_refused() -> None:
    builder = TranscriptBuilder("call-7", models=MODELS, policy=POLICY)
    with pytest.raises(ValueError, match="non-finite"):
        builder.add_words([Word(float("nan"), 1.0, "Zebulon", final=True)])


@pytest.mark.parametrize(
    "stats",
    [
        {"note": "caller said Zebulon"},
        {"masked_seconds": {"pii": "Zebulon"}},
        {"Zebulon Quill": 1},
        {"x": True},
    ],
)
def test_stats_take_named_numbers_only(stats: Mapping[str, object]) -> None:
    with pytest.raises(ValueError, match="stats") as caught:
        build(evenly("hello"), stats=stats)
    assert "Zebulon" not in str(caught.value)


# --- segments -----------------------------------------------------------------------------------------------


def test_a_pause_longer_than_the_limit_starts_a_new_segment() -> None:
    words = spoken(("a", 0.0, 0.5), ("b", 1.0, 1.5), ("c", 2.4, 2.8), ("d", 2.8, 3.0))
    result = build(words)
    assert texts(result) == ["a b", "c d"]
    assert [(s.start, s.end) for s in result.segments] == [(0.0, 1.5), (2.4, 3.0)]


def test_a_sentence_end_starts_a_new_segment() -> None:
    result = build(evenly("Hello there. How are you? Fine! ok"))
    assert texts(result) == ["Hello there.", "How are you?", "Fine!", "ok"]


def test_no_segment_grows_past_the_maximum_length() -> None:
    words = evenly(" ".join(["word"] * 60), step=0.5)  # 30 s of speech without a pause or a full stop
    result = build(words)
    assert len(result.segments) == 3
    assert all(s.end - s.start <= 10.0 for s in result.segments)
    assert [(s.start, s.end) for s in result.segments] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]


def test_segment_limits_can_be_set() -> None:
    words = spoken(("a", 0.0, 0.5), ("b", 1.0, 1.5), ("c", 1.6, 2.0))
    assert texts(build(words, pause_s=0.3)) == ["a", "b c"]
    assert texts(build(words, max_segment_s=1.0)) == ["a", "b c"]


def test_a_placeholder_longer_than_the_maximum_stands_alone() -> None:
    words = evenly("hi") + evenly("bye", start=14.5)
    result = build(words, [Redaction(0.5, 14.4, "UNVERIFIED", "unverified", 0.0)])
    assert texts(result) == ["hi", "[UNVERIFIED]", "bye"]


# --- WebVTT -------------------------------------------------------------------------------------------------


def test_vtt_has_the_header_and_numbered_cues_with_millisecond_timings() -> None:
    words = spoken(("good", 0.0, 0.25), ("morning.", 0.25, 1.0), ("later", 3725.5, 3726.125))
    vtt = build(words, duration=3730.0).to_vtt()
    assert vtt == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:00:01.000\ngood morning.\n\n"
        "2\n01:02:05.500 --> 01:02:06.125\nlater\n"
    )
    assert all(VTT_TIMING.match(line) for line in vtt.split("\n") if "-->" in line)


def test_vtt_escapes_cue_text_so_it_cannot_fake_timings_or_markup() -> None:
    vtt = build(evenly("a --> b <i>c</i> R&D")).to_vtt()
    body = vtt.split("\n")[4]
    assert body == "a --&gt; b &lt;i&gt;c&lt;/i&gt; R&amp;D"
    assert vtt.count("-->") == 1


def test_line_breaks_and_control_characters_in_words_cannot_break_a_cue() -> None:
    words = spoken(("two\n\nlines", 0.0, 0.5), ("tab\there\x00\u202e", 0.5, 1.0))
    result = build(words)
    assert texts(result) == ["two lines tab here"]
    assert result.to_vtt().count("\n\n") == 1  # only the blank line after the header


def test_a_zero_length_cue_still_ends_after_it_starts() -> None:
    result = build(spoken(("blip", 2.0, 2.0)))
    assert "00:00:02.000 --> 00:00:02.001" in result.to_vtt()


# --- writing ------------------------------------------------------------------------------------------------


def test_both_files_are_written_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    words = evenly("my card is 4929 3817")
    result = build(words, [cover(words[3:], "CREDIT_CARD")])
    write_transcript(result, tmp_path / "call.json", tmp_path / "call.vtt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.json", "call.vtt"]
    assert json.loads((tmp_path / "call.json").read_text("utf-8")) == result.to_dict()
    assert (tmp_path / "call.vtt").read_text("utf-8") == result.to_vtt()


def test_writing_again_replaces_the_files(tmp_path: Path) -> None:
    write_transcript(build(evenly("first")), tmp_path / "c.json", tmp_path / "c.vtt")
    write_transcript(build(evenly("second")), tmp_path / "c.json", tmp_path / "c.vtt")
    assert "second" in (tmp_path / "c.vtt").read_text("utf-8")
    assert "first" not in (tmp_path / "c.json").read_text("utf-8")


def test_a_directory_where_the_file_should_go_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "call.json").mkdir()
    with pytest.raises(StoreError) as caught:
        write_transcript(build(evenly("hello Zebulon")), tmp_path / "call.json", tmp_path / "call.vtt")
    assert isinstance(caught.value, TranscriptWriteError)
    message = str(caught.value)
    assert str(tmp_path / "call.json") in message
    assert "\n" not in message
    assert "Zebulon" not in message
    # Refused before anything was replaced: no VTT without its JSON, and no temporary files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.json"]


def test_a_missing_directory_is_an_error_naming_the_file(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "call.json"
    with pytest.raises(TranscriptWriteError, match="cannot be created"):
        write_transcript(build(evenly("hello")), target, tmp_path / "call.vtt")
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_up_leaves_the_old_files_whole_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    json_path, vtt_path = tmp_path / "call.json", tmp_path / "call.vtt"
    write_transcript(build(evenly("old words")), json_path, vtt_path)
    before = (json_path.read_bytes(), vtt_path.read_bytes())

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(TranscriptWriteError, match="no space left on device") as caught:
        write_transcript(build(evenly("new words")), json_path, vtt_path)
    assert str(vtt_path) in str(caught.value)
    assert (json_path.read_bytes(), vtt_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.json", "call.vtt"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: object, target: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(TranscriptWriteError, match="permission denied"):
        write_transcript(build(evenly("hello")), tmp_path / "c.json", tmp_path / "c.vtt")
    assert list(tmp_path.iterdir()) == []


def test_the_same_path_for_both_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="different paths"):
        write_transcript(build(evenly("hello")), tmp_path / "c", tmp_path / "c")


def test_an_empty_call_still_writes_valid_files(tmp_path: Path) -> None:
    result = build([], duration=4.0)
    write_transcript(result, tmp_path / "c.json", tmp_path / "c.vtt")
    document = json.loads((tmp_path / "c.json").read_text("utf-8"))
    assert schema_errors(document) == []
    assert (document["segments"], document["redactions"], document["duration"]) == ([], [], 4.0)
    assert (tmp_path / "c.vtt").read_text("utf-8") == "WEBVTT\n"


# --- no raw value leaks -------------------------------------------------------------------------------------


# Made-up calls, one word per token; "word|ENTITY" marks a word under a redaction. Nothing outside the
# redacted words repeats any raw value, so any raw value found in the output came from a redacted word.
MADE_UP_CALLS = [
    "Hi, my name is Zoë|PERSON Quixley-Fairbanks.|PERSON Card is 4929|CREDIT_CARD 3817|CREDIT_CARD "
    "5526|CREDIT_CARD 0043,|CREDIT_CARD expiry oh|CARD_EXPIRY nine|CARD_EXPIRY twenty|CARD_EXPIRY "
    "eight.|CARD_EXPIRY",
    "Write to zanzibar|EMAIL_ADDRESS dot|EMAIL_ADDRESS quill|EMAIL_ADDRESS at|EMAIL_ADDRESS "
    "examplemail|EMAIL_ADDRESS dot|EMAIL_ADDRESS org|EMAIL_ADDRESS or "
    "zanzibar.quill@examplemail.org.|EMAIL_ADDRESS Thanks",
    "Call me on five|PHONE_NUMBER five|PHONE_NUMBER five,|PHONE_NUMBER seven|PHONE_NUMBER "
    "three|PHONE_NUMBER six,|PHONE_NUMBER 4,929,381,755,260,043|CREDIT_CARD and social "
    "078-05-1120.|US_SSN Bye",
]
# What must not appear in any form: the raw words, their digits, and the values they spell together.
RAW_VALUES = [
    "Zoë", "Quixley", "Fairbanks", "4929", "3817", "5526", "0043", "4929381755260043", "nine", "twenty",
    "eight", "zanzibar", "quill", "examplemail", "zanzibar.quill@examplemail.org", "five", "seven", "three",
    "six", "4,929", "078-05-1120", "1120",
]  # fmt: skip


def leaks(data: bytes, raw_values: Sequence[str]) -> list[str]:
    """The raw values found in ``data`` as UTF-8, as JSON \\u escapes, or as VTT character references."""
    found = []
    lowered = data.decode("utf-8").lower()
    for value in raw_values:
        forms = {value.lower(), json.dumps(value.lower())[1:-1], value.lower().replace("&", "&amp;")}
        if any(form in lowered for form in forms):
            found.append(value)
    return found


def made_up_transcript(call: str, rng: random.Random) -> Transcript:
    words: list[Word] = []
    redactions: list[Redaction] = []
    clock = 0.0
    for token in call.split():
        text, _, entity = token.partition("|")
        duration = rng.uniform(0.2, 0.7)
        word = Word(clock, clock + duration, text, final=True)
        words.append(word)
        if entity:
            # Pulled in from the word's edges: covering any part of a word must redact all of it.
            inset = rng.uniform(0.0, duration * 0.45)
            redactions.append(Redaction(word.start + inset, word.end - inset, entity, "asr", 0.8))
        clock += duration + rng.choice([0.0, 0.0, 0.3, 1.0])
    return build(words, redactions, duration=clock + 1.0)


def all_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in [*all_strings(k), *all_strings(v)]]
    if isinstance(value, list | tuple):
        return [s for item in value for s in all_strings(item)]
    return []


def dataclass_values(value: object) -> list[object]:
    """Everything reachable from a dataclass through its fields, mappings and tuples."""
    found: list[object] = [value]
    if is_dataclass(value) and not isinstance(value, type):
        for item in fields(value):
            found += dataclass_values(getattr(value, item.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            found += dataclass_values(item)
    elif isinstance(value, tuple | list):
        for item in value:
            found += dataclass_values(item)
    return found


@pytest.mark.parametrize("call", MADE_UP_CALLS)
def test_no_raw_value_reaches_the_written_files_in_any_form(call: str, tmp_path: Path) -> None:
    for seed in range(20):
        result = made_up_transcript(call, random.Random(seed))
        write_transcript(result, tmp_path / "c.json", tmp_path / "c.vtt")
        json_bytes, vtt_bytes = (tmp_path / "c.json").read_bytes(), (tmp_path / "c.vtt").read_bytes()
        assert leaks(json_bytes, RAW_VALUES) == []
        assert leaks(vtt_bytes, RAW_VALUES) == []
        segment_text = " ".join(texts(result))
        assert not re.search(r"\d", segment_text), "every number in these calls was redacted"
        # The file with JSON escapes forced on must be just as clean.
        assert leaks(json.dumps(result.to_dict(), ensure_ascii=True).encode(), RAW_VALUES) == []
        assert schema_errors(json.loads(json_bytes)) == []


def test_the_transcript_object_holds_no_raw_words() -> None:
    result = made_up_transcript(MADE_UP_CALLS[0], random.Random(1))
    reachable = dataclass_values(result)
    assert not any(isinstance(v, Word) for v in reachable)
    assert leaks(" ".join(s for v in reachable for s in all_strings(v)).encode(), RAW_VALUES) == []


def test_random_calls_never_leak_a_covered_word() -> None:
    rng = random.Random(7)
    filler = ["please", "hold", "while", "I", "check", "that", "for", "you", "now", "okay", "right", "sure"]
    for _ in range(200):
        words: list[Word] = []
        redactions: list[Redaction] = []
        secrets: list[str] = []
        clock = 0.0
        for _ in range(rng.randint(0, 40)):
            duration = rng.choice([0.0, rng.uniform(0.05, 0.8)])
            if rng.random() < 0.3:
                # A made-up secret: letters and a digit group no filler word or time can contain.
                digits = str(rng.randint(10000, 99999))
                secret = "".join(rng.choice("qxzjkv") for _ in range(6)) + digits
                secrets += [secret, digits]
                word = Word(clock, clock + duration, secret, final=True)
                inset = rng.uniform(0.0, duration / 2)
                source = rng.choice(["asr", "cue", "unverified"])
                redactions.append(Redaction(word.start + inset, word.end - inset, "PERSON", source, 0.5))
            else:
                word = Word(clock, clock + duration, rng.choice(filler), final=True)
            words.append(word)
            clock += duration + rng.choice([0.0, 0.1, 0.9, 12.0])
        rng.shuffle(words)
        result = build(words, redactions, duration=clock)
        output = (result.to_json() + result.to_vtt()).encode()
        assert leaks(output, secrets) == []
        assert schema_errors(json.loads(result.to_json())) == []


# --- reprs --------------------------------------------------------------------------------------------------


def test_reprs_show_no_text() -> None:
    words = evenly("hello Zebulon goodbye")
    builder = TranscriptBuilder("call-7", models=MODELS, policy=POLICY)
    builder.add_words(words)
    result = builder.build(2.0)
    shown = " ".join([repr(builder), repr(result), repr(result.segments[0]), str(result.segments)])
    for word in ("hello", "Zebulon", "goodbye"):
        assert word not in shown
    assert "call-7" in repr(result)


# --- schema -------------------------------------------------------------------------------------------------


def full_example() -> Transcript:
    words = evenly("my name is Zebulon and my card is 4929 3817. ref 123456 ok")
    return build(
        words,
        [
            cover(words[3:4], "PERSON"),
            cover(words[8:10], "CREDIT_CARD", source="cue"),
            Redaction(6.0, 7.0, "PIN", "dtmf", 1.0, digits=4),
            Redaction(8.0, 9.0, "UNVERIFIED", "unverified", 0.0),
        ],
        stats={
            "masked_seconds": {"pii": 1.2, "dtmf": 1.0, "unverified": 1.0},
            "late_spans": 1,
            "late_seconds": 0.4,
        },
    )


def test_a_full_transcript_matches_the_published_schema() -> None:
    document = json.loads(full_example().to_json())
    assert schema_errors(document) == []
    assert {r["source"] for r in document["redactions"]} == {"asr", "cue", "dtmf", "unverified"}


def test_the_documented_example_is_what_the_builder_writes_and_matches_the_schema() -> None:
    doc = (SCHEMA_PATH.parent / "transcript-schema.md").read_text("utf-8")
    example = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    assert schema_errors(example) == []
    words = evenly(
        "Thanks for calling. Can I have your name? It's Zebulon Quill. And the card number? "
        "4929 3817 5526 0043. Ref 123456 okay."
    )
    builder = TranscriptBuilder(
        "c-2030-0001",
        models={"asr": "whisper-tiny-en int8", "pii": "spoken-pii 1, en_core_web_sm 3.8.0"},
        policy={"version": "2030.1", "delay_s": 2.5, "mask": "beep"},
    )
    builder.add_words(words)
    builder.add_redactions(
        [
            Redaction(words[9].start, words[10].end, "PERSON", "asr", 0.85),
            Redaction(words[15].start + 0.1, words[18].end, "CREDIT_CARD", "cue", 0.95),
            Redaction(9.0, 10.5, "PIN", "dtmf", 1.0, digits=4),
            Redaction(11.0, 12.2, "UNVERIFIED", "unverified", 0.0),
        ]
    )
    stats = {
        "masked_seconds": {"pii": 2.5, "dtmf": 1.5, "unverified": 1.2},
        "late_spans": 0,
        "late_seconds": 0.0,
    }
    built = builder.build(12.5, stats, created_at=datetime(2030, 1, 1, 9, 30, tzinfo=UTC))
    assert json.loads(built.to_json()) == example


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("redactions", 2, "digits"), None),  # dtmf without its count
        (("redactions", 0, "digits"), 3),  # a count on a spoken entity
        (("redactions", 0, "source"), "guess"),
        (("redactions", 0, "entity"), "Zebulon"),
        (("segments", 0, "text"), "two\nlines"),
        (("stats", "note"), "text"),
        (("extra",), 1),
    ],
)
def test_the_schema_check_catches_broken_documents(path: tuple[str | int, ...], value: object) -> None:
    # Proves the small validator below really reads the schema, so the test above can fail.
    document = json.loads(full_example().to_json())
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    assert schema_errors(document) != []


# A validator for the subset of JSON Schema that docs/transcript.schema.json uses; jsonschema is not a
# dependency. An unknown keyword fails loudly, so the schema cannot outgrow what is checked here.
_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "$comment"}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(document: object) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    return _check(document, schema, schema, "$")


def _check(value: object, schema: Mapping[str, object], root: Mapping[str, object], where: str) -> list[str]:
    errors: list[str] = []
    for keyword, rule in schema.items():
        if keyword in _ANNOTATIONS or keyword in {"then", "else"}:
            continue
        if keyword == "$ref":
            assert isinstance(rule, str)
            assert rule.startswith("#/$defs/"), rule
            defs = root["$defs"]
            assert isinstance(defs, dict)
            errors += _check(value, defs[rule.removeprefix("#/$defs/")], root, where)
        elif keyword == "type":
            allowed = _TYPES[str(rule)]
            if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
                errors.append(f"{where}: not {rule}")
        elif keyword == "const":
            if value != rule or type(value) is not type(rule):
                errors.append(f"{where}: not {rule!r}")
        elif keyword == "enum":
            assert isinstance(rule, list)
            if value not in rule:
                errors.append(f"{where}: not one of {rule}")
        elif keyword in {"minimum", "maximum"}:
            assert isinstance(rule, int | float)
            if isinstance(value, int | float) and (value < rule if keyword == "minimum" else value > rule):
                errors.append(f"{where}: {keyword} {rule}")
        elif keyword in {"minLength", "maxLength"}:
            assert isinstance(rule, int)
            if isinstance(value, str) and (
                len(value) < rule if keyword == "minLength" else len(value) > rule
            ):
                errors.append(f"{where}: {keyword} {rule}")
        elif keyword == "pattern":
            if isinstance(value, str) and not re.search(str(rule), value):
                errors.append(f"{where}: does not match {rule}")
        elif keyword == "required":
            assert isinstance(rule, list)
            if isinstance(value, dict):
                errors += [f"{where}: missing {key}" for key in rule if key not in value]
        elif keyword == "properties":
            assert isinstance(rule, dict)
            if isinstance(value, dict):
                for key, sub in rule.items():
                    if key in value:
                        errors += _check(value[key], sub, root, f"{where}.{key}")
        elif keyword == "additionalProperties":
            if isinstance(value, dict):
                known = schema.get("properties", {})
                assert isinstance(known, dict)
                for key in value.keys() - known.keys():
                    if rule is False:
                        errors.append(f"{where}: unexpected {key}")
                    elif isinstance(rule, dict):
                        errors += _check(value[key], rule, root, f"{where}.{key}")
        elif keyword == "items":
            assert isinstance(rule, dict)
            if isinstance(value, list):
                for index, item in enumerate(value):
                    errors += _check(item, rule, root, f"{where}[{index}]")
        elif keyword == "anyOf":
            assert isinstance(rule, list)
            if all(_check(value, option, root, where) for option in rule):
                errors.append(f"{where}: matches none of anyOf")
        elif keyword == "not":
            assert isinstance(rule, dict)
            if not _check(value, rule, root, where):
                errors.append(f"{where}: matches what is forbidden")
        elif keyword == "if":
            assert isinstance(rule, dict)
            branch = "then" if not _check(value, rule, root, where) else "else"
            chosen = schema.get(branch)
            if isinstance(chosen, dict):
                errors += _check(value, chosen, root, where)
        else:
            raise AssertionError(f"the test's schema check does not know {keyword!r}")
    return errors


@pytest.mark.parametrize(
    ("said", "expected", "replaced"),
    [
        ("my number is 4 1 1 1 thanks", "my number is [NUMBER] thanks", 4),
        ("it is four one one one.", "it is [NUMBER].", 4),
        ("call 55 51 23 now", "call [NUMBER] now", 3),
        ("I have two kids and 3 dogs", "I have two kids and 3 dogs", 0),
        ("room 4 at nine thirty", "room 4 at nine thirty", 0),
    ],
)
def test_a_number_spread_over_words_is_replaced_when_nothing_redacted_it(
    said: str, expected: str, replaced: int
) -> None:
    result = build(evenly(said))
    assert " ".join(s.text for s in result.segments) == expected
    assert result.numbers_replaced == replaced
