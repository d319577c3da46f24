"""Audio reading (mono, 16 kHz, loudness, bad files), log-mel numerics against an independent numpy
reference, per-utterance normalisation, SpecAugment masks and speed perturbation."""

import numpy as np
import pytest
import soundfile as sf
import torch

from rnnkit.data.audio import (
    FRAME_LENGTH,
    FRAME_SHIFT,
    NUM_MELS,
    SAMPLE_RATE,
    LogMel,
    StreamResampler,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    normalise_utterance,
    perturb_speed,
    read_audio,
    read_many,
    resample,
    spec_augment,
    warp_frequencies,
)
from rnnkit.errors import RnnkitError


def _tone(frequency: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _reference_filterbank(num_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """HTK mel triangles written out bin by bin, the way HTK's and librosa's documentation state them."""
    top = 2595 * np.log10(1 + (rate / 2) / 700)
    points = [700 * (10 ** (top * j / (num_mels + 1) / 2595) - 1) for j in range(num_mels + 2)]
    weights = np.zeros((num_mels, n_fft // 2 + 1))
    for m in range(num_mels):
        left, centre, right = points[m], points[m + 1], points[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * rate / n_fft
            if left <= f <= centre:
                weights[m, k] = (f - left) / (centre - left)
            elif centre < f <= right:
                weights[m, k] = (right - f) / (right - centre)
    return weights


def test_mel_filterbank_matches_the_htk_formula_bin_by_bin():
    ours = mel_filterbank(80, 512, 16000)
    np.testing.assert_allclose(ours, _reference_filterbank(80, 512, 16000), rtol=0, atol=1e-12)
    assert ours.shape == (80, 257) and (ours.max(axis=1) > 0.3).all()  # no empty filter at 80 mels / 512 FFT


def test_log_mel_matches_a_numpy_periodogram():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 + 123)).astype(np.float32) + _tone(440, 1.0077, 16000)
    ours = LogMel()(audio).numpy()
    # reference: explicit frames, numpy's periodic Hann window, numpy's FFT
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME_LENGTH) / FRAME_LENGTH)
    num_frames = 1 + (len(audio) - FRAME_LENGTH) // FRAME_SHIFT
    frames = np.stack([audio[i * FRAME_SHIFT : i * FRAME_SHIFT + FRAME_LENGTH] for i in range(num_frames)])
    power = np.abs(np.fft.rfft(frames.astype(np.float64) * window, n=512)) ** 2
    reference = np.log(power @ _reference_filterbank(80, 512, 16000).T + 1e-6)
    assert ours.shape == (num_frames, 80) == (99, 80)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-5)
    # the 440 Hz tone lands in the filter whose centre is nearest 440 Hz
    centres = np.argmax(mel_filterbank(), axis=1) * 16000 / 512
    assert abs(centres[ours.mean(axis=0).argmax()] - 440) < 40


def test_normalise_utterance_gives_zero_mean_unit_variance_per_band():
    features = torch.randn(50, 8) * 3 + 5
    normalised = normalise_utterance(features)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.std(0, unbiased=False), torch.ones(8), atol=1e-4, rtol=0)


def test_read_audio_mixes_stereo_resamples_and_normalises_loudness(tmp_path):
    tone = _tone(1000, 0.5, 22050)
    sf.write(tmp_path / "stereo.wav", np.stack([tone, 0.5 * tone], axis=1), 22050)
    audio = read_audio(tmp_path / "stereo.wav")
    assert audio.dtype == np.float32 and len(audio) == 8000  # 0.5 s at 16 kHz
    assert 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) == pytest.approx(-20, abs=0.01)
    spectrum = np.abs(np.fft.rfft(audio[1000:-1000]))
    assert np.fft.rfftfreq(6000, 1 / 16000)[spectrum.argmax()] == pytest.approx(1000, abs=3)
    raw = read_audio(tmp_path / "stereo.wav", normalise=False)
    assert np.max(np.abs(raw)) == pytest.approx(0.75 * 0.3, rel=0.02)  # the mean of the two channels


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_flac_and_ogg_are_read(tmp_path, suffix):
    path = tmp_path / f"tone{suffix}"
    sf.write(path, _tone(500, 0.3, 16000), 16000)
    assert abs(len(read_audio(path)) - 4800) <= 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.wav", None, "does not exist"),
        ("notes.txt", b"hello", "unsupported type"),
        ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "cannot be read as audio"),
        ("silent.wav", "silent", "is silent"),
        ("empty.wav", "empty", "is empty"),
        ("short.wav", "short", "at least 25 ms"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "silent":
        sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    elif content == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    elif content == "short":
        sf.write(path, _tone(300, 0.01, 16000), 16000)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(RnnkitError, match=message):
        read_audio(path)


def test_a_directory_is_refused_as_a_directory(tmp_path):
    (tmp_path / "clips.wav").mkdir()
    with pytest.raises(RnnkitError, match=r"clips\.wav is a directory; give the audio files in it"):
        read_audio(tmp_path / "clips.wav")


def test_read_many_skips_bad_files_and_counts_them(tmp_path):
    sf.write(tmp_path / "good.wav", _tone(300, 0.2, 16000), 16000)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    result = read_many([tmp_path / "good.wav", tmp_path / "bad.wav", tmp_path / "gone.wav"])
    assert list(result.audio) == [str(tmp_path / "good.wav")]
    assert len(result.skipped) == 2 and "cannot be read" in result.skipped[str(tmp_path / "bad.wav")]


def test_spec_augment_masks_bands_and_spans_within_each_length_and_repeats_with_the_seed():
    features = torch.ones(3, 60, 20)
    lengths = torch.tensor([60, 40, 20])
    masked = spec_augment(features, lengths, torch.Generator().manual_seed(1), freq_width=5, time_width=8)
    again = spec_augment(features, lengths, torch.Generator().manual_seed(1), freq_width=5, time_width=8)
    torch.testing.assert_close(masked, again)
    assert torch.equal(features, torch.ones(3, 60, 20))  # the input is not changed
    for n in range(3):
        zero_bands = (masked[n] == 0).all(dim=0)  # bands masked at every frame
        assert int(zero_bands.sum()) <= 2 * 5
        rest = masked[n][:, ~zero_bands]
        zero_frames = (rest == 0).all(dim=1)
        assert int(zero_frames.sum()) <= 2 * min(8, int(0.1 * lengths[n]))
        assert not zero_frames[int(lengths[n]) :].any() or int(lengths[n]) == 60  # spans inside the length
    assert (masked == 0).any()


def test_perturb_speed_moves_every_band_to_its_frequency_over_the_factor_and_rescales_time():
    top = float(hz_to_mel(SAMPLE_RATE / 2))
    centres = np.linspace(0.0, top, NUM_MELS + 2)[1:-1]  # the bands' centres in mel
    # each band holds its own centre (in mel), so a warped band must hold the mel of f_j / a, exactly
    # where that lies between two centres (linear interpolation of a linear function)
    bands = torch.tensor(centres).repeat(30, 1)
    for factor in (0.9, 1.1):
        warped = perturb_speed(bands, factor)
        expected = hz_to_mel(mel_to_hz(centres) / factor)
        inside = (expected >= centres[0]) & (expected <= centres[-1])
        assert inside.sum() > 70
        np.testing.assert_allclose(warped[0].numpy()[inside], expected[inside], rtol=0, atol=1e-9)
        edge = centres[0] if factor > 1 else centres[-1]  # beyond the bank: the nearest band
        np.testing.assert_allclose(warped[0].numpy()[~inside], edge)
    # frames: a ramp t read at a t, for round(L / a) frames
    ramp = torch.arange(50, dtype=torch.float64)[:, None].repeat(1, NUM_MELS)
    slow = perturb_speed(ramp, 0.8)
    assert len(slow) == 62
    np.testing.assert_allclose(slow[:61, 0].numpy(), np.arange(61) * 0.8, atol=1e-12)
    assert len(perturb_speed(ramp, 1.25)) == 40
    assert perturb_speed(ramp, 1.0) is ramp
    with pytest.raises(RnnkitError, match="positive"):
        perturb_speed(ramp, 0.0)


def test_warp_frequencies_moves_the_bands_like_speed_perturbation_and_keeps_the_frames():
    features = torch.randn(37, NUM_MELS, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for factor in (0.88, 1.07):
        warped = warp_frequencies(features, factor)
        assert warped.shape == features.shape
        # speed perturbation is this warp followed by a time stretch: without the stretch they agree frame by frame
        np.testing.assert_allclose(warped[0].numpy(), perturb_speed(features, factor)[0].numpy(), atol=1e-12)
    assert warp_frequencies(features, 1.0) is features
    with pytest.raises(RnnkitError, match="positive"):
        warp_frequencies(features, -1.0)


@pytest.mark.parametrize("rate", [44_100, 48_000, 22_050, 8_000, 16_000])
@pytest.mark.parametrize("block", [1_000, 1_323, 24_000])
def test_resampling_in_chunks_gives_the_whole_files_resampling(rate, block):
    """Chunks resampled alone click at their edges (the filter sees silence there) and round their lengths."""
    audio = np.random.default_rng(rate).standard_normal(rate + 77).astype(np.float32)
    resampler = StreamResampler(rate)
    parts = [resampler.feed(audio[i : i + block]) for i in range(0, len(audio), block)]
    np.testing.assert_allclose(np.concatenate([*parts, resampler.finish()]), resample(audio, rate), atol=1e-6)
