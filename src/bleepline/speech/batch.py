"""Many calls' recognizer windows through Whisper together: one encode and one generate per batch.

On a GPU one call's short window leaves the device mostly idle, and each model call costs a launch and a
synchronisation whatever its size; stacking the windows of the calls that are due at the same moment
turns N small calls into one. On CPU it saves little (the int8 encoder is compute-bound: see
bench/bench_batch.py), so batching is opt-in there.

Whisper's encoder has no padding mask: extra silence after a window changes its encoder output, and with
it the words decoded (measured on tiny.en: 0.25 s of extra padding changed the text of about a third of
real streaming windows). So a call's padding must never depend on which other calls share its batch.
Each window is padded, by its own length alone, up to the next multiple of ``bucket_s``; only windows
of the same padded length are stacked. A call then hears exactly what it would hear decoded alone
through the same batcher, whoever else is in the batch.

Requests are served first come, first served: each round takes the oldest ``max_batch`` waiting windows,
so none waits behind windows that arrived after it. A failure fails every window of the model call that
failed, and nothing else; each caller gets the exception and its listener fails closed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BatchError", "BatchStats", "WindowBatcher", "WindowJob", "WindowResult", "batch_by_default"]

_SAMPLE_RATE = 16_000
_HOP = 160  # Whisper's log-mel hop: one feature frame per 10 ms


class BatchError(RuntimeError):
    """The batch a window was decoded in failed (its message never holds what was said)."""


@dataclass(frozen=True)
class WindowJob:
    """One call's window, ready for the model: features padded by the batcher's rule, and its limits."""

    features: np.ndarray  # (n_mels, frames) log-mel of the window and its padding
    prompt: tuple[int, ...]
    max_length: int  # as the unbatched recognizer passes it to ``generate``
    frames: int  # feature frames of the window itself: alignment ignores the padding after it
    beam_size: int = 1
    no_speech_threshold: float = 0.6

    @property
    def key(self) -> tuple[int, int, int]:
        """Windows that can share one encode and one generate: same padded length, prompt length, beam."""
        return self.features.shape[1], len(self.prompt), self.beam_size


@dataclass(frozen=True)
class WindowResult:
    """What the model heard in one window: word alignments (faster-whisper's dicts); empty if nothing."""

    alignment: tuple[dict[str, Any], ...]
    no_speech_prob: float


@dataclass
class BatchStats:
    rounds: int = 0  # times the batcher woke up and took waiting windows
    model_calls: int = 0  # encode + generate pairs (one per padded length in a round)
    windows: int = 0
    failed_windows: int = 0
    largest_batch: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))  # windows per model call


@dataclass
class _Waiting:
    job: WindowJob
    future: Future[WindowResult]


def batch_by_default(device: str) -> bool:
    """Whether a relay on ``device`` batches unless told: on a GPU yes, on CPU no (nothing measured to
    gain, and the CPU path stays as measured). ``auto`` counts as a GPU when CTranslate2 sees one."""
    if device == "cuda":
        return True
    if device == "auto":
        import ctranslate2

        return bool(ctranslate2.get_cuda_device_count() > 0)
    return False


class WindowBatcher:
    """Decodes windows of many calls with one shared faster-whisper model, a batch at a time.

    ``decode`` is called from each call's listening thread and blocks until its window's batch is done.
    One daemon thread runs the model: after the first waiting window it gathers for ``gather_s`` (or
    until ``max_batch`` windows wait), then decodes what it took, grouped by padded length. Windows that
    arrive while a batch runs are taken together by the next round: under load, batches form without
    waiting at all.
    """

    def __init__(
        self,
        whisper: Any,
        *,
        max_batch: int = 16,
        gather_s: float = 0.005,
        bucket_s: float = 1.0,
        language: str = "en",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if gather_s < 0 or bucket_s <= 0:
            raise ValueError("need gather_s >= 0 and bucket_s > 0")
        from faster_whisper.tokenizer import Tokenizer

        self.whisper = whisper
        self.max_batch = max_batch
        self.gather_s = gather_s
        self._bucket = max(round(bucket_s * _SAMPLE_RATE / _HOP) * _HOP, _HOP)
        self._tokenizer = Tokenizer(
            whisper.hf_tokenizer, whisper.model.is_multilingual, task="transcribe", language=language
        )
        self.stats = BatchStats()
        self._waiting: deque[_Waiting] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="bleepline-asr-batch", daemon=True)
        self._thread.start()

    # -- the calls' side ----------------------------------------------------------------------------

    def features(self, audio: np.ndarray, padding_s: float) -> np.ndarray:
        """Log-mel features of ``audio`` (16 kHz float) with at least ``padding_s`` of silence after it,
        up to the next multiple of the bucket: the padding depends on this window alone.

        Run on the caller's thread (feature extraction is NumPy work that calls can do side by side).
        The silence is added as audio, before the log-mel, exactly as the unbatched recognizer does.
        """
        wanted = len(audio) + int(padding_s * _SAMPLE_RATE)
        total = math.ceil(wanted / self._bucket) * self._bucket
        padded = np.concatenate([audio, np.zeros(total - len(audio), dtype=np.float32)])
        features: np.ndarray = self.whisper.feature_extractor(padded, padding=0)
        return features

    def decode(self, job: WindowJob) -> WindowResult:
        """Decode ``job`` in the next batch; blocks until done. Raises ``BatchError`` if its batch failed
        or the batcher is closed."""
        future: Future[WindowResult] = Future()
        with self._wake:
            if self._closed:
                raise BatchError("the recognizer batcher is closed")
            self._waiting.append(_Waiting(job, future))
            self._wake.notify()
        return future.result()

    def close(self) -> None:
        """Stop the batcher; windows still waiting fail (their calls fail closed)."""
        with self._wake:
            self._closed = True
            left = list(self._waiting)
            self._waiting.clear()
            self._wake.notify()
        for waiting in left:
            waiting.future.set_exception(BatchError("the recognizer batcher was closed"))
        self._thread.join(timeout=10)

    # -- the model's side ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            self.stats.rounds += 1
            groups: dict[tuple[int, int, int], list[_Waiting]] = {}
            for waiting in taken:  # dicts keep insertion order: the oldest window's group goes first
                groups.setdefault(waiting.job.key, []).append(waiting)
            for group in groups.values():
                self._decode_group(group)

    def _take(self) -> list[_Waiting] | None:
        """The oldest waiting windows, up to ``max_batch``, once ``gather_s`` has passed since the first
        of them arrived (or the batch is full). None when closed."""
        with self._wake:
            while not self._waiting and not self._closed:
                self._wake.wait()
            if self._closed:
                return None
            deadline = time.monotonic() + self.gather_s
            while len(self._waiting) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            count = min(len(self._waiting), self.max_batch)
            return [self._waiting.popleft() for _ in range(count)]

    def _decode_group(self, group: list[_Waiting]) -> None:
        self.stats.model_calls += 1
        self.stats.windows += len(group)
        self.stats.sizes.append(len(group))
        self.stats.largest_batch = max(self.stats.largest_batch, len(group))
        try:
            results = self._decode_batch([w.job for w in group])
        except Exception as exc:
            self.stats.failed_windows += len(group)
            # The cause's type only: a model error's message might quote tokens.
            error = BatchError(f"recognizer batch of {len(group)} windows failed ({type(exc).__name__})")
            error.__cause__ = exc
            for waiting in group:
                waiting.future.set_exception(error)
            return
        for waiting, result in zip(group, results, strict=True):
            waiting.future.set_result(result)

    def _decode_batch(self, jobs: Sequence[WindowJob]) -> list[WindowResult]:
        whisper, tokenizer = self.whisper, self._tokenizer
        encoded = whisper.encode(np.stack([job.features for job in jobs]))
        outputs = whisper.model.generate(
            encoded,
            [list(job.prompt) for job in jobs],
            beam_size=jobs[0].beam_size,
            max_length=max(job.max_length for job in jobs),
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        heard: list[list[int]] = []
        for job, output in zip(jobs, outputs, strict=True):
            # One max_length serves the batch: each window keeps only what its own would have allowed
            # (greedy decoding makes the shorter run a prefix of the longer one; with beam_size > 1 it is
            # close, not exact).
            tokens = output.sequences_ids[0][: generated_cap(job.max_length, len(job.prompt))]
            generated = [t for t in tokens if t < tokenizer.eot]
            heard.append(generated if output.no_speech_prob <= job.no_speech_threshold else [])
        if not any(heard):
            return [WindowResult((), float(o.no_speech_prob)) for o in outputs]
        # One alignment call for the batch, each window with its own frame count. Windows with nothing
        # to align still need a row (the encoder output is one batch): a lone end-of-text, ignored.
        alignments = whisper.find_alignment(
            tokenizer, [tokens or [tokenizer.eot] for tokens in heard], encoded, [job.frames for job in jobs]
        )
        return [
            WindowResult(tuple(alignment) if tokens else (), float(output.no_speech_prob))
            for tokens, alignment, output in zip(heard, alignments, outputs, strict=True)
        ]


def generated_cap(max_length: int, prompt_length: int) -> int:
    """How many tokens CTranslate2's Whisper ``generate`` (4.x) produces at most for ``max_length``:
    half of it, and never past ``max_length`` counting the prompt (``min(L / 2, L - prompt)`` in its
    whisper.cc). tests/speech/test_batch.py checks this against the installed CTranslate2."""
    return max(min(max_length // 2, max_length - prompt_length), 0)
