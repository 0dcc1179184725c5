"""Batching many calls' windows through one model call: same words as alone, fail closed, first come first
served. On the real model (Whisper tiny.en, int8, one thread) except where a fake shows the scheduling."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bleepline.audio.files import read_audio_chunks
from bleepline.audio.resample import resample
from bleepline.call import CallSession
from bleepline.listener import CallListener
from bleepline.pii.detector import SpokenPiiDetector
from bleepline.pii.stream import SpanTracker
from bleepline.redact.policy import MaskMode, RedactionPolicy
from bleepline.speech.asr import RecognizerOptions, StreamingRecognizer, comparable
from bleepline.speech.batch import BatchError, WindowBatcher, WindowJob, batch_by_default, generated_cap
from bleepline.speech.models import load_whisper, resolve_model
from bleepline.timeline import AudioChunk, Word

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
CALLS = ("phone_awb_8k.wav", "card_kal_8k.wav", "account_pin_rms_8k.wav", "ssn_dob_rms_16k.wav")
RATE = 16_000


@pytest.fixture(scope="module")
def whisper() -> Any:
    return load_whisper(resolve_model())


@pytest.fixture(scope="module")
def calls() -> dict[str, np.ndarray]:
    """Each call's audio at 16 kHz, int16."""
    audio: dict[str, np.ndarray] = {}
    for name in CALLS:
        chunks = list(read_audio_chunks(FIXTURES / name))
        samples = np.concatenate([c.samples for c in chunks])
        rate = chunks[0].sample_rate
        audio[name] = samples if rate == RATE else resample(samples, rate, RATE)
    return audio


def chunks_of(samples: np.ndarray) -> list[AudioChunk]:
    return [AudioChunk(samples[i : i + 320], RATE, i) for i in range(0, len(samples), 320)]


def hypothesis(recognizer: StreamingRecognizer, samples: np.ndarray) -> tuple[Word, ...]:
    """What a recognizer stepping once per ``len(samples)`` hears at its first step: the whole window."""
    for chunk in chunks_of(samples):
        recognizer.push(chunk)
    (update,) = recognizer.updates()
    return update.words


def in_threads(work: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each callable on its own thread at once (as calls' listeners do); results in order."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results


#: Word times are sums of floats (window start + alignment offset): equal to the frame, not to the bit.
_TIME_EPSILON = 1e-6
#: Log-mel features of the same audio computed in other array shapes differ in the last bits on some
#: BLAS builds; a value on Whisper's scale (about -1..1) this close is the same frame.
_FEATURE_ATOL = 1e-5


def assert_same_words(got: Sequence[Word], expected: Sequence[Word], within_s: float = 0.02) -> None:
    assert [comparable(w.text) for w in got] == [comparable(w.text) for w in expected]
    for a, b in zip(got, expected, strict=True):
        assert abs(a.start - b.start) <= within_s + _TIME_EPSILON, (a, b)
        assert abs(a.end - b.end) <= within_s + _TIME_EPSILON, (a, b)


# -- the model call's rules, checked against the installed CTranslate2 --------------------------------------


def test_generated_cap_is_what_ctranslate2_generates(whisper: Any, calls: dict[str, np.ndarray]) -> None:
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(whisper.hf_tokenizer, False, task="transcribe", language="en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    audio = calls["card_kal_8k.wav"][RATE * 8 : RATE * 18].astype(np.float32) / 32768
    encoded = whisper.encode(whisper.feature_extractor(np.pad(audio, (0, RATE)), padding=0))

    def generated(max_length: int) -> list[int]:
        result = whisper.model.generate(encoded, [prompt], beam_size=1, max_length=max_length)
        return list(result[0].sequences_ids[0])

    longest = generated(200)
    for max_length in range(len(prompt) + 1, 30):
        shorter = generated(max_length)
        assert len(shorter) == min(generated_cap(max_length, len(prompt)), len(longest)), max_length
        assert shorter == longest[: len(shorter)]  # greedy: a shorter limit gives a prefix


def test_padding_depends_on_the_window_alone_and_is_silence(
    whisper: Any, calls: dict[str, np.ndarray]
) -> None:
    batcher = WindowBatcher(whisper, bucket_s=1.0)
    try:
        audio = calls["phone_awb_8k.wav"].astype(np.float32) / 32768
        short, long = audio[: int(2.3 * RATE)], audio[RATE : int(3.9 * RATE)]
        # 2.3 s and 2.9 s, each with at least 1 s of silence: both padded to 4 s, whatever else is decoded.
        assert batcher.features(short, 1.0).shape == batcher.features(long, 1.0).shape == (80, 400)
        # Whole seconds plus 1 s is already on the bucket: exactly the unbatched recognizer's features.
        window = audio[: 3 * RATE]
        alone = whisper.feature_extractor(np.pad(window, (0, RATE)), padding=0)
        assert np.allclose(batcher.features(window, 1.0), alone, rtol=0, atol=_FEATURE_ATOL)
        # The rounding adds silence in the audio domain: the window's own frames are untouched.
        padded = batcher.features(short, 1.0)
        exact = whisper.feature_extractor(np.pad(short, (0, RATE)), padding=0)
        assert np.allclose(padded[:, : exact.shape[1]], exact, rtol=0, atol=_FEATURE_ATOL)
    finally:
        batcher.close()


# -- batched windows hear what each would hear alone ---------------------------------------------------------


@pytest.mark.parametrize("count", [2, 4])
def test_whole_second_windows_batched_equal_the_unbatched_recognizer(
    whisper: Any, calls: dict[str, np.ndarray], count: int
) -> None:
    # 3 s windows from different calls: padded exactly like the unbatched path, so the same words.
    options = RecognizerOptions(step_s=3.0)
    windows = [calls[name][RATE * 4 : RATE * 7] for name in CALLS[:count]]
    alone = [hypothesis(StreamingRecognizer(options=options, whisper=whisper), w) for w in windows]
    batcher = WindowBatcher(whisper, max_batch=count, gather_s=5.0)
    try:
        batched = in_threads(
            [partial(hypothesis, StreamingRecognizer(options=options, batcher=batcher), w) for w in windows]
        )
        assert batcher.stats.largest_batch == count  # one encode, one generate for all of them
        assert batcher.stats.model_calls == 1
    finally:
        batcher.close()
    assert sum(len(words) for words in alone) >= count  # they heard speech: the comparison means something
    for got, expected in zip(batched, alone, strict=True):
        assert_same_words(got, expected)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_windows_of_different_lengths_batched_equal_each_alone(
    whisper: Any, calls: dict[str, np.ndarray], count: int
) -> None:
    # 2.2 to 2.95 s: all in the 4 s bucket, stacked in one batch with their own frame counts and limits.
    lengths = (2.2, 2.95, 2.5, 2.7)[:count]
    jobs = [
        (RecognizerOptions(step_s=seconds), calls[name][RATE * 3 : RATE * 3 + int(seconds * RATE)])
        for name, seconds in zip(CALLS, lengths, strict=False)
    ]
    solo = WindowBatcher(whisper, max_batch=1)
    try:
        alone = [hypothesis(StreamingRecognizer(options=o, batcher=solo), w) for o, w in jobs]
    finally:
        solo.close()
    batcher = WindowBatcher(whisper, max_batch=count, gather_s=5.0)
    try:
        batched = in_threads(
            [partial(hypothesis, StreamingRecognizer(options=o, batcher=batcher), w) for o, w in jobs]
        )
        assert batcher.stats.model_calls == 1
        assert batcher.stats.largest_batch == count
    finally:
        batcher.close()
    assert sum(len(words) for words in alone) >= count
    for got, expected in zip(batched, alone, strict=True):
        assert_same_words(got, expected)


def test_whole_calls_streamed_side_by_side_hear_what_each_hears_alone(
    whisper: Any, calls: dict[str, np.ndarray]
) -> None:
    def stream(recognizer: StreamingRecognizer, samples: np.ndarray) -> list[Word]:
        words: list[Word] = []
        for chunk in chunks_of(samples):
            recognizer.push(chunk)
            words += [w for u in recognizer.updates() for w in u.final]
        recognizer.end()
        return words + [w for u in recognizer.updates() for w in u.final]

    # Three calls of 14 s each: they step together, so their windows meet at the batcher every second.
    audio = [calls[name][: 14 * RATE] for name in CALLS[:3]]
    solo = WindowBatcher(whisper, max_batch=1)
    try:
        alone = [stream(StreamingRecognizer(batcher=solo), samples) for samples in audio]
    finally:
        solo.close()
    batcher = WindowBatcher(whisper, max_batch=len(audio), gather_s=0.5)
    try:
        together = in_threads(
            [partial(stream, StreamingRecognizer(batcher=batcher), samples) for samples in audio]
        )
        assert batcher.stats.largest_batch >= 2  # the calls did share model calls
        assert batcher.stats.model_calls < sum(batcher.stats.sizes)
    finally:
        batcher.close()
    for got, expected in zip(together, alone, strict=True):
        assert len(expected) >= 10
        assert_same_words(got, expected)
    assert "5 5 5 0 1 4 7" in " ".join(comparable(w.text) for w in together[0])


# -- failures: every window of a failed batch fails, and the call fails closed -----------------------------


class Breakable:
    """The real model, except that ``encode`` fails while ``broken`` is set."""

    def __init__(self, whisper: Any) -> None:
        self._whisper = whisper
        self.broken = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._whisper, name)

    def encode(self, features: np.ndarray) -> Any:
        if self.broken.is_set():
            raise RuntimeError("CUDA failed while decoding 4111 1111 1111 1111")
        return self._whisper.encode(features)


def test_a_failed_batch_fails_every_call_in_it_and_the_batcher_goes_on(
    whisper: Any, calls: dict[str, np.ndarray]
) -> None:
    model = Breakable(whisper)
    batcher = WindowBatcher(model, max_batch=3, gather_s=5.0)
    options = RecognizerOptions(step_s=3.0)
    windows = [calls[name][RATE * 4 : RATE * 7] for name in CALLS[:3]]

    def attempt(window: np.ndarray) -> BaseException | None:
        try:
            hypothesis(StreamingRecognizer(options=options, batcher=batcher), window)
        except BatchError as exc:
            return exc
        return None

    try:
        model.broken.set()
        errors = in_threads([partial(attempt, w) for w in windows])
        assert all(isinstance(e, BatchError) for e in errors)
        assert all("4111" not in str(e) for e in errors)  # the cause's message may quote speech
        assert batcher.stats.failed_windows == 3
        model.broken.clear()
        assert in_threads([partial(attempt, w) for w in windows]) == [None, None, None]
    finally:
        batcher.close()


def test_a_call_whose_batch_fails_is_masked_from_there_on(whisper: Any, calls: dict[str, np.ndarray]) -> None:
    model = Breakable(whisper)
    model.broken.set()
    batcher = WindowBatcher(model, max_batch=1)
    policy = RedactionPolicy(delay_s=2.0, unverified_mode=MaskMode.SILENCE)
    released: list[AudioChunk] = []

    class Sink:
        def write(self, chunk: AudioChunk) -> None:
            released.append(chunk)

    listener = CallListener(RATE, StreamingRecognizer(batcher=batcher), SpanTracker(SpokenPiiDetector()))
    session = CallSession("batched-call", RATE, listener=listener, policy=policy, sinks=[Sink()])
    audio = calls["phone_awb_8k.wav"][: RATE * 6]
    try:
        for chunk in chunks_of(audio):
            session.push(chunk)
        report = session.end()
    finally:
        batcher.close()
    assert report.listener_failures == 1
    out = np.concatenate([c.samples for c in released])
    assert len(out) == len(audio)
    assert not np.any(out[RATE:])  # from the first decode step (1 s) on, nothing heard goes out


def test_closing_fails_waiting_windows_and_refuses_new_ones(whisper: Any) -> None:
    batcher = WindowBatcher(whisper)
    batcher.close()
    job = WindowJob(batcher.features(np.zeros(RATE, np.float32), 1.0), (50257, 50362), 10, 100)
    with pytest.raises(BatchError, match="closed"):
        batcher.decode(job)


# -- scheduling: first come, first served, and one model call per padded length ---------------------------


@dataclass
class FakeModel:
    """Records which windows each generate call saw (each window's first feature is its number); the
    first call waits at ``gate`` so that windows pile up behind it."""

    is_multilingual: bool = False
    batches: list[list[int]] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    def generate(self, encoded: np.ndarray, prompts: list[list[int]], **_: Any) -> list[Any]:
        self.entered.set()
        self.gate.wait(timeout=30)
        self.batches.append([round(float(features[0, 0])) for features in encoded])
        return [_Output() for _ in prompts]


class _Output:
    sequences_ids: tuple[list[int], ...] = ([],)  # a stand-in: nothing heard
    no_speech_prob = 0.0


class FakeWhisper:
    def __init__(self, whisper: Any) -> None:
        self.hf_tokenizer = whisper.hf_tokenizer
        self.model = FakeModel()

    def encode(self, features: np.ndarray) -> np.ndarray:
        return features


def numbered(number: int, frames: int = 200) -> WindowJob:
    features = np.zeros((80, frames), dtype=np.float32)
    features[0, 0] = number
    return WindowJob(features, (50257, 50362), 10, frames - 100)


def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        threading.Event().wait(0.005)
    raise AssertionError("timed out")


def _waiting_is(batcher: WindowBatcher, count: int) -> bool:
    return len(batcher._waiting) == count


def piled_up(batcher: WindowBatcher, fake: FakeWhisper, jobs: Sequence[WindowJob]) -> list[threading.Thread]:
    """Window 0 goes into the model and is held there; then ``jobs`` queue behind it, one at a time, in
    order. Returns the threads, for joining after ``fake.model.gate`` opens."""
    threads = [threading.Thread(target=batcher.decode, args=(numbered(0),))]
    threads[0].start()
    eventually(fake.model.entered.is_set)
    for queued, job in enumerate(jobs, 1):
        thread = threading.Thread(target=batcher.decode, args=(job,))
        thread.start()
        threads.append(thread)
        eventually(partial(_waiting_is, batcher, queued))
    return threads


def test_windows_are_served_first_come_first_served(whisper: Any) -> None:
    fake = FakeWhisper(whisper)
    batcher = WindowBatcher(fake, max_batch=2, gather_s=0.0)
    try:
        threads = piled_up(batcher, fake, [numbered(n) for n in range(1, 6)])
        fake.model.gate.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        batcher.close()
    # Each round takes the oldest: no window waits behind one that came after it.
    assert fake.model.batches == [[0], [1, 2], [3, 4], [5]]


def test_a_round_decodes_each_padded_length_once_oldest_first(whisper: Any) -> None:
    fake = FakeWhisper(whisper)
    batcher = WindowBatcher(fake, max_batch=8, gather_s=0.0)
    try:
        # Two lengths interleaved: one model call per length, the oldest window's length first.
        threads = piled_up(batcher, fake, [numbered(n, 300 if n % 2 else 200) for n in range(1, 6)])
        fake.model.gate.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        batcher.close()
    assert fake.model.batches == [[0], [1, 3, 5], [2, 4]]
    assert batcher.stats.rounds == 2
    assert batcher.stats.model_calls == 3


# -- who batches: a relay on a GPU by default, the CPU path only when asked -------------------------------


def test_batching_is_on_by_default_on_a_gpu_only() -> None:
    import ctranslate2

    assert batch_by_default("cuda") is True
    assert batch_by_default("cpu") is False
    assert batch_by_default("auto") is (ctranslate2.get_cuda_device_count() > 0)


@pytest.mark.parametrize(("batch", "shared"), [(None, False), (False, False), (True, True)])
def test_a_relay_shares_one_batcher_across_its_calls_when_batching(batch: bool | None, shared: bool) -> None:
    from bleepline.commands.redact import Redactor

    redactor = Redactor([], RedactionPolicy(), resolve_model(), batch=batch)  # tiny.en on the CPU
    try:
        recognizers = [redactor.listener(8000).recognizer for _ in range(3)]
        batchers = {id(r._batcher) for r in recognizers}
        if shared:
            assert redactor.batcher is not None
            assert batchers == {id(redactor.batcher)}
        else:
            assert redactor.batcher is None
            assert all(r._batcher is None for r in recognizers)
    finally:
        if redactor.batcher is not None:
            redactor.batcher.close()
