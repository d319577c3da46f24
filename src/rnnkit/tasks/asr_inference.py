"""Using a trained recogniser: decode, transcribe files (with word times), stream a long file.

``Decoder`` holds the decoding choice: greedy (``beam=0``) or prefix beam search, optionally fused with the
run's character n-gram (``char_lm.json``, fitted on the training transcripts) or a recurrent character
LM (an ``rnnkit lm train`` run, :mod:`rnnkit.tasks.recurrent_char_lm`) by ``lm_weight`` and ``lm_bonus``, and
with the run's word trigram (``word_lm.json``, :mod:`rnnkit.tasks.word_ngram`) at word ends by ``word_weight``.
Word times come from the Viterbi alignment of the chosen text (:func:`ctc_decode.align`).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from rnnkit import checkpoint
from rnnkit.data.audio import FRAME_LENGTH, SAMPLE_RATE, TARGET_DBFS, StreamResampler, read_audio
from rnnkit.errors import RnnkitError
from rnnkit.tasks.asr import SpeechRecognizer
from rnnkit.tasks.asr_streaming import StreamingRecognizer
from rnnkit.tasks.char_ngram import CharNgram
from rnnkit.tasks.ctc_decode import align, greedy, prefix_beam_search, word_times
from rnnkit.tasks.recurrent_char_lm import RecurrentCharLM
from rnnkit.tasks.word_ngram import WordFusion, WordNgram

LM_FILE = "char_lm.json"
WORD_LM_FILE = "word_lm.json"
LM_NEEDS_BEAM = (
    "--lm, --lm-weight, --lm-bonus and --word-weight act in beam search only; add --beam N (e.g. --beam 16)."
)


def load_char_lm(run: Path | str) -> CharNgram | None:
    path = Path(run) / LM_FILE
    return CharNgram.from_config(checkpoint.read_json(path)) if path.is_file() else None


def load_word_lm(run: Path | str) -> WordNgram | None:
    path = Path(run) / WORD_LM_FILE
    return WordNgram.from_config(checkpoint.read_json(path)) if path.is_file() else None


def load_fusion_lm(run: Path | str, alphabet: str, lm: Path | str | None = None) -> CharNgram | RecurrentCharLM | None:
    """The LM to fuse: the rnnkit character LM in directory ``lm`` when given, else the run's n-gram."""
    return RecurrentCharLM.load(lm, alphabet) if lm else load_char_lm(run)


@dataclass
class Decoder:
    alphabet: str
    beam: int = 0  # 0: greedy
    lm: CharNgram | RecurrentCharLM | None = None
    lm_weight: float = 0.0  # alpha; 0 decodes without the LM
    lm_bonus: float = 0.0  # beta, per character
    word_lm: WordNgram | None = None
    word_weight: float = 0.0  # lambda, relative to lm_weight; 0 decodes without the word LM

    def __post_init__(self) -> None:
        if self.beam < 0:
            raise RnnkitError(f"--beam must be 0 (greedy) or positive, got {self.beam}.")
        weights = (self.lm_weight, self.lm_bonus, self.word_weight)
        if not all(math.isfinite(w) for w in weights) or min(self.lm_weight, self.word_weight) < 0:
            raise RnnkitError(f"the LM weights must be finite and --lm-weight, --word-weight >= 0, got {weights}.")
        if self.beam == 0 and (self.lm_weight > 0 or self.lm_bonus or self.word_weight > 0):
            raise RnnkitError(LM_NEEDS_BEAM)  # greedy decoding reads no LM: refuse weights it would ignore
        if self.lm_weight > 0 and self.lm is None:
            raise RnnkitError("--lm-weight needs the run's character LM (char_lm.json), which this run lacks.")
        if self.word_weight > 0 and (self.word_lm is None or self.lm_weight <= 0):
            raise RnnkitError(
                "--word-weight needs the run's word LM (word_lm.json) and a character LM weight (--lm-weight)."
            )
        self._fused = self.lm
        if self.word_weight > 0:
            self._fused = WordFusion(self.lm, self.word_lm, self.word_weight)

    @property
    def options(self) -> dict:
        if self.lm is None or self.lm_weight <= 0:
            return {}
        return {"lm": self._fused, "alpha": self.lm_weight, "beta": self.lm_bonus}

    def __call__(self, log_probs: np.ndarray) -> str:
        if self.beam == 0:
            return single_spaced(greedy(log_probs, self.alphabet)[0])
        return single_spaced(prefix_beam_search(log_probs, self.alphabet, self.beam, **self.options))

    @property
    def _lm_kind(self) -> str:
        return "recurrent char LM" if isinstance(self.lm, RecurrentCharLM) else "char LM"

    def describe(self) -> str:
        if self.beam == 0:
            return "greedy"
        return (
            f"beam {self.beam}"
            + (f" + {self._lm_kind} (weight {self.lm_weight}, bonus {self.lm_bonus})" if self.options else "")
            + (f" + word {self.word_lm.order}-gram (weight {self.word_weight})" if self.word_weight > 0 else "")
        )


def single_spaced(text: str) -> str:
    """CTC can emit a space at either end or two in a row ("one one nine nine "): words one space apart."""
    return " ".join(text.split())


def words_of(model: SpeechRecognizer, text: str, log_probs: np.ndarray) -> list[dict]:
    spans = align(log_probs, model.encode_text(text)) if text else []
    return word_times(text, spans, model.frame_seconds) if spans is not None else []


@torch.no_grad()
def transcribe_audio(model: SpeechRecognizer, audio: np.ndarray, decoder: Decoder) -> dict:
    """One 16 kHz waveform -> text, per-word times and the seconds each stage took."""
    if len(audio) < FRAME_LENGTH:  # as read_audio refuses a file: no frame of features, nothing to transcribe
        raise RnnkitError(f"the audio is {len(audio) / SAMPLE_RATE * 1000:.1f} ms long; it needs at least 25 ms.")
    start = time.perf_counter()
    features = model.features(audio)
    log_probs, _ = model(features[None], torch.tensor([len(features)]))
    log_probs = log_probs[0].cpu().numpy()  # the decoder reads numpy, from a model on any device
    network = time.perf_counter()
    text = decoder(log_probs)
    decoded = time.perf_counter()
    return {
        "text": text,
        "duration": round(len(audio) / SAMPLE_RATE, 3),
        "seconds": {"network": round(network - start, 4), "decode": round(decoded - network, 4)},
        "words": words_of(model, text, log_probs),
    }


def transcribe_files(model: SpeechRecognizer, paths: list[Path | str], decoder: Decoder) -> dict:
    """Transcribe each file; unreadable ones are skipped and listed, never raised."""
    results, skipped = [], {}
    for path in paths:
        start = time.perf_counter()
        try:
            audio = read_audio(path)
        except RnnkitError as error:
            skipped[str(path)] = str(error)
            continue
        result = transcribe_audio(model, audio, decoder)
        total = time.perf_counter() - start
        result["seconds"]["total"] = round(total, 4)
        result["real_time_factor"] = round(total / max(result["duration"], 1e-9), 4)
        results.append({"path": str(path), **result})
    return {"results": results, "skipped": skipped}


def stream_file(model: SpeechRecognizer, path: Path | str, decoder: Decoder, *, chunk_seconds: float = 0.5,
                on_text=None) -> dict:  # fmt: skip
    """Read a file chunk by chunk (``soundfile.blocks``) and feed the streaming model; ``on_text(text)`` is
    called whenever the transcript grows.

    A stream cannot see its whole loudness in advance: each chunk is scaled by the gain that brings the
    audio so far to -20 dBFS RMS (the offline path normalises the whole file at once, so every chunk may be
    heard a little differently, the first most, and the text may differ from offline decoding)."""
    read_audio(path)  # refuse corrupt, empty or silent files with the same messages as offline
    info = sf.info(path)
    recognizer = StreamingRecognizer(model, beam=decoder.beam, **decoder.options)
    block = max(1, int(chunk_seconds * info.samplerate))
    resampler = StreamResampler(info.samplerate)  # chunk edges resampled as in the whole file: no clicks
    energy, count, shown, chunks = 0.0, 0, "", 0
    start = time.perf_counter()
    blocks = sf.blocks(str(path), blocksize=block, dtype="float32", always_2d=True)
    for audio in itertools.chain((resampler.feed(chunk.mean(axis=1)) for chunk in blocks), [resampler.finish()]):
        if not len(audio):
            continue
        energy, count = energy + float(np.sum(np.square(audio, dtype=np.float64))), count + len(audio)
        rms = (energy / max(count, 1)) ** 0.5
        gain = 10 ** (TARGET_DBFS / 20) / rms if rms > 1e-6 else 1.0
        text = single_spaced(recognizer.feed(audio * gain))  # as the final text, so the display does not jump
        chunks += 1
        if on_text is not None and text != shown:
            on_text(text)
            shown = text
    text = single_spaced(recognizer.finish())
    if on_text is not None and text != shown:
        on_text(text)
    total = time.perf_counter() - start
    return {
        "path": str(path),
        "text": text,
        "duration": round(info.duration, 3),
        "chunks": chunks,
        "seconds": {"total": round(total, 4)},
        "real_time_factor": round(total / max(info.duration, 1e-9), 4),
        "words": words_of(model, text, recognizer.all_log_probs()),
    }
