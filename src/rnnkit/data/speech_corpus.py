r"""A synthetic speech corpus: texts spoken by espeak-ng, flite and Festival voices, as 16 kHz WAVs and a manifest.

No English speech corpus ships offline, so we make one. Each utterance ``i`` is fixed by ``(seed, i)``:
its text (:func:`rnnkit.data.speech_texts.make_texts`), its split, voice, speed, pitch and noise. That makes
the build **resumable** (an existing, readable WAV is kept, not synthesised again) and the manifest the
same on every run.

Splits are **disjoint in text and in voice**, so the test set measures generalisation to both:

* the text's split comes from a hash of the text (80% train, 10% valid, 10% test);
* the voice is then drawn from that split's voices only. espeak-ng voices are accent x variant pairs
  (8 English accents x the variants in :data:`ESPEAK_VARIANTS`), assigned to a split by a hash of the pair;
  flite voices are split by hand: ``kal16``, ``awb``, ``slt`` train, ``kal`` valid, ``rms`` test.

More training voices (``festival_share``): a share of the flite *training* utterances is spoken by a Festival
voice instead, the diphone speaker ``ked`` or the HTS voice of ``slt``: one more speaker and one more vocoder,
in the training split only, so the test voices stay unheard. Its draws use a stream of their own, so the
other utterances (and every corpus built before) stay as they were.

Pitch: espeak-ng voices speak at a pitch drawn per utterance. flite voices speak at their own mean F0, except
a share (``flite_pitch``) of the *training* utterances, which get a mean F0 drawn from
:data:`FLITE_F0_RANGE`: the three training voices then sound like more speakers, while the held-out voices
are heard as they are.

Noise (``snr`` given): a share of the utterances get white, pink or brown noise (or a recording) mixed at an
SNR drawn uniformly from ``[snr, snr + 20]`` dB: :math:`y = x + g n,\ g = \sqrt{P_x / (P_n 10^{SNR/10})}`.

The manifest, ``manifest.csv``, has one row per utterance: path (relative to the corpus directory), text,
voice, engine, split, duration (seconds), speed, pitch, snr.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from rnnkit.data.audio import SAMPLE_RATE, read_audio, resample
from rnnkit.data.speech_texts import make_texts
from rnnkit.errors import RnnkitError

ESPEAK_ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
                  "en-us-nyc")  # fmt: skip
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "klatt4", "klatt6", "croak", "Andy", "Annie", "Alicia", "Mike", "Lee", "linda", "max",
                   "steph", "travis", "zac", "john", "david", "edward", "grandpa", "norbert", "robert", "michel",
                   "paul", "quincy", "shelby", "victor")  # fmt: skip
FLITE_VOICES = {"kal16": "train", "awb": "train", "slt": "train", "kal": "valid", "rms": "test"}
# Debian festvox-kdlpc16k and festvox-us-slt-hts; training voices only
FESTIVAL_VOICES = ("ked_diphone", "cmu_us_slt_arctic_hts")
# HTS voices take their durations from their own models and ignore Duration_Stretch: they speak at speed 1
FESTIVAL_FIXED_SPEED = ("cmu_us_slt_arctic_hts",)
SPLITS = ("train", "valid", "test")
# Hz, from a low male voice to a high female one; the training voices' own means are near 95 (kal16),
# 130 (awb) and 170 (slt)
FLITE_F0_RANGE = (80, 220)
MANIFEST = "manifest.csv"
NOISES = ("white", "pink", "brown")


def hash_split(key: str, valid: float = 0.1, test: float = 0.1) -> str:
    """A stable split for ``key``: sha256 mod 1000 below ``test`` -> test, then valid, else train."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 1000 / 1000
    return "test" if bucket < test else "valid" if bucket < test + valid else "train"


def espeak_voices() -> dict[str, list[str]]:
    """Split -> espeak-ng voices ("en-us+m3"), each accent x variant pair in exactly one split."""
    voices = {split: [] for split in SPLITS}
    for accent in ESPEAK_ACCENTS:
        for variant in ESPEAK_VARIANTS:
            name = f"{accent}+{variant}"
            voices[hash_split("voice:" + name, valid=0.1, test=0.15)].append(name)
    return voices


@dataclass(frozen=True)
class CorpusConfig:
    texts: str = "digits"  # a grammar, '+'-joined grammars, fortunes or a FILE
    num_utterances: int = 5000
    seed: int = 0
    flite_share: float = 0.25  # of utterances spoken by flite (the rest by espeak-ng)
    snr: float | None = None  # None: clean; else the lowest SNR (dB) of the noisy utterances
    noise_share: float = 0.5  # of utterances that get noise, when snr is given
    flite_pitch: float = 0.0  # share of the flite training utterances spoken at a random mean F0
    festival_share: float = 0.0  # share of the flite training utterances spoken by a Festival voice instead
    noise_file: str = ""  # a recording to cut noise from (else generated white/pink/brown noise)
    jobs: int = 2  # synthesis processes

    def __post_init__(self) -> None:
        if self.num_utterances < 1:
            raise RnnkitError(f"--n must be at least 1, got {self.num_utterances}.")
        for name in ("flite_share", "noise_share", "flite_pitch", "festival_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise RnnkitError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.jobs < 1:
            raise RnnkitError(f"--jobs must be at least 1, got {self.jobs}.")
        if self.snr is not None and not math.isfinite(self.snr):
            raise RnnkitError(f"--snr must be a finite number of dB, got {self.snr}.")
        if self.noise_file:
            if self.snr is None:
                raise RnnkitError(
                    f"--noise-file needs --snr: without it no utterance gets noise from {self.noise_file}; "
                    "add e.g. --snr 10."
                )
            # read it once here, so a missing, corrupt or silent file (which would give a NaN gain in
            # mix_noise) is one error before synthesis, not a traceback from every worker
            read_audio(self.noise_file, normalise=False)


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    split: str
    engine: str  # espeak-ng, flite or festival
    voice: str
    speed: float  # espeak-ng words per minute; flite and Festival duration stretch
    pitch: int  # espeak-ng 0-99; flite mean F0 in Hz (0: the voice's own); Festival 0
    snr: float | None
    noise: str


def plan(config: CorpusConfig) -> list[Utterance]:
    """Every utterance's text, split, voice and settings, fixed by ``(seed, i)``."""
    has_espeak, has_flite = shutil.which("espeak-ng") is not None, shutil.which("flite") is not None
    if not (has_espeak or has_flite):
        raise RnnkitError(
            "neither espeak-ng nor flite is installed; apt-get install espeak-ng flite (or make system-deps)."
        )
    if config.festival_share > 0 and shutil.which("text2wave") is None:
        raise RnnkitError(
            "festival is not installed (festival_share > 0); apt-get install festival festvox-kdlpc16k "
            "festvox-us-slt-hts (or make system-deps)."
        )
    texts = make_texts(config.texts, config.num_utterances, config.seed)
    espeak = espeak_voices()
    flite = {split: [v for v, s in FLITE_VOICES.items() if s == split] for split in SPLITS}
    utterances = []
    for i, text in enumerate(texts):
        rng = random.Random(f"{config.seed}:utterance:{i}")
        split = hash_split("text:" + text)
        use_flite = has_flite and (not has_espeak or rng.random() < config.flite_share)
        if use_flite:
            engine, voice, speed, pitch = "flite", rng.choice(flite[split]), round(rng.uniform(0.85, 1.2), 2), 0
            # a stream of its own: the other draws (and so every corpus built before) stay as they were
            pitch_rng = random.Random(f"{config.seed}:flite-pitch:{i}")
            if split == "train" and pitch_rng.random() < config.flite_pitch:
                pitch = pitch_rng.randint(*FLITE_F0_RANGE)
            festival_rng = random.Random(f"{config.seed}:festival:{i}")
            if split == "train" and festival_rng.random() < config.festival_share:
                engine, voice, pitch = "festival", festival_rng.choice(FESTIVAL_VOICES), 0
                speed = 1.0 if voice in FESTIVAL_FIXED_SPEED else speed
        else:
            engine, voice, speed, pitch = (
                "espeak-ng",
                rng.choice(espeak[split]),
                rng.randint(130, 210),
                rng.randint(20, 80),
            )
        snr, noise = None, ""
        if config.snr is not None and rng.random() < config.noise_share:
            snr, noise = round(rng.uniform(config.snr, config.snr + 20), 1), config.noise_file or rng.choice(NOISES)
        utterances.append(Utterance(f"{i:06d}", text, split, engine, voice, speed, pitch, snr, noise))
    return utterances


# --- one utterance -----------------------------------------------------------------------------------------


def synthesise(utterance: Utterance) -> np.ndarray:
    """The utterance's clean 16 kHz waveform from espeak-ng, flite or Festival."""
    if utterance.engine == "espeak-ng":
        command = ["espeak-ng", "-v", utterance.voice, "-s", str(int(utterance.speed)), "-p", str(utterance.pitch),
                   "--stdout", utterance.text]  # fmt: skip
        wav = subprocess.run(command, capture_output=True, check=True).stdout
    elif utterance.engine == "festival":
        with tempfile.TemporaryDirectory() as folder:
            text, path = Path(folder) / "text.txt", Path(folder) / "out.wav"
            text.write_text(utterance.text + "\n")
            # the voice first: selecting it resets Duration_Stretch
            command = ["text2wave", "-eval", f"(voice_{utterance.voice})", "-eval",
                       f"(Parameter.set 'Duration_Stretch {utterance.speed})", str(text), "-o", str(path)]  # fmt: skip
            result = subprocess.run(command, capture_output=True, check=True)
            if not path.is_file():  # Festival exits 0 on Scheme errors, such as a voice not installed
                raise RuntimeError(result.stderr.decode(errors="replace").strip() or "no audio written")
            wav = path.read_bytes()
    else:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "out.wav"
            command = ["flite", "-voice", utterance.voice, "--setf", f"duration_stretch={utterance.speed}",
                       "-t", utterance.text, "-o", str(path)]  # fmt: skip
            if utterance.pitch:
                command[3:3] = ["--setf", f"int_f0_target_mean={utterance.pitch}"]
            subprocess.run(command, capture_output=True, check=True)
            wav = path.read_bytes()
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate)


def coloured_noise(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """White noise shaped to a 1/f^a power spectrum: white a=0, pink a=1, brown a=2."""
    white = rng.standard_normal(length)
    slope = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
    spectrum = np.fft.rfft(white)
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1] if length > 1 else 1.0
    return np.fft.irfft(spectrum / frequencies ** (slope / 2), n=length)


def mix_noise(clean: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``clean + g * noise`` with ``g`` chosen so the mix has signal-to-noise ratio ``snr`` dB."""
    power_clean, power_noise = np.mean(clean.astype(np.float64) ** 2), np.mean(noise.astype(np.float64) ** 2)
    gain = np.sqrt(power_clean / (power_noise * 10 ** (snr / 10)))
    return (clean + gain * noise).astype(np.float32)


def noise_for(utterance: Utterance, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, int(utterance.id)])
    if utterance.noise in NOISES:
        return coloured_noise(utterance.noise, length, rng)
    recording, rate = sf.read(utterance.noise, dtype="float32", always_2d=True)
    recording = resample(recording.mean(axis=1), rate)
    repeats = -(-length // len(recording)) + 1
    start = int(rng.integers(0, len(recording)))
    return np.tile(recording, repeats)[start : start + length]


def build_one(args: tuple[Utterance, str, int]) -> tuple[str, float, str]:
    """Synthesise (unless a readable WAV is there already) and write one utterance; -> (id, seconds, error)."""
    utterance, directory, seed = args
    path = Path(directory) / "wavs" / f"{utterance.id}.wav"
    try:
        return utterance.id, float(sf.info(path).duration), ""
    except (sf.LibsndfileError, RuntimeError, OSError):
        pass  # not there yet, or a half-written file from an interrupted run: make it
    try:
        audio = synthesise(utterance)
    except (subprocess.CalledProcessError, sf.LibsndfileError, RuntimeError) as error:
        return utterance.id, 0.0, f"{utterance.engine} {utterance.voice} failed: {error}"
    if utterance.snr is not None:
        audio = mix_noise(audio, noise_for(utterance, len(audio), seed), utterance.snr)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    temporary = path.with_suffix(".tmp.wav")
    sf.write(temporary, audio, SAMPLE_RATE, subtype="PCM_16")
    os.replace(temporary, path)  # a WAV is either whole or absent
    return utterance.id, len(audio) / SAMPLE_RATE, ""


def _settings(row: dict) -> tuple:
    """What a WAV was made from, comparable between a manifest row (CSV text) and a planned utterance."""
    snr = row["snr"]
    snr = "" if snr in ("", None) or (isinstance(snr, float) and np.isnan(snr)) else f"{float(snr):g}"
    return (str(row["text"]), str(row["voice"]), str(row["engine"]), f"{float(row['speed']):g}",
            int(row["pitch"]), snr, str(row["noise"] or ""))  # fmt: skip


def remove_changed(out: Path, utterances: list[Utterance]) -> int:
    """Delete the WAVs that an earlier build of ``out`` made with other settings (its manifest says which),
    so that resuming remakes them instead of keeping audio the new manifest would misdescribe."""
    try:
        old = pd.read_csv(out / MANIFEST, keep_default_na=False, dtype={"noise": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return 0  # no manifest (a first build) or an unreadable one: nothing to compare
    if not {"path", "text", "voice", "engine", "speed", "pitch", "snr", "noise"} <= set(old.columns):
        return 0  # not a manifest this builder wrote: leave the WAVs alone
    before = {}
    for row in old.to_dict("records"):
        try:
            before[row["path"]] = _settings(row)
        except ValueError:
            continue  # a row edited by hand: keep its WAV
    removed = 0
    for utterance in utterances:
        path = f"wavs/{utterance.id}.wav"
        if path in before and before[path] != _settings(asdict(utterance)):
            (out / path).unlink(missing_ok=True)
            removed += 1
    return removed


def build_corpus(config: CorpusConfig, out: Path | str, *, quiet: bool = False) -> dict:
    """Write ``out/wavs/*.wav`` and ``out/manifest.csv``; returns counts per split and engine, and failures."""
    out = Path(out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    utterances = plan(config)
    remove_changed(out, utterances)
    jobs = [(u, str(out), config.seed) for u in utterances]
    durations, failures = {}, {}
    bar = tqdm(total=len(jobs), desc="synthesising", disable=True if quiet else None, dynamic_ncols=True)
    with ProcessPoolExecutor(max_workers=config.jobs) as pool:
        for uid, seconds, error in pool.map(build_one, jobs, chunksize=16):
            if error:
                failures[uid] = error
            else:
                durations[uid] = seconds
            bar.update(1)
    bar.close()
    rows = [
        {"path": f"wavs/{u.id}.wav", **{k: v for k, v in asdict(u).items() if k != "id"}, "duration": durations[u.id]}
        for u in utterances
        if u.id in durations
    ]
    table = pd.DataFrame(rows, columns=["path", "text", "voice", "duration", "engine", "split", "speed", "pitch",
                                        "snr", "noise"])  # fmt: skip
    temporary = out / (MANIFEST + ".tmp")
    table.to_csv(temporary, index=False)
    os.replace(temporary, out / MANIFEST)  # whole or absent; and a hard-linked copy of a corpus keeps its own
    counts = table.groupby(["split", "engine"]).size()
    return {
        "manifest": str(out / MANIFEST),
        "utterances": len(table),
        "hours": round(float(table["duration"].sum()) / 3600, 3),
        "counts": {f"{split}/{engine}": int(n) for (split, engine), n in counts.items()},
        "failed": len(failures),
        "failures": dict(list(failures.items())[:5]),
    }


def read_manifest(path: Path | str, split: str | None = None) -> pd.DataFrame:
    """A manifest (a CSV, or a corpus directory holding ``manifest.csv``) with absolute paths, optionally
    only one split's rows."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist; build a corpus with `rnnkit asr make-data` or give a manifest CSV.")
    try:
        table = pd.read_csv(path, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise RnnkitError(f"{path} is not a readable CSV ({error}).") from None
    missing = {"path", "text"} - set(table.columns)
    if missing:
        raise RnnkitError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; it needs path and text.")
    table["path"] = [str((path.parent / p).resolve()) for p in table["path"]]
    table["text"] = table["text"].astype(str)
    if split not in (None, "all"):
        if "split" not in table.columns:
            raise RnnkitError(
                f"{path} has no split column; add one (train, valid, test), or with `asr eval` pass --split all."
            )
        table = table[table["split"] == split].reset_index(drop=True)
        if table.empty:
            raise RnnkitError(f"{path} has no rows in split {split!r}.")
    return table
