"""The streaming recognizer: words with times from a live stream of chunks, tentative first, then final.

Every step (1 s of new audio by default) it re-decodes a short window: the encoder sees only the window's
features plus a second of silence instead of Whisper's fixed 30 s, words already final inside the window
are forced as a decoder prefix instead of being decoded again, and the new words are timed by
cross-attention alignment. A word becomes final when two consecutive hypotheses agree on it
(LocalAgreement-2); the window is then trimmed to a second of context before the last final word.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bleepline.audio.resample import StreamResampler
from bleepline.speech.batch import WindowBatcher, WindowJob
from bleepline.speech.models import ModelSpec, load_whisper, resolve_model
from bleepline.timeline import AudioChunk, Word

ASR_RATE = 16_000
_FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
_NUMBER_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_PUNCTUATION = re.compile(r"[^\w@']+")


@dataclass(frozen=True)
class RecognizerOptions:
    """How the streaming recognizer trades cost, latency and accuracy (defaults measured on CPU)."""

    step_s: float = 1.0  # decode after this much new audio
    context_s: float = 1.0  # audio kept before the last final word (trimming exactly there hurts WER)
    max_window_s: float = 12.0  # past this, words seen once are made final so the window stays short
    encoder_padding_s: float = 1.0  # silence after the window: the encoder needs room past the last word
    max_tokens_per_s: float = 4.0  # decoder length cap per second of new audio: stops repetition loops
    token_margin: int = 4
    edge_margin_s: float = 0.1  # words starting this close to the window end are unreliable: wait
    min_word_s: float = 0.02  # shorter "words" are loop debris piled at the window edge
    silence_dbfs: float = -50.0  # new audio quieter than this is not decoded (Whisper invents words)
    no_speech_threshold: float = 0.6  # and a hypothesis Whisper itself flags as no speech is dropped
    beam_size: int = 1

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.context_s < 0 or self.max_window_s <= self.step_s + self.context_s:
            raise ValueError("need step_s > 0, context_s >= 0 and max_window_s > step_s + context_s")
        if self.beam_size < 1:
            raise ValueError("beam_size must be >= 1")


@dataclass(frozen=True)
class TranscriptUpdate:
    """What one recognizer step produced.

    ``final`` words are new and will never change; ``tentative`` replaces the previous update's tentative
    words. Audio before ``final_until`` (seconds) is transcribed for good: between final words there is no
    speech the recognizer will report later. ``unverified`` lists stretches the recognizer gave up on
    (window overflow): the redactor must mask them.
    """

    final: tuple[Word, ...]
    tentative: tuple[Word, ...]
    final_until: float
    unverified: tuple[tuple[float, float], ...] = ()
    cpu_seconds: float = 0.0
    window_seconds: float = 0.0

    @property
    def words(self) -> tuple[Word, ...]:
        return self.final + self.tentative


@dataclass
class RecognizerStats:
    steps: int = 0
    decoded_steps: int = 0
    silent_steps: int = 0
    forced_commits: int = 0
    cpu_seconds: float = 0.0
    audio_seconds: float = 0.0
    step_cpu: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


@dataclass(frozen=True)
class _Hypothesis:
    words: tuple[Word, ...]  # words not final yet, on the call timeline
    window_end: float


class StreamingRecognizer:
    """Streams chunks of one call through Whisper and yields ``TranscriptUpdate``s.

    Life cycle: ``push(chunk)`` as audio arrives (decodes when a step's worth is buffered), ``flush()`` at
    a pause to decode now and make everything final, ``end()`` when the call ends. ``updates()`` drains
    what the steps produced. Not thread-safe: one call, one recognizer, one thread at a time.

    With a ``batcher`` (shared by many calls' recognizers), each step's window is decoded in a batch with
    other calls' windows instead of alone: same model, same limits, padding rounded up by the batcher.
    """

    def __init__(
        self,
        model: ModelSpec | None = None,
        options: RecognizerOptions | None = None,
        *,
        whisper: Any = None,
        batcher: WindowBatcher | None = None,
    ) -> None:
        self.options = options or RecognizerOptions()
        if whisper is None and batcher is not None:
            whisper = batcher.whisper
        self._whisper = whisper if whisper is not None else load_whisper(model or resolve_model())
        self._batcher = batcher
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(
            self._whisper.hf_tokenizer,
            self._whisper.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        self._prompt_head = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._resampler: StreamResampler | None = None
        self._audio = np.zeros(0, dtype=np.float32)  # the window, at 16 kHz
        self._window_start = 0  # timeline index (16 kHz) of the window's first sample
        self._next_sample: int | None = None
        self._new_samples = 0  # pushed since the last step
        self._last_final: Word | None = None  # re-heard at the start of the next window: skipped
        self._final_until = 0.0
        self._previous: _Hypothesis | None = None
        self._updates: deque[TranscriptUpdate] = deque()
        self._ended = False
        self.stats = RecognizerStats()

    # -- life cycle ---------------------------------------------------------------------------------

    def push(self, chunk: AudioChunk) -> None:
        """Add audio on the call timeline; decodes when ``step_s`` of new audio has accumulated."""
        if self._ended:
            raise RuntimeError("push() after end()")
        samples = self._to_asr_rate(chunk)
        if samples is None:
            return
        start, pcm = samples
        if self._next_sample is not None and start < self._next_sample:
            raise ValueError("chunks must not go back on the timeline")
        if self._next_sample is not None and start > self._next_sample:  # lost audio is silence
            self._append(np.zeros(start - self._next_sample, dtype=np.float32), self._next_sample)
        self._append(pcm.astype(np.float32) / 32768.0, start)
        while self._new_samples >= self.options.step_s * ASR_RATE:
            self._step(final=False)

    def flush(self) -> None:
        """Decode what is buffered now and make every word final (the speaker paused)."""
        if self._new_samples or self._previous is not None:
            self._step(final=True)

    def end(self) -> None:
        """The call is over: flush and accept no more audio."""
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail is not None and len(tail):
                # A call whose audio was all shorter than the filter's delay (a few packets of a few
                # bytes) has nothing but this tail: it starts the window, where the tail says it goes.
                self._append(tail.samples.astype(np.float32) / 32768.0, tail.start)
        self.flush()
        self._ended = True

    def updates(self) -> Iterator[TranscriptUpdate]:
        """Drain the updates produced so far (non-blocking)."""
        while self._updates:
            yield self._updates.popleft()

    @property
    def final_until(self) -> float:
        return self._final_until

    # -- audio in -----------------------------------------------------------------------------------

    def _to_asr_rate(self, chunk: AudioChunk) -> tuple[int, np.ndarray] | None:
        if chunk.sample_rate == ASR_RATE:
            return chunk.start, chunk.samples
        if self._resampler is None:
            self._resampler = StreamResampler(chunk.sample_rate, ASR_RATE)
        out = self._resampler.push(chunk)
        return None if out is None else (out.start, out.samples)

    def _append(self, samples: np.ndarray, start: int) -> None:
        """Add ``samples`` at ``start`` on the 16 kHz timeline: the window's end, or its first sample."""
        if self._next_sample is None:
            self._window_start = self._next_sample = start
        self._audio = np.concatenate([self._audio, samples]) if len(self._audio) else samples
        self._new_samples += len(samples)
        self.stats.audio_seconds += len(samples) / ASR_RATE
        self._next_sample += len(samples)

    # -- one step -----------------------------------------------------------------------------------

    def _step(self, final: bool) -> None:
        began = time.process_time()
        self._new_samples = 0
        self.stats.steps += 1
        window_end = self._window_start / ASR_RATE + len(self._audio) / ASR_RATE
        new_final: list[Word] = []
        unverified: list[tuple[float, float]] = []
        if self._is_silent():
            self.stats.silent_steps += 1
            hypothesis = _Hypothesis((), window_end)
        else:
            self.stats.decoded_steps += 1
            hypothesis = self._decode(window_end)

        agreed = len(hypothesis.words) if final else _agreement(self._previous, hypothesis)
        new_final = [_finalise(w) for w in hypothesis.words[:agreed]]
        tentative = list(hypothesis.words[agreed:])
        if new_final:
            self._last_final = new_final[-1]
        self._advance_final_until(hypothesis, new_final, tentative, final)
        self._previous = None if final else _Hypothesis(tuple(tentative), window_end)

        overflow = len(self._audio) / ASR_RATE > self.options.max_window_s
        if overflow:
            forced, lost = self._force_commit(tentative, window_end)
            new_final.extend(forced)
            unverified.extend(lost)
            tentative = tentative[len(forced) :]
        self._trim(final)

        cost = time.process_time() - began
        self.stats.cpu_seconds += cost
        self.stats.step_cpu.append(cost)
        self._updates.append(
            TranscriptUpdate(
                final=tuple(new_final),
                tentative=tuple(tentative),
                final_until=self._final_until,
                unverified=tuple(unverified),
                cpu_seconds=cost,
                window_seconds=len(self._audio) / ASR_RATE,
            )
        )

    def _is_silent(self) -> bool:
        recent = self._audio[-int(self.options.step_s * ASR_RATE) :]
        if not len(recent):
            return True
        rms = float(np.sqrt(np.mean(np.square(recent, dtype=np.float64))))
        silent_now = rms <= 10 ** (self.options.silence_dbfs / 20)
        # Whisper still needs to hear the end of words spoken before a pause: only skip when nothing
        # is pending from the previous step.
        return silent_now and (self._previous is None or not self._previous.words)

    def _decode(self, window_end: float) -> _Hypothesis:
        if self._batcher is not None:
            return self._decode_batched(self._batcher, window_end)
        whisper, tokenizer, options = self._whisper, self._tokenizer, self.options
        window_s = len(self._audio) / ASR_RATE
        padding = np.zeros(int(options.encoder_padding_s * ASR_RATE), dtype=np.float32)
        features = whisper.feature_extractor(np.concatenate([self._audio, padding]), padding=0)
        encoded = whisper.encode(features)

        window_start = self._window_start / ASR_RATE
        prompt = self._prompt_head
        if window_end <= max(self._final_until, window_start):
            return _Hypothesis((), window_end)
        # The cap covers the whole window: the context before the last final word is decoded again.
        budget = int(options.max_tokens_per_s * window_s) + options.token_margin
        result = whisper.model.generate(
            encoded,
            [prompt],
            beam_size=options.beam_size,
            max_length=min(len(prompt) + budget, 448),
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        if result.no_speech_prob > options.no_speech_threshold:
            return _Hypothesis((), window_end)
        generated = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        if not generated:
            return _Hypothesis((), window_end)
        frames = int(window_s * _FRAMES_PER_SECOND)
        alignment = whisper.find_alignment(tokenizer, [generated], encoded, frames)[0]
        return _Hypothesis(self._new_words(alignment, window_start, window_s), window_end)

    def _decode_batched(self, batcher: WindowBatcher, window_end: float) -> _Hypothesis:
        """``_decode`` through the shared batcher: the same prompt, limits and alignment, one batch."""
        options = self.options
        window_s = len(self._audio) / ASR_RATE
        window_start = self._window_start / ASR_RATE
        if window_end <= max(self._final_until, window_start):
            return _Hypothesis((), window_end)
        budget = int(options.max_tokens_per_s * window_s) + options.token_margin
        job = WindowJob(
            features=batcher.features(self._audio, options.encoder_padding_s),
            prompt=tuple(self._prompt_head),
            max_length=min(len(self._prompt_head) + budget, 448),
            frames=int(window_s * _FRAMES_PER_SECOND),
            beam_size=options.beam_size,
            no_speech_threshold=options.no_speech_threshold,
        )
        alignment = batcher.decode(job).alignment
        if not alignment:
            return _Hypothesis((), window_end)
        return _Hypothesis(self._new_words(alignment, window_start, window_s), window_end)

    def _new_words(
        self, alignment: Sequence[dict[str, Any]], window_start: float, window_s: float
    ) -> tuple[Word, ...]:
        heard: list[Word] = []
        for item in alignment:
            text = str(item["word"]).strip()
            start, end = window_start + float(item["start"]), window_start + float(item["end"])
            if not text:
                continue
            if _is_punctuation(text):
                # Punctuation gets odd times from the alignment: it belongs to the word before it.
                if heard:
                    before = heard[-1]
                    heard[-1] = Word(before.start, before.end, before.text + text, before.probability)
                continue
            if (
                start - window_start >= window_s - self.options.edge_margin_s
                or end - start < self.options.min_word_s
            ):
                break  # piled at the window edge: a repetition loop or a word not yet heard in full
            heard.append(Word(start, end, text, float(item["probability"])))
        return tuple(heard[_heard_again(self._last_final, heard) :])

    def _advance_final_until(
        self, hypothesis: _Hypothesis, new_final: list[Word], tentative: list[Word], final: bool
    ) -> None:
        until = self._final_until
        if new_final:
            until = max(until, new_final[-1].end)
        if final:
            until = max(until, hypothesis.window_end)
        elif not tentative and self._previous is not None and not self._previous.words:
            # Two hypotheses in a row heard nothing new: what both covered holds no speech.
            until = max(until, self._previous.window_end - self.options.edge_margin_s)
        elif tentative and self._previous is not None and self._previous.words:
            # Before the first pending word of both hypotheses there is nothing left to report.
            until = max(until, min(tentative[0].start, self._previous.words[0].start))
        self._final_until = until

    def _force_commit(
        self, pending: Sequence[Word], window_end: float
    ) -> tuple[list[Word], list[tuple[float, float]]]:
        """The window grew too long without agreement: make the older half final as heard once."""
        cut = window_end - self.options.max_window_s / 2
        forced = [_finalise(w) for w in pending if w.end <= cut]
        self.stats.forced_commits += 1
        if forced:
            self._last_final = forced[-1]
        lost: list[tuple[float, float]] = []
        reached = max(self._final_until, forced[-1].end if forced else self._final_until)
        if reached < cut:
            lost.append((reached, cut))  # nothing trustworthy there: the redactor masks it
        self._final_until = max(reached, cut)
        self._previous = None
        return forced, lost

    def _trim(self, final: bool) -> None:
        if final:
            self._last_final = None
            keep_from = self._window_start + len(self._audio)  # a pause: start afresh
        else:
            # Keep a second of audio before the last final word: trimming exactly there costs WER.
            keep_from = max(self._window_start, int((self._final_until - self.options.context_s) * ASR_RATE))
        drop = min(keep_from - self._window_start, len(self._audio))
        if drop > 0:
            self._audio = self._audio[drop:]
            self._window_start += drop


def _heard_again(last: Word | None, hypothesis: Sequence[Word]) -> int:
    """How many leading words of ``hypothesis`` re-hear the context before the last final word.

    Decided by time, never by text alone ("1 1" must stay two words): words centred before the end of
    the last final word, and a first word that repeats it while overlapping it (word edges are loose).
    """
    if last is None:
        return 0
    skipped = 0
    for word in hypothesis:
        overlap = min(word.end, last.end) - max(word.start, last.start)
        same = comparable(word.text) == comparable(last.text) and overlap > 0.5 * (word.end - word.start)
        if (word.start + word.end) / 2 >= last.end and not same:
            break
        skipped += 1
    return skipped


def _is_punctuation(text: str) -> bool:
    return not any(ch.isalnum() for ch in text)


def _finalise(word: Word) -> Word:
    return Word(word.start, word.end, word.text, word.probability, final=True)


def comparable(text: str) -> str:
    """Text as two hypotheses are compared: lower case, no punctuation, digits for number words."""
    token = _PUNCTUATION.sub("", text.lower())
    return _NUMBER_WORDS.get(token, token)


def _agreement(previous: _Hypothesis | None, current: _Hypothesis) -> int:
    """How many leading words of ``current`` the previous hypothesis also had (LocalAgreement-2).

    Words are matched by normalised text and by time (starts within 0.5 s), never by text alone:
    "1 1" must stay two words.
    """
    if previous is None:
        return 0
    agreed = 0
    for before, now in zip(previous.words, current.words, strict=False):
        if comparable(before.text) != comparable(now.text) or abs(before.start - now.start) > 0.5:
            break
        agreed += 1
    return agreed
