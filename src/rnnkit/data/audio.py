r"""Audio files -> 16 kHz mono waveforms -> log-mel features (+ SpecAugment for training).

Reading: ``soundfile`` (WAV, FLAC, OGG/Vorbis), channels averaged to mono, resampled to 16 kHz by a
polyphase filter (``scipy.signal.resample_poly``), loudness set to an RMS of -20 dBFS (scaled down further
only if a peak would pass full scale). Missing, corrupt, empty, silent, too short or unsupported files raise
one :class:`~rnnkit.errors.RnnkitError` naming the file; :func:`read_many` skips them and counts.

Features (Kaldi / ESPnet conventions): frames of 25 ms (400 samples) every 10 ms (160), Hann-windowed,
zero-padded to a 512-point FFT; the power spectrum :math:`P_k = |X_k|^2` goes through 80 triangular mel
filters on the **HTK mel scale**

.. math::
    m(f) = 2595 \log_{10}(1 + f / 700),\qquad
    w_j(f) = \max\Big(0, \min\Big(\frac{f - f_{j-1}}{f_j - f_{j-1}}, \frac{f_{j+1} - f}{f_{j+1} - f_j}\Big)\Big)

with centres :math:`f_j` equally spaced in mel from 0 Hz to 8 kHz and peak-1 triangles (``librosa``'s
``htk=True, norm=None``), then :math:`\log(\sum_k w_j(f_k) P_k + 10^{-6})`. A clip of ``n`` samples gives
``1 + (n - 400) // 160`` frames (no centring, so a stream can be cut into chunks exactly). Per-utterance
normalisation subtracts each mel band's mean over time and divides by its standard deviation.

Shapes: waveform (n,), features (L, F) with F = 80 mel bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from rnnkit.errors import RnnkitError

SAMPLE_RATE = 16_000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512
NUM_MELS = 80
LOG_FLOOR = 1e-6  # below any speech band's energy at -20 dBFS; keeps log() finite on digital silence
TARGET_DBFS = -20.0
SILENCE_PEAK = 1e-4  # a file whose loudest sample is below this (-80 dBFS) is treated as silent
EXTENSIONS = (".wav", ".flac", ".ogg")


# --- files -------------------------------------------------------------------------------------------------


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling by the reduced ratio ``target / rate`` (22,050 -> 16,000 Hz is 320/441)."""
    if rate == target:
        return audio
    divisor = gcd(rate, target)
    from scipy.signal import resample_poly  # here, not at import: scipy.signal takes most of a second to load

    return resample_poly(audio, target // divisor, rate // divisor).astype(np.float32)


class StreamResampler:
    """:func:`resample` for audio that arrives in chunks, with the same output as resampling it whole.

    Resampled alone, each chunk would see silence beyond its edges: a click at every chunk boundary and a length
    rounded per chunk. Output sample j sits at input position j * down / up, and the polyphase filter reads
    ``10 * max(up, down) / up`` input samples either side of it. So each call resamples a window of the input
    that starts at a multiple of ``down`` (its outputs then fall on the whole stream's grid) and keeps only the
    outputs whose filter lies inside what has arrived; :meth:`finish` gives the rest, as the end of the file.
    """

    def __init__(self, rate: int, target: int = SAMPLE_RATE) -> None:
        divisor = gcd(rate, target)
        self.up, self.down = target // divisor, rate // divisor
        self.reach = -(-10 * max(self.up, self.down) // self.up) + 2  # input samples a filter reads, either side
        self.window = np.zeros(0, np.float32)  # the input from ``start`` on
        self.start = 0  # a multiple of ``down``
        self.emitted = 0  # output samples given out so far

    def feed(self, audio: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return audio
        self.window = np.concatenate([self.window, audio.astype(np.float32)])
        end = self.start + len(self.window)
        ready = (end - self.reach) * self.up // self.down  # outputs before this one read only what has arrived
        return self._emit(ready)

    def finish(self) -> np.ndarray:
        if self.up == self.down:
            return np.zeros(0, np.float32)
        total = -(-(self.start + len(self.window)) * self.up // self.down)  # resample_poly's length
        return self._emit(total)

    def _emit(self, stop: int) -> np.ndarray:
        if stop <= self.emitted:
            return np.zeros(0, np.float32)
        from scipy.signal import resample_poly

        offset = self.start * self.up // self.down  # the window's first output, on the stream's grid
        out = resample_poly(self.window, self.up, self.down).astype(np.float32)[self.emitted - offset : stop - offset]
        self.emitted = stop
        # keep what the next outputs' filters reach back to, from a multiple of ``down``
        keep_from = max(self.start, (stop * self.down // self.up - self.reach) // self.down * self.down)
        self.window, self.start = self.window[keep_from - self.start :], keep_from
        return out


def normalise_loudness(audio: np.ndarray, dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Scale to an RMS of ``dbfs`` (relative to full scale 1.0), less if a peak would clip."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    gain = 10 ** (dbfs / 20) / rms
    peak = float(np.max(np.abs(audio))) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (audio * gain).astype(np.float32)


def read_audio(path: Path | str, *, normalise: bool = True) -> np.ndarray:
    """A file's audio as 16 kHz mono float32 in [-1, 1] (loudness-normalised unless ``normalise=False``)."""
    path = Path(path)
    if path.is_dir():
        raise RnnkitError(f"{path} is a directory; give the audio files in it (WAV, FLAC or OGG) instead.")
    if not path.is_file():
        raise RnnkitError(f"audio file {path} does not exist.")
    if path.suffix.lower() not in EXTENSIONS:
        raise RnnkitError(f"{path} has an unsupported type {path.suffix!r}; give a {', '.join(EXTENSIONS)} file.")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise RnnkitError(
            f"{path} cannot be read as audio ({error}); the file is corrupt or not WAV/FLAC/OGG."
        ) from None
    if audio.size == 0:
        raise RnnkitError(f"{path} is empty: it holds no audio samples.")
    audio = resample(audio.mean(axis=1), rate)  # -> (n,) mono at 16 kHz
    if len(audio) < FRAME_LENGTH:
        raise RnnkitError(f"{path} is {len(audio) / SAMPLE_RATE * 1000:.1f} ms long; it needs at least 25 ms.")
    if not np.isfinite(audio).all():
        raise RnnkitError(f"{path} holds NaN or infinite samples; the file is corrupt.")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise RnnkitError(f"{path} is silent (no sample above {SILENCE_PEAK:g} of full scale).")
    return normalise_loudness(audio) if normalise else audio


@dataclass
class ReadResult:
    audio: dict[str, np.ndarray]  # path -> waveform, for the files that could be read
    skipped: dict[str, str]  # path -> why not


def read_many(paths: list[Path | str]) -> ReadResult:
    """Read every file it can; unreadable ones are recorded in ``skipped`` with the reason, never raised."""
    result = ReadResult({}, {})
    for path in paths:
        try:
            result.audio[str(path)] = read_audio(path)
        except RnnkitError as error:
            result.skipped[str(path)] = str(error)
    return result


def duration(path: Path | str) -> float:
    """Seconds of audio in a file, from its header."""
    return float(sf.info(path).duration)


# --- features ----------------------------------------------------------------------------------------------


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(num_mels: int = NUM_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:  # fmt: skip
    """HTK-scale triangular filters, ``(num_mels, n_fft // 2 + 1)``, each peaking at 1 on its centre."""
    f_max = sample_rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), num_mels + 2))  # (M + 2,)
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)  # each FFT bin's frequency
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


class LogMel:
    """Log-mel features of 16 kHz waveforms (see the module docstring); holds the window and filters."""

    def __init__(self, num_mels: int = NUM_MELS) -> None:
        self.num_mels = num_mels
        self.window = torch.hann_window(FRAME_LENGTH, periodic=True, dtype=torch.float64)
        self.filters = torch.from_numpy(mel_filterbank(num_mels))  # (F, 257)

    @staticmethod
    def num_frames(num_samples: int) -> int:
        return 0 if num_samples < FRAME_LENGTH else 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT

    def __call__(self, audio: np.ndarray | Tensor) -> Tensor:
        """Waveform ``(n,)`` -> log-mel ``(L, F)`` float32, unnormalised."""
        x = torch.as_tensor(audio, dtype=torch.float64)
        if x.numel() < FRAME_LENGTH:
            return torch.zeros(0, self.num_mels)
        frames = x.unfold(0, FRAME_LENGTH, FRAME_SHIFT) * self.window  # -> (L, 400)
        power = torch.fft.rfft(frames, n=N_FFT).abs().square()  # -> (L, 257)
        return torch.log(power @ self.filters.T + LOG_FLOOR).float()  # -> (L, F)


def normalise_utterance(features: Tensor, eps: float = 1e-5) -> Tensor:
    """Each band to zero mean and unit variance over the utterance's frames: ``(L, F)`` -> ``(L, F)``."""
    mean = features.mean(dim=0, keepdim=True)
    std = features.std(dim=0, unbiased=False, keepdim=True)
    return (features - mean) / (std + eps)


def spec_augment(
    features: Tensor,
    lengths: Tensor,
    generator: torch.Generator,
    *,
    freq_masks: int = 2,
    freq_width: int = 15,
    time_masks: int = 2,
    time_width: int = 40,
    time_fraction: float = 0.1,
) -> Tensor:
    """SpecAugment's masking (Park et al. 2019), without time warping: per utterance, ``freq_masks`` bands
    of up to ``freq_width`` mel channels and ``time_masks`` spans of up to ``min(time_width, time_fraction *
    length)`` frames are set to 0 (the mean of normalised features). ``features`` ``(N, L, F)`` is not
    changed; a masked copy is returned. The same generator state gives the same masks."""
    out = features.clone()
    num_bands = features.shape[-1]
    for n in range(features.shape[0]):
        length = int(lengths[n])
        for _ in range(freq_masks):
            width = int(torch.randint(0, freq_width + 1, (), generator=generator))
            start = int(torch.randint(0, max(1, num_bands - width + 1), (), generator=generator))
            out[n, :, start : start + width] = 0
        longest = min(time_width, math.floor(time_fraction * length))
        for _ in range(time_masks):
            width = int(torch.randint(0, longest + 1, (), generator=generator))
            start = int(torch.randint(0, max(1, length - width + 1), (), generator=generator))
            out[n, start : start + width, :] = 0
    return out


def perturb_speed(features: Tensor, factor: float) -> Tensor:
    r"""Log-mel ``(L, F)`` of the same clip played ``factor`` times as fast, made from the features themselves
    (speed perturbation, Ko et al. 2015, without re-reading the audio): playing faster scales every frequency
    and divides the duration, :math:`S'(f, t) = S(f / a, a t)` for :math:`a` = ``factor``.

    Bands as in :func:`warp_frequencies`. Frames: output frame ``t`` reads input frame :math:`a t`, interpolated
    linearly; the clip keeps ``max(1, round(L / a))`` frames. A new speaker's formants move the same way, which
    is why this helps a recogniser with unseen voices; it works on normalised features too, whose band
    statistics change slowly across bands."""
    if factor <= 0:
        raise RnnkitError(f"a speed factor must be positive, got {factor}.")
    if factor == 1 or len(features) == 0:
        return features
    warped = warp_frequencies(features, factor)
    frames = max(1, round(len(features) / factor))
    return _interpolate(
        warped, (torch.arange(frames, dtype=torch.float64) * factor).clamp(max=len(features) - 1), dim=0
    )


def warp_frequencies(features: Tensor, factor: float) -> Tensor:
    r"""Log-mel ``(L, F)`` with every frequency scaled by ``factor`` and the timing kept,
    :math:`S'(f, t) = S(f / a, t)`: vocal tract length perturbation (VTLP, Jaitly & Hinton 2013) done on the
    features. A longer vocal tract (:math:`a < 1`) lowers every formant by the same ratio, so a random
    :math:`a` per utterance makes more speakers out of the training voices, apart from their speaking rate.

    The output band with centre :math:`f_j` reads the input at :math:`f_j / a`, interpolated linearly in mel
    between the input's band centres (clamped to the first and last band)."""
    if factor <= 0:
        raise RnnkitError(f"a frequency warp factor must be positive, got {factor}.")
    if factor == 1 or len(features) == 0:
        return features
    num_bands = features.shape[1]
    top = float(hz_to_mel(SAMPLE_RATE / 2))
    centres = mel_to_hz(np.linspace(0.0, top, num_bands + 2)[1:-1])
    bands = np.clip(hz_to_mel(centres / factor) / (top / (num_bands + 1)) - 1, 0, num_bands - 1)
    return _interpolate(features, torch.from_numpy(bands), dim=1)


def _interpolate(x: Tensor, positions: Tensor, dim: int) -> Tensor:
    """``x`` read at fractional ``positions`` (within ``[0, size - 1]``) along ``dim``, linearly."""
    low = positions.floor().long()
    high = (low + 1).clamp(max=x.shape[dim] - 1)
    weight = (positions - low).to(x.dtype)
    shape = [1, 1]
    shape[dim] = -1
    weight = weight.view(shape)
    return x.index_select(dim, low) * (1 - weight) + x.index_select(dim, high) * weight
