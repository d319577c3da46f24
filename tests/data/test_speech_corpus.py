"""Speech texts (numbers as words, grammars, fortunes) and the synthetic corpus: splits disjoint in text and
voice, noise at the asked SNR, a tiny real build that resumes without synthesising again."""

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.speech_corpus import (
    FESTIVAL_VOICES,
    FLITE_F0_RANGE,
    FLITE_VOICES,
    CorpusConfig,
    build_corpus,
    build_one,
    espeak_voices,
    mix_noise,
    plan,
    read_manifest,
    remove_changed,
)
from rnnkit.data.speech_texts import ALPHABET, FORTUNES_DIR, fortune_sentences, make_texts, normalise_text, number_words
from rnnkit.errors import RnnkitError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)")
needs_festival = pytest.mark.skipif(
    shutil.which("text2wave") is None,
    reason="festival is not installed (apt-get install festival festvox-kdlpc16k festvox-us-slt-hts)",
)


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (342, "three hundred forty two"),
     (1984, "one thousand nine hundred eighty four"), (2_000_005, "two million five")],
)  # fmt: skip
def test_number_words(n, words):
    assert number_words(n) == words


def test_normalise_text_keeps_only_the_alphabet_and_writes_numbers_as_words():
    text = normalise_text('In 1984, "Don\'t" PANIC & 42% -- the Guide!')
    assert text == "in one thousand nine hundred eighty four don't panic and forty two percent the guide"
    assert set(text) <= set(ALPHABET)


def test_normalise_text_keeps_accented_letters_and_typographic_apostrophes_as_their_ascii_base():
    # filtering alone dropped them: "Café" became "caf" and "Don’t" "dont", which espeak-ng then spoke that way
    assert normalise_text("Café au lait, Über naïve résumé") == "cafe au lait uber naive resume"
    assert normalise_text("Don\u2019t say \u2018hi\u2019 ") == "don't say hi"


def test_grammars_are_seeded_and_mix_when_joined():
    texts = make_texts("digits+cards+commands", 60, seed=3)
    assert texts == make_texts("digits+cards+commands", 60, seed=3) != make_texts("digits+cards+commands", 60, seed=4)
    assert all(set(t) <= set(ALPHABET) and t for t in texts)
    assert any(" of " in t for t in texts) and any(t.split()[0] in ("go", "turn", "pick", "put", "move") for t in texts)
    with pytest.raises(RnnkitError, match="no such grammar"):
        make_texts("poems", 3)


@pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="Debian's fortunes package is not installed")
def test_fortune_sentences_are_normalised_and_four_to_twelve_words():
    sentences = fortune_sentences()
    assert len(sentences) > 5000 and len(set(sentences)) == len(sentences)
    assert all(4 <= len(s.split()) <= 12 and set(s) <= set(ALPHABET) for s in sentences)


def test_mix_noise_gives_the_asked_snr():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(16000).astype(np.float32), rng.standard_normal(16000)
    mixed = mix_noise(clean, noise, 10.0)
    residual = mixed - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(residual.astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=1e-4)


def test_espeak_voices_fall_in_exactly_one_split():
    voices = espeak_voices()
    names = [v for split in voices.values() for v in split]
    assert len(names) == len(set(names)) and all(voices.values())
    assert set(FLITE_VOICES.values()) == {"train", "valid", "test"}


@needs_espeak
@needs_flite
def test_plan_keeps_splits_disjoint_in_text_and_voice():
    utterances = plan(CorpusConfig(texts="digits+cards+commands", num_utterances=600, snr=5))
    by_split = {s: [u for u in utterances if u.split == s] for s in ("train", "valid", "test")}
    assert all(by_split.values())
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not {u.text for u in by_split[a]} & {u.text for u in by_split[b]}
        assert not {u.voice for u in by_split[a]} & {u.voice for u in by_split[b]}
    assert {u.voice for u in by_split["test"] if u.engine == "flite"} == {"rms"}
    noisy = [u for u in utterances if u.snr is not None]
    assert 0.3 < len(noisy) / len(utterances) < 0.7 and all(5 <= u.snr <= 25 for u in noisy)
    assert plan(CorpusConfig(texts="digits", num_utterances=50)) == plan(
        CorpusConfig(texts="digits", num_utterances=50)
    )


def test_flite_pitch_changes_only_training_flite_pitches():
    plain = plan(CorpusConfig(texts="digits+cards+commands", num_utterances=800))
    pitched = plan(CorpusConfig(texts="digits+cards+commands", num_utterances=800, flite_pitch=0.5))
    changed = [(a, b) for a, b in zip(plain, pitched, strict=True) if a != b]
    flite_train = [a for a in plain if a.engine == "flite" and a.split == "train"]
    assert 0.3 < len(changed) / len(flite_train) < 0.7
    for a, b in changed:
        assert a.split == "train" and a.engine == "flite" and a.pitch == 0
        assert b == replace(a, pitch=b.pitch) and FLITE_F0_RANGE[0] <= b.pitch <= FLITE_F0_RANGE[1]
    with pytest.raises(RnnkitError, match="flite_pitch"):
        CorpusConfig(flite_pitch=1.5)


@needs_festival
def test_festival_share_revoices_only_training_flite_utterances(tmp_path):
    plain = plan(CorpusConfig(texts="digits+cards+commands", num_utterances=800))
    revoiced = plan(CorpusConfig(texts="digits+cards+commands", num_utterances=800, festival_share=0.5))
    changed = [(a, b) for a, b in zip(plain, revoiced, strict=True) if a != b]
    flite_train = [a for a in plain if a.engine == "flite" and a.split == "train"]
    assert 0.3 < len(changed) / len(flite_train) < 0.7
    assert {b.voice for _, b in changed} == set(FESTIVAL_VOICES)
    for a, b in changed:
        assert a.split == "train" and a.engine == "flite"
        assert b == replace(a, engine="festival", voice=b.voice, speed=b.speed, pitch=0)
    # one of each voice really speaks: 16 kHz audio about as long as the text
    for _, utterance in [next(pair for pair in changed if pair[1].voice == v) for v in FESTIVAL_VOICES]:
        (tmp_path / "wavs").mkdir(exist_ok=True)
        _, seconds, error = build_one((utterance, str(tmp_path), 0))
        assert error == "" and 0.3 < seconds < 10
    missing = replace(changed[0][1], id="000999", voice="not_a_voice")
    assert "unbound variable" in build_one((missing, str(tmp_path), 0))[2]  # Festival exits 0 here: still a failure


@needs_espeak
def test_festival_share_needs_festival_and_a_share(monkeypatch):
    with pytest.raises(RnnkitError, match="festival_share"):
        CorpusConfig(festival_share=-0.1)
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "text2wave" else real(name))
    plan(CorpusConfig(texts="digits", num_utterances=5))  # no Festival voice asked for: fine
    with pytest.raises(RnnkitError, match="festival is not installed"):
        plan(CorpusConfig(texts="digits", num_utterances=5, festival_share=0.2))


@needs_espeak
@needs_flite
def test_build_writes_16khz_wavs_and_a_manifest_and_resumes(tmp_path):
    config = CorpusConfig(texts="digits", num_utterances=8, snr=10, jobs=1)
    summary = build_corpus(config, tmp_path, quiet=True)
    table = pd.read_csv(tmp_path / "manifest.csv")
    assert summary["utterances"] == len(table) == 8 and summary["failed"] == 0
    assert list(table.columns[:4]) == ["path", "text", "voice", "duration"]
    import soundfile as sf

    info = sf.info(tmp_path / table["path"][0])
    assert info.samplerate == 16000 and info.channels == 1
    assert (table["duration"] > 0.3).all()
    stamps = {p: (tmp_path / p).stat().st_mtime_ns for p in table["path"]}
    (tmp_path / table["path"][1]).unlink()  # as if the first run was interrupted there
    build_corpus(config, tmp_path, quiet=True)
    assert all((tmp_path / p).stat().st_mtime_ns == t for p, t in stamps.items() if p != table["path"][1])
    again = pd.read_csv(tmp_path / "manifest.csv")
    pd.testing.assert_frame_equal(again.drop(columns="duration"), table.drop(columns="duration"))
    rows = read_manifest(tmp_path, "all")
    assert rows["path"][0].startswith(str(tmp_path))
    # other settings for an utterance: its old WAV is remade, not kept under a manifest row that misdescribes it
    wanted = plan(config)[2]
    assert remove_changed(tmp_path, plan(config)) == 0
    assert remove_changed(tmp_path, [replace(wanted, pitch=wanted.pitch + 1)]) == 1
    assert not (tmp_path / f"wavs/{wanted.id}.wav").exists()
    table.drop(columns="pitch").to_csv(tmp_path / "manifest.csv", index=False)  # someone else's manifest
    assert remove_changed(tmp_path, [replace(plan(config)[3], pitch=1)]) == 0


def test_read_manifest_refuses_missing_files_and_columns(tmp_path):
    with pytest.raises(RnnkitError, match="does not exist"):
        read_manifest(tmp_path / "nothing.csv")
    (tmp_path / "m.csv").write_text("file,words\na.wav,hello\n")
    with pytest.raises(RnnkitError, match="lacks the column"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("path,text\na.wav,hello\n")
    with pytest.raises(RnnkitError, match="no split column"):
        read_manifest(tmp_path / "m.csv", "test")


def test_a_manifest_without_splits_gets_advice_true_for_train_and_eval(tmp_path):
    (tmp_path / "m.csv").write_text("path,text\na.wav,hello\n")
    with pytest.raises(RnnkitError, match="add one \\(train, valid, test\\), or with `asr eval` pass --split all"):
        read_manifest(tmp_path / "m.csv", "train")  # what `asr train`, which has no --split, reads


@pytest.mark.parametrize("snr", [float("nan"), float("inf"), float("-inf")])
def test_corpus_config_refuses_a_non_finite_snr(snr):
    with pytest.raises(RnnkitError, match="--snr must be a finite number"):
        CorpusConfig(snr=snr)


def test_corpus_config_reads_the_noise_file_up_front_and_needs_snr(tmp_path):
    import soundfile as sf

    noise = tmp_path / "noise.wav"
    sf.write(noise, np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1, 16000)
    assert CorpusConfig(snr=10, noise_file=str(noise)).noise_file == str(noise)
    with pytest.raises(RnnkitError, match="--noise-file needs --snr"):
        CorpusConfig(noise_file=str(noise))
    sf.write(tmp_path / "silent.wav", np.zeros(1600, dtype=np.float32), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "text.wav").write_text("not audio\n")
    for name, why in [("missing.wav", "does not exist"), ("text.wav", "cannot be read as audio"),
                      ("empty.wav", "is empty"), ("silent.wav", "is silent")]:  # fmt: skip
        with pytest.raises(RnnkitError, match=why):
            CorpusConfig(snr=10, noise_file=str(tmp_path / name))
