"""Redacted transcripts: one call's final words, with every word near personal data replaced by a placeholder.

Raw words live only inside ``TranscriptBuilder``; what it builds, and what reaches disk as JSON and WebVTT,
holds redacted text only. The rules are in docs/transcript-schema.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from bleepline.store.errors import TranscriptWriteError
from bleepline.timeline import PiiSpan, Word

FORMAT = "bleepline-transcript"
FORMAT_VERSION = 1

# How a redaction was found; the placeholder for ``dtmf`` and ``unverified`` is the source, not the entity.
FROM_ASR = "asr"
FROM_CUE = "cue"
FROM_DTMF = "dtmf"
UNVERIFIED = "unverified"
SOURCES = (FROM_ASR, FROM_CUE, FROM_DTMF, UNVERIFIED)

#: The placeholder for a long digit string that no redaction covered (defence in depth).
NUMBER = "NUMBER"
#: A word with this many digits in one run is replaced even when no redaction covers it.
NUMBER_DIGITS = 4
#: A PII redaction that touches no word gets a placeholder of its own only if it is at least this long:
#: shorter ones are the pauses between words that masking kept (a value could have started in them),
#: and "Yes, [PHONE_NUMBER] you can" would tell a reader something was said there. They stay in
#: ``redactions``. Keypad and unverified stretches always show: audio was there.
UNTOUCHED_MIN_S = 0.5
#: A silence longer than this between words starts a new segment.
PAUSE_S = 0.8
#: No segment grows longer than this (unless one word or placeholder alone is longer).
MAX_SEGMENT_S = 10.0

# Entities become placeholders verbatim, so they must be labels: a label cannot smuggle a raw value out.
_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
# Digits joined by the separators Whisper writes inside numbers ("4,111,111", "555-1234") are one run.
_DIGIT_RUN = re.compile(r"\d(?:[\s,.\-/'–—]?\d)*")  # noqa: RUF001 - en and em dash are meant
_STAT_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_SENTENCE_END = (".", "?", "!")
_DIGIT_WORDS = frozenset(
    ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "double", "triple"]
)
# Kept after a placeholder so that "[PERSON]." still reads as the end of a sentence.
_KEPT_PUNCTUATION = (".", ",", "?", "!")
# Control, format (zero-width, bidi overrides), private-use and surrogate characters: they can hide digits
# from the number rule, break a VTT cue, or fail UTF-8 encoding.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})
_MAX_LABEL = 200
_MAX_POLICY_BYTES = 4096


@dataclass(frozen=True)
class Redaction:
    """A stretch of the call (seconds) masked for ``entity``, found by ``source``.

    ``source`` is one of ``asr``, ``cue``, ``dtmf`` or ``unverified``. ``digits`` is the number of keys
    pressed in a ``dtmf`` stretch (never the keys themselves) and is required there, absent elsewhere.
    """

    start: float
    end: float
    entity: str
    source: str
    score: float
    digits: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError("redaction times must be finite")
        if self.end < self.start:
            raise ValueError(f"redaction ends ({self.end}) before it starts ({self.start})")
        # Not echoed in the message: a malformed entity might be a raw value passed by mistake.
        if not isinstance(self.entity, str) or not _ENTITY.fullmatch(self.entity):
            raise ValueError("redaction entity must be an upper-case label such as CREDIT_CARD")
        if self.source not in SOURCES:
            raise ValueError(f"redaction source must be one of {', '.join(SOURCES)}")
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"redaction score must be between 0 and 1, got {self.score}")
        if self.source == FROM_DTMF:
            if isinstance(self.digits, bool) or not isinstance(self.digits, int) or self.digits < 0:
                raise ValueError("a dtmf redaction needs digits: the count of keys pressed (>= 0)")
        elif self.digits is not None:
            raise ValueError("only dtmf redactions carry a digit count")

    @classmethod
    def from_span(cls, span: PiiSpan) -> Redaction:
        """The redaction for a detector span (``asr`` or ``cue``; a DTMF redaction needs ``digits``)."""
        return cls(span.start, span.end, span.entity, span.source, span.score)

    @property
    def placeholder(self) -> str:
        """The label that replaces words under this redaction, without brackets."""
        if self.source == FROM_DTMF:
            return "DTMF"
        if self.source == UNVERIFIED:
            return "UNVERIFIED"
        return self.entity

    def to_dict(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "start": _ms(self.start),
            "end": _ms(self.end),
            "entity": self.entity,
            "source": self.source,
            "score": round(self.score, 3),
        }
        if self.digits is not None:
            entry["digits"] = self.digits
        return entry


@dataclass(frozen=True, repr=False)
class Segment:
    """A stretch of redacted text with the times of its first and last word."""

    start: float
    end: float
    text: str

    def __repr__(self) -> str:
        # Redacted text is still call content: keep it out of logs and tracebacks.
        return f"Segment({self.start:.2f}-{self.end:.2f}, {len(self.text)} chars)"


@dataclass(frozen=True, repr=False)
class Transcript:
    """One call's redacted transcript: built by ``TranscriptBuilder``, holding no raw words.

    ``numbers_replaced`` counts words replaced by ``[NUMBER]``: long digit strings that no redaction
    covered, so their audio was not masked and is worth a reviewer's look.
    """

    call_id: str
    created_at: str
    duration: float
    models: Mapping[str, str]
    policy: Mapping[str, object]
    segments: tuple[Segment, ...]
    redactions: tuple[Redaction, ...]
    stats: Mapping[str, object]
    numbers_replaced: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "call_id": self.call_id,
            "created_at": self.created_at,
            "duration": _ms(self.duration),
            "models": dict(self.models),
            "policy": _plain(self.policy),
            "segments": [{"start": _ms(s.start), "end": _ms(s.end), "text": s.text} for s in self.segments],
            "redactions": [r.to_dict() for r in self.redactions],
            "numbers_replaced": self.numbers_replaced,
            "stats": _plain(self.stats),
        }

    def to_json(self) -> str:
        """The transcript as UTF-8-ready JSON text (times in seconds, to the millisecond)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, allow_nan=False) + "\n"

    def to_vtt(self) -> str:
        """The segments as WebVTT cues, numbered from 1."""
        lines = ["WEBVTT", ""]
        for number, segment in enumerate(self.segments, start=1):
            start_ms = round(segment.start * 1000)
            # A cue must end after it starts; a zero-length placeholder still gets its millisecond.
            end_ms = max(round(segment.end * 1000), start_ms + 1)
            lines += [
                str(number),
                f"{_vtt_time(start_ms)} --> {_vtt_time(end_ms)}",
                _vtt_escape(segment.text),
            ]
            lines.append("")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Transcript(call {self.call_id!r}, {self.duration:.2f} s, {len(self.segments)} segments, "
            f"{len(self.redactions)} redactions)"
        )


class TranscriptBuilder:
    """Collects one call's final words and redactions, and builds its redacted transcript.

    The raw words stay in this object's memory only; ``build`` may be called more than once (a snapshot
    mid-call, then the final one) and always applies every redaction added so far.
    """

    def __init__(
        self,
        call_id: str,
        *,
        models: Mapping[str, str],
        policy: Mapping[str, object],
        pause_s: float = PAUSE_S,
        max_segment_s: float = MAX_SEGMENT_S,
    ) -> None:
        if not isinstance(call_id, str) or not call_id or not _is_label(call_id):
            raise ValueError(f"call id must be 1 to {_MAX_LABEL} printable characters")
        if not (pause_s > 0 and max_segment_s > 0):
            raise ValueError("pause_s and max_segment_s must be positive")
        self.call_id = call_id
        self._models = _check_models(models)
        self._policy = _check_policy(policy)
        self._pause_s = pause_s
        self._max_segment_s = max_segment_s
        self._words: list[Word] = []
        self._redactions: list[Redaction] = []

    def add_words(self, words: Sequence[Word]) -> None:
        """Add final words, in any order. Tentative words are refused: they may still change."""
        for word in words:
            if not word.final:
                raise ValueError(
                    f"a transcript takes final words only (tentative word at {word.start:.2f} s)"
                )
            if not (math.isfinite(word.start) and math.isfinite(word.end)):
                # A word that cannot be placed cannot be checked against redactions either.
                raise ValueError("a transcript word has a non-finite time")
        self._words.extend(words)

    def add_redactions(self, items: Sequence[Redaction]) -> None:
        """Add stretches that were masked; every word that touches one is replaced."""
        for item in items:
            if not isinstance(item, Redaction):
                raise TypeError(f"expected a Redaction, got {type(item).__name__}")
        self._redactions.extend(items)

    def build(
        self,
        duration: float,
        stats: Mapping[str, object] | None = None,
        *,
        created_at: datetime | None = None,
    ) -> Transcript:
        """The redacted transcript of what was added so far; ``stats`` are the caller's numbers."""
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"call duration must be a finite number of seconds >= 0, got {duration}")
        moment = created_at or datetime.now(UTC)
        if moment.tzinfo is None:
            raise ValueError("created_at must carry a time zone")
        tokens, numbers = _tokens(self._words, self._redactions)
        segments = tuple(
            _render(group) for group in _segment(tokens, pause_s=self._pause_s, max_s=self._max_segment_s)
        )
        return Transcript(
            call_id=self.call_id,
            created_at=moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            duration=duration,
            models=self._models,
            policy=self._policy,
            segments=segments,
            redactions=tuple(sorted(self._redactions, key=lambda r: (r.start, r.end, r.source, r.entity))),
            stats=_check_stats(stats or {}),
            numbers_replaced=numbers,
        )

    def __repr__(self) -> str:
        return (
            f"TranscriptBuilder(call {self.call_id!r}, {len(self._words)} words, "
            f"{len(self._redactions)} redactions)"
        )


def write_transcript(
    transcript: Transcript,
    json_path: str | os.PathLike[str],
    vtt_path: str | os.PathLike[str],
) -> None:
    """Write the transcript as JSON and WebVTT, each file whole or not at all.

    Each file goes to a temporary file beside it and is renamed into place. The VTT is renamed first, so
    a JSON file on disk means its VTT was written too. Existing files are replaced.
    """
    json_target, vtt_target = Path(json_path), Path(vtt_path)
    if json_target.absolute() == vtt_target.absolute():
        raise ValueError("the JSON and VTT transcripts need different paths")
    outputs = [(vtt_target, transcript.to_vtt()), (json_target, transcript.to_json())]
    # Refuse before anything is replaced, so the common mistake leaves both old files alone.
    for target, _ in outputs:
        if target.is_dir():
            raise TranscriptWriteError(target, "is a directory; give a file path")
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in outputs:
            staged.append((target, _stage(target, text.encode("utf-8"))))
        for target, temporary in staged:
            try:
                os.replace(temporary, target)
            except OSError as exc:
                raise TranscriptWriteError(target, f"cannot be written: {_reason(exc)}") from None
            _sync_directory(target.parent)
    finally:
        for _, temporary in staged:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Token:
    """One word (or a redaction no word touched) as it will appear: plain text or a placeholder."""

    start: float
    end: float
    text: str  # the kept word, or the punctuation kept after a placeholder
    placeholder: str | None
    sentence_end: bool


def _tokens(words: Sequence[Word], redactions: Sequence[Redaction]) -> tuple[list[_Token], int]:
    """Replace every word that overlaps a redaction; place redactions that touched no word on their own."""
    ordered = sorted(words, key=lambda w: (min(w.start, w.end), max(w.start, w.end)))
    touched: set[int] = set()
    tokens: list[_Token] = []
    numbers = 0
    for word, hits in zip(ordered, _hits(ordered, redactions), strict=True):
        start, end = min(word.start, word.end), max(word.start, word.end)
        text = _clean(word.text)
        sentence_end = text.endswith(_SENTENCE_END)
        kept = text[-1] if text.endswith(_KEPT_PUNCTUATION) else ""
        if hits:
            touched.update(id(r) for r in hits)
            tokens.append(_Token(start, end, kept, _choose(start, end, hits).placeholder, sentence_end))
        elif _long_number(text):
            numbers += 1
            tokens.append(_Token(start, end, kept, NUMBER, sentence_end))
        elif text:
            tokens.append(_Token(start, end, text, None, sentence_end))
    numbers += _replace_spread_numbers(tokens)
    # A DTMF run in silence or a stretch the recognizer never reached still shows where audio was masked.
    tokens += [
        _Token(r.start, r.end, "", r.placeholder, False)
        for r in redactions
        if id(r) not in touched
        and (r.source in (FROM_DTMF, UNVERIFIED) or r.end - r.start >= UNTOUCHED_MIN_S)
    ]
    tokens.sort(key=lambda t: (t.start, t.end))
    return tokens, numbers


def _hits(words: Sequence[Word], redactions: Sequence[Redaction]) -> Iterator[list[Redaction]]:
    """For each word (sorted by start), the redactions it overlaps: a sweep, not words x redactions."""
    pending = sorted(redactions, key=lambda r: r.start)
    active: list[Redaction] = []
    next_index = 0
    reach = -math.inf
    for word in words:
        start, end = min(word.start, word.end), max(word.start, word.end)
        reach = max(reach, end)
        while next_index < len(pending) and pending[next_index].start <= reach:
            active.append(pending[next_index])
            next_index += 1
        # Word starts only grow, so a redaction that ended before this one can touch no later word.
        active = [r for r in active if r.end >= start]
        yield [r for r in active if _overlaps(start, end, r.start, r.end)]


def _overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    low, high = max(a_start, b_start), min(a_end, b_end)
    if low < high:
        return True
    # Neighbouring words share an edge, so touching is no overlap; but a zero-length word or redaction
    # has no other way to overlap, and Whisper does emit zero-length words.
    return low == high and (a_start == a_end or b_start == b_end)


def _choose(start: float, end: float, hits: Sequence[Redaction]) -> Redaction:
    # A named entity says more than "unverified"; then the redaction covering most of the word names it.
    return max(
        hits,
        key=lambda r: (r.source != UNVERIFIED, min(end, r.end) - max(start, r.start), r.score, r.entity),
    )


def _replace_spread_numbers(tokens: list[_Token]) -> int:
    """Replace runs of kept words that together say 4 or more digits ("4" "1" "1" "1", "four one one one").

    Defence in depth like the single-word rule: the detector decides what is PII, but a long number
    spread over words is a risk in a transcript by itself. Returns how many words were replaced.
    """
    replaced = 0
    run: list[int] = []
    digits = 0
    for index in range(len(tokens) + 1):  # one step past the end closes the last run
        count = _digits_said(tokens[index]) if index < len(tokens) else 0
        if count:
            run.append(index)
            digits += count
            continue
        if digits >= NUMBER_DIGITS:
            for at in run:
                token = tokens[at]
                kept = token.text[-1] if token.text.endswith(_KEPT_PUNCTUATION) else ""
                tokens[at] = _Token(token.start, token.end, kept, NUMBER, token.sentence_end)
            replaced += len(run)
        run, digits = [], 0
    return replaced


def _digits_said(token: _Token) -> int:
    """Digits a kept word says: written digits, or one number word ("four", "oh"); 0 for anything else."""
    if token.placeholder is not None:
        return 0
    bare = token.text.strip(".,?!;:'\"").lower()
    if bare.isdigit():
        return len(bare)
    return 1 if bare in _DIGIT_WORDS else 0


def _long_number(text: str) -> bool:
    return any(sum(c.isdigit() for c in run) >= NUMBER_DIGITS for run in _DIGIT_RUN.findall(text))


def _clean(text: str) -> str:
    # Whitespace (line breaks and tabs too) separates; the other dropped characters vanish, so that a
    # zero-width space cannot split a digit string in two.
    visible = "".join(
        " " if c.isspace() else c
        for c in text
        if c.isspace() or unicodedata.category(c) not in _DROPPED_CATEGORIES
    )
    return " ".join(visible.split())


def _segment(tokens: Sequence[_Token], *, pause_s: float, max_s: float) -> Iterator[list[_Token]]:
    group: list[_Token] = []
    group_end = -math.inf
    for token in tokens:
        if group and (
            token.start - group_end > pause_s
            or group[-1].sentence_end
            or max(group_end, token.end) - group[0].start > max_s
        ):
            yield group
            group, group_end = [], -math.inf
        group.append(token)
        group_end = max(group_end, token.end)
    if group:
        yield group


def _render(group: Sequence[_Token]) -> Segment:
    parts: list[str] = []
    previous: str | None = None
    for token in group:
        if token.placeholder is None:
            parts.append(token.text)
        elif token.placeholder == previous:
            # One placeholder per run: "[CREDIT_CARD]" rather than one per digit group spoken.
            parts[-1] = f"[{token.placeholder}]{token.text}"
        else:
            parts.append(f"[{token.placeholder}]{token.text}")
        previous = token.placeholder
    return Segment(group[0].start, max(t.end for t in group), " ".join(parts))


def _vtt_time(milliseconds: int) -> str:
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _vtt_escape(text: str) -> str:
    # Escaping ">" also breaks up any "-->", which would otherwise read as cue timing.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ms(seconds: float) -> float:
    return round(seconds, 3)


def _is_label(text: str) -> bool:
    return len(text) <= _MAX_LABEL and text.isprintable()


def _check_models(models: Mapping[str, str]) -> Mapping[str, str]:
    checked: dict[str, str] = {}
    for name, model in models.items():
        if not (isinstance(name, str) and isinstance(model, str) and _is_label(name) and _is_label(model)):
            raise ValueError(f"models must map names to model labels of up to {_MAX_LABEL} printable chars")
        checked[name] = model
    return MappingProxyType(checked)


def _check_policy(policy: Mapping[str, object]) -> Mapping[str, object]:
    try:
        encoded = json.dumps(dict(policy), allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError("the policy must be JSON-serialisable with string keys and finite numbers") from None
    if len(encoded) > _MAX_POLICY_BYTES:
        raise ValueError(f"the policy is over {_MAX_POLICY_BYTES} bytes as JSON")
    parsed: dict[str, object] = json.loads(encoded)
    return MappingProxyType(parsed)


def _check_stats(stats: Mapping[str, object]) -> Mapping[str, object]:
    """Numbers only, or one level of named numbers: a stats field is no place for words."""
    checked: dict[str, object] = {}
    for key, value in stats.items():
        if isinstance(value, Mapping):
            checked[_stat_key(key)] = MappingProxyType(
                {_stat_key(k): _stat_number(k, v) for k, v in value.items()}
            )
        else:
            checked[_stat_key(key)] = _stat_number(key, value)
    return MappingProxyType(checked)


def _stat_key(key: object) -> str:
    if not isinstance(key, str) or not _STAT_KEY.fullmatch(key):
        raise ValueError("stats keys must be names like masked_seconds (letters, digits, underscores)")
    return key


def _stat_number(key: object, value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"stats value for {_stat_key(key)} must be a finite number")
    return value


def _plain(mapping: Mapping[str, object]) -> dict[str, object]:
    """Plain dicts for the JSON encoder, which does not take mapping proxies."""
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


def _stage(target: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``target`` and make it durable; return its path."""
    try:
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise TranscriptWriteError(target, f"cannot be created: {_reason(exc)}") from None
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise TranscriptWriteError(target, f"cannot be written: {_reason(exc)}") from None
        raise
    return temporary


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some file systems cannot open or sync a directory, which is fine.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
