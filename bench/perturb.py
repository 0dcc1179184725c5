"""Deterministic perturbations of an evaluation call: padding, noise, level, telephone band, codecs, loss.

Each variant is a pure function of (samples, rate, truth, call name): the same inputs give the same
output bit for bit, seeded from ``crc32("call/variant")``. Where a variant moves time (padding, tempo),
the truth's times move with it exactly, so coverage can still be measured to the sample.

Variants (``VARIANTS``):

- ``plain``: the call as it is.
- ``pad137``, ``pad410``: that many ms of the call's own noise floor (white noise at the level of its
  quietest non-zero frames, never digital zero) put before it; every truth time shifts by the pad.
- ``noise25``: white noise at 25 dB below the speech level (active frames, see ``speech_level_dbfs``).
- ``quiet``: the whole call 12 dB down.
- ``tele``: 300-3400 Hz band-pass (zero-phase, in the frequency domain, so nothing is delayed), a
  call above 8 kHz resampled to 8 kHz as a phone line would, then a G.711 µ-law encode/decode round trip.
  Truth times are unchanged; the truth's sample rate becomes 8000.
- ``pink15``: pink (1/f) noise at 15 dB below the speech level.
- ``babble15``: a crowd of ``BABBLE_TALKERS`` voices (Speech Commands words that are neither digits nor
  names; the project's own fixture speech when ../shared/speech is absent) at 15 dB below the speech level.
- ``loud6clip``: +6 dB, hard-clipped at int16 full scale.
- ``tempo95``, ``tempo105``: 5 % slower / faster by resampling (band-limited, in the frequency domain) and
  playing back at the original rate: like a tape played at another speed, pitch moves with tempo. Every
  truth time is multiplied by the same exact ratio (20/19 and 20/21). Keypad tones move 5 % off their
  frequencies, which no longer makes them DTMF (ITU-T Q.24 rejects beyond 3.5 %): their truth spans are
  marked ``"scored": false`` (kept out of the over-redaction count, not scored as leaks).
- ``opus16``: Opus at 16 kbit/s, 20 ms frames, through PyAV's libopus at 48 kHz (the call is resampled
  up and back down); the encoder's pre-skip is cut so the timeline does not shift, and the length is
  asserted to be the input's.
- ``loss3``: 3 % of the 20 ms packets (aligned to the call's timeline, as RTP packets are) replaced by
  digital silence, as the relay's jitter buffer fills a lost packet.

``speech_reference`` gives, for a variant, the clean call on the variant's timeline (same rate and
length, no noise, no level change): the evaluation decides which frames hold speech from it, so that added
noise does not count as speech and a quieter call does not lose its soft syllables from the count.
"""

from __future__ import annotations

import copy
import functools
import math
import wave
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np
import numpy.typing as npt

from bleepline.audio.g711 import ulaw_decode, ulaw_encode

Signal = npt.NDArray[np.float64]
Pcm = npt.NDArray[np.int16]
Truth = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
SPEECH_COMMANDS = ROOT.parent / "shared" / "speech" / "speech_commands"
FIXTURE_AUDIO = ROOT / "fixtures" / "audio"

VARIANTS: tuple[str, ...] = (
    "plain",
    "pad137",
    "pad410",
    "noise25",
    "quiet",
    "tele",
    "pink15",
    "babble15",
    "loud6clip",
    "tempo95",
    "tempo105",
    "opus16",
    "loss3",
)
#: The external check: exactly these, on ../shared/speech/calls.
FIVE: tuple[str, ...] = ("pad137", "pad410", "noise25", "quiet", "tele")

FRAME_S = 0.02
#: Frames within this many dB of the loudest (99th percentile) frame count towards the speech level.
ACTIVE_BELOW_PEAK_DB = 30.0
#: The noise floor is the level of this quantile of the 20 ms frames that are not digital zero (composed
#: calls hold stretches of exact zero between clips, and a faint, uneven floor elsewhere).
FLOOR_QUANTILE = 0.05
#: A call whose quietest frames are digital zero still gets a floor this low, never zero itself.
MIN_FLOOR_DBFS = -80.0
TELE_BAND_HZ = (300.0, 3400.0)
TELE_EDGE_HZ = 50.0  # raised-cosine transition width at each band edge, against ringing
TELE_RATE = 8000
BABBLE_TALKERS = 6
BABBLE_GAP_S = (0.05, 0.30)
#: Speech Commands words a crowd may say: no digits, no first names (those are what calls redact).
BABBLE_WORDS = (
    "bed",
    "bird",
    "cat",
    "dog",
    "down",
    "go",
    "happy",
    "house",
    "left",
    "no",
    "off",
    "on",
    "right",
    "stop",
    "tree",
    "up",
    "wow",
    "yes",
)
BABBLE_CLIPS_PER_WORD = 8
OPUS_RATE = 48000
OPUS_BIT_RATE = 16000
LOSS_SHARE = 0.03
TEMPO: dict[str, tuple[int, int]] = {"tempo95": (20, 19), "tempo105": (20, 21)}  # length factor up/down


class Perturbed(NamedTuple):
    """A variant of a call: int16 samples, their rate, and the truth on the variant's timeline."""

    samples: Pcm
    rate: int
    truth: Truth


def seed(call: str, variant: str) -> int:
    """The generator seed of one call's variant: stable across runs and machines."""
    return zlib.crc32(f"{call}/{variant}".encode())


# --- levels ------------------------------------------------------------------------------------------


def _float(samples: npt.ArrayLike) -> Signal:
    """int16 (full scale 32768) or float (full scale 1.0) samples as float64 at full scale 1.0."""
    array = np.asarray(samples)
    if array.dtype == np.int16:
        return array.astype(np.float64) / 32768.0
    return array.astype(np.float64)


def _pcm(signal: Signal) -> Pcm:
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype(np.int16)


def _frame_power(signal: Signal, rate: int) -> Signal:
    size = max(1, int(rate * FRAME_S))
    count = len(signal) // size
    if count == 0:
        return np.array([float(np.mean(signal * signal))]) if len(signal) else np.zeros(1)
    frames = signal[: count * size].reshape(count, size)
    power: Signal = np.mean(frames * frames, axis=1)
    return power


def speech_level_dbfs(samples: npt.ArrayLike, rate: int) -> float:
    """Active speech level: RMS over the 20 ms frames within 30 dB of the loudest (99th percentile).

    A plain RMS would depend on how much of the call is pause; this is how loud the talking is.
    """
    power = _frame_power(_float(samples), rate)
    peak = float(np.quantile(power, 0.99))
    if peak <= 0:
        return -math.inf
    active = power[power >= peak * 10 ** (-ACTIVE_BELOW_PEAK_DB / 10)]
    return 10 * math.log10(float(np.mean(active)))


def noise_floor_dbfs(samples: npt.ArrayLike, rate: int) -> float:
    """The call's noise floor: the level of its quietest frames that are not digital zero, never below
    ``MIN_FLOOR_DBFS``."""
    power = _frame_power(_float(samples), rate)
    audible = power[power > 0]
    floor = float(np.quantile(audible, FLOOR_QUANTILE)) if len(audible) else 0.0
    return max(10 * math.log10(floor) if floor > 0 else -math.inf, MIN_FLOOR_DBFS)


def _scaled_to(noise: Signal, dbfs: float) -> Signal:
    rms = float(np.sqrt(np.mean(noise * noise)))
    scaled: Signal = noise * (10 ** (dbfs / 20) / rms) if rms > 0 else noise
    return scaled


# --- truth on a moved timeline -----------------------------------------------------------------------


def map_truth(truth: Truth, move: Callable[[float], float], rate: int, length: int) -> Truth:
    """A copy of ``truth`` with every time passed through ``move`` and the new rate and duration."""
    moved = copy.deepcopy(truth)
    for item in moved.get("pii", []):
        item["start"], item["end"] = move(item["start"]), move(item["end"])
        for digit in item.get("digits", []):
            digit["start"], digit["end"] = move(digit["start"]), move(digit["end"])
    for word in moved.get("words", []):
        word["start"], word["end"] = move(word["start"]), move(word["end"])
    moved["sample_rate"] = rate
    moved["duration"] = length / rate
    return moved


# --- building blocks ---------------------------------------------------------------------------------


def fft_resample(signal: Signal, up: int, down: int) -> Signal:
    """Band-limited resampling by ``up/down`` in the frequency domain: zero phase, so output sample j
    sits exactly at input position j * down / up (no filter delay to compensate).

    The input is padded with zeros to a whole number of ``down`` blocks so the ratio is exact; the
    output is ``len(padded) * up / down`` long.
    """
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down:
        return signal.copy()
    padded = np.concatenate([signal, np.zeros((-len(signal)) % down)])
    n = len(padded)
    m = n * up // down
    spectrum = np.fft.rfft(padded)
    keep = min(len(spectrum), m // 2 + 1)
    out_spectrum = np.zeros(m // 2 + 1, dtype=complex)
    out_spectrum[:keep] = spectrum[:keep]
    # The Nyquist bin of an even-length transform stands for two bins; halve it when it is cut through.
    if keep == m // 2 + 1 and m % 2 == 0 and m < n:
        out_spectrum[-1] *= 0.5
    resampled: Signal = np.fft.irfft(out_spectrum, m) * (m / n)
    return resampled


def band_pass(signal: Signal, rate: int, low: float, high: float, edge: float) -> Signal:
    """Zero-phase band-pass in the frequency domain with raised-cosine edges ``edge`` Hz wide."""
    spectrum = np.fft.rfft(signal)
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    gain = np.ones_like(freqs)
    rise = np.clip((freqs - (low - edge / 2)) / edge, 0.0, 1.0)
    fall = np.clip(((high + edge / 2) - freqs) / edge, 0.0, 1.0)
    gain = np.minimum(0.5 - 0.5 * np.cos(np.pi * rise), 0.5 - 0.5 * np.cos(np.pi * fall))
    filtered: Signal = np.fft.irfft(spectrum * gain, len(signal))
    return filtered


def pink_noise(length: int, rate: int, rng: np.random.Generator) -> Signal:
    """Gaussian noise shaped to a 1/f power spectrum (flat below 20 Hz, no DC), unit RMS."""
    white = rng.normal(0.0, 1.0, length)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(length, 1 / rate)
    shape = 1 / np.sqrt(np.maximum(freqs, 20.0))
    shape[0] = 0.0
    pink: Signal = np.fft.irfft(spectrum * shape, length)
    return _scaled_to(pink, 0.0)


def babble(length: int, rate: int, rng: np.random.Generator, clips: Sequence[Signal]) -> Signal:
    """``BABBLE_TALKERS`` streams of words one after another (random clips, random short gaps), summed,
    unit RMS. Each clip is already trimmed and level-matched, so no talker dominates."""
    if not clips:
        raise ValueError("babble needs speech clips")
    crowd = np.zeros(length)
    for _ in range(BABBLE_TALKERS):
        # Each talker starts part-way into a word, so the crowd does not start in unison.
        cursor = -int(rng.integers(0, max(1, rate // 2)))
        while cursor < length:
            clip = clips[int(rng.integers(len(clips)))]
            lo, hi = max(cursor, 0), min(cursor + len(clip), length)
            if hi > lo:
                crowd[lo:hi] += clip[lo - cursor : hi - cursor]
            cursor += len(clip) + round(float(rng.uniform(*BABBLE_GAP_S)) * rate)
    return _scaled_to(crowd, 0.0)


def opus_round_trip(signal: Signal, rate: int, bit_rate: int = OPUS_BIT_RATE) -> Signal:
    """Encode and decode with libopus at 48 kHz, 20 ms frames; same length and timeline as the input.

    The encoder announces its look-ahead as the first packet's negative pts (pre-skip, 312 samples at
    48 kHz); decoding raw packets without a container keeps those samples, so they are cut here.
    """
    up = fft_resample(signal, OPUS_RATE, rate)
    wide = _pcm(up)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bit_rate
    encoder.open()
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = OPUS_RATE
    decoder.layout = "mono"
    decoder.open()
    size = encoder.frame_size
    # Room for the look-ahead to flush out: a few whole frames of zeros after the signal.
    padded = np.concatenate([wide, np.zeros((-len(wide)) % size + 4 * size, dtype=np.int16)])
    packets = []
    for offset in range(0, len(padded), size):
        frame = av.AudioFrame.from_ndarray(
            padded[offset : offset + size].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_RATE
        frame.pts = offset
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    pre_skip = -int(packets[0].pts or 0)
    decoded = []
    for packet in packets:
        for frame in decoder.decode(packet):
            decoded.append(_mono(frame))
    out = np.concatenate(decoded)[pre_skip : pre_skip + len(wide)]
    if len(out) != len(wide):
        raise AssertionError(f"Opus round trip gave {len(out)} samples for {len(wide)}")
    down = fft_resample(_float(out), rate, OPUS_RATE)[: len(signal)]
    if len(down) != len(signal):
        raise AssertionError(f"Opus round trip gave {len(down)} samples for {len(signal)}")
    return down


def _mono(frame: av.AudioFrame) -> Pcm:
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.name == "s16":
        mixed: Pcm = np.round(data.reshape(-1, channels).astype(np.int32).mean(axis=1)).astype(np.int16)
        return mixed
    floats = data.reshape(channels, -1).mean(axis=0)
    return _pcm(floats)


# --- babble material ---------------------------------------------------------------------------------


def _read_wav(path: Path) -> tuple[Signal, int]:
    with wave.open(str(path), "rb") as wav:
        raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        channels = wav.getnchannels()
        rate = wav.getframerate()
    return raw.reshape(-1, channels).mean(axis=1) / 32768.0, rate


@functools.lru_cache(maxsize=4)
def babble_clips(rate: int) -> tuple[Signal, ...]:
    """Speech for the crowd at ``rate``: a fixed, sorted choice of Speech Commands words (trimmed and
    level-matched with the fixture tools), or the project's fixture calls when ../shared is absent."""
    from tools.make_fixtures import level, trim  # the fixture tools' cut and level, not a copy

    clips: list[Signal] = []
    if SPEECH_COMMANDS.is_dir():
        for word in BABBLE_WORDS:
            folder = SPEECH_COMMANDS / word
            for path in sorted(folder.glob("*.wav"))[:BABBLE_CLIPS_PER_WORD]:
                signal, native = _read_wav(path)
                at_rate = fft_resample(signal, rate, native)[: len(signal) * rate // native]
                try:
                    clips.append(level(trim(at_rate, rate), rate, -24.0))
                except RuntimeError:  # a silent clip: nothing to add to the crowd
                    continue
    if not clips:
        for path in sorted(FIXTURE_AUDIO.glob("*.wav")):
            signal, native = _read_wav(path)
            clips.append(fft_resample(signal, rate, native)[: len(signal) * rate // native])
    return tuple(clips)


# --- the variants ------------------------------------------------------------------------------------


def perturb(
    variant: str,
    samples: npt.ArrayLike,
    rate: int,
    truth: Truth,
    call: str,
    clips: Sequence[Signal] | None = None,
) -> Perturbed:
    """The ``variant`` of one call. ``clips`` feeds ``babble15`` (default: ``babble_clips(rate)``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    signal = _float(samples)
    rng = np.random.default_rng(seed(call, variant))
    n = len(signal)

    def same_time(out: Signal, out_rate: int = rate) -> Perturbed:
        return Perturbed(_pcm(out), out_rate, map_truth(truth, lambda t: t, out_rate, len(out)))

    if variant == "plain":
        return same_time(signal)
    if variant in ("pad137", "pad410"):
        pad = round(int(variant[3:]) / 1000 * rate)
        floor = rng.normal(0.0, 10 ** (noise_floor_dbfs(signal, rate) / 20), pad)
        out = np.concatenate([floor, signal])
        return Perturbed(_pcm(out), rate, map_truth(truth, lambda t: t + pad / rate, rate, len(out)))
    if variant == "quiet":
        return same_time(signal * 10 ** (-12 / 20))
    if variant == "loud6clip":
        return same_time(np.clip(signal * 10 ** (6 / 20), -1.0, 32767 / 32768))
    if variant in ("noise25", "pink15", "babble15"):
        snr = float(variant[-2:])
        if variant == "noise25":
            noise = rng.normal(0.0, 1.0, n)
        elif variant == "pink15":
            noise = pink_noise(n, rate, rng)
        else:
            noise = babble(n, rate, rng, clips if clips is not None else babble_clips(rate))
        return same_time(signal + _scaled_to(noise, speech_level_dbfs(signal, rate) - snr))
    if variant == "tele":
        banded = band_pass(signal, rate, *TELE_BAND_HZ, TELE_EDGE_HZ)
        line = fft_resample(banded, TELE_RATE, rate) if rate != TELE_RATE else banded
        return same_time(_float(ulaw_decode(ulaw_encode(_pcm(line)))), TELE_RATE)
    if variant in TEMPO:
        up, down = TEMPO[variant]
        out = fft_resample(signal, up, down)
        moved = map_truth(truth, lambda t: t * up / down, rate, len(out))
        for item in moved.get("pii", []):
            if item["entity"] == "DTMF":
                # Played 5 % off speed, keypad tones are 5 % off frequency: no longer DTMF by ITU-T Q.24,
                # which has receivers reject anything beyond 3.5 %. They stay in the audio and in the
                # truth (out of the over-redaction count) but are not scored as leaks.
                item["scored"] = False
                item["unscored"] = "tones shifted 5 %, beyond ITU-T Q.24's 3.5 % reject limit"
        return Perturbed(_pcm(out), rate, moved)
    if variant == "opus16":
        return same_time(opus_round_trip(signal, rate))
    # loss3: whole 20 ms packets on the call's own packet grid, a seeded choice of exactly 3 % of them.
    size = int(rate * FRAME_S)
    packets = -(-n // size)
    lost = rng.choice(packets, size=round(LOSS_SHARE * packets), replace=False)
    out = signal.copy()
    for index in sorted(int(i) for i in lost):
        out[index * size : (index + 1) * size] = 0.0
    return same_time(out)


def speech_reference(variant: str, samples: npt.ArrayLike, rate: int) -> Pcm:
    """The clean call on ``variant``'s timeline: same rate and length as the variant, but no noise, no
    level change, no codec (the padding is digital zero). Only for deciding which frames hold speech."""
    signal = _float(samples)
    if variant in ("pad137", "pad410"):
        return _pcm(np.concatenate([np.zeros(round(int(variant[3:]) / 1000 * rate)), signal]))
    if variant == "tele" and rate != TELE_RATE:
        return _pcm(fft_resample(signal, TELE_RATE, rate))
    if variant in TEMPO:
        return _pcm(fft_resample(signal, *TEMPO[variant]))
    return _pcm(signal)
