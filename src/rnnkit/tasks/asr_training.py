"""Speech recognition end to end: manifest -> features -> Trainer -> recogniser + character LM -> WER/CER.

The CLI's ``rnnkit asr train|eval`` call these; a notebook can too::

    summary = train_asr(AsrData(manifest="corpora/grammar"), {"hidden_size": 256}, TrainConfig(epochs=20),
                        "runs/asr")
    report = evaluate_asr("runs/asr", "corpora/grammar", split="test", decoders={"beam": 16})

Features are computed once (log-mel of every readable file; unreadable ones are skipped and counted) and
kept in memory as float16. The best checkpoint is the one with the lowest validation CER (greedy).
A character 6-gram and a word trigram are fitted on the training transcripts, plus any text-only sentences
given as ``lm_text`` (text is cheaper than transcribed audio; keep the test sentences out of it), into
``char_lm.json`` and ``word_lm.json``. After
training the test split is scored greedy, overall and per synthesiser (``engine``); :func:`evaluate_asr` (``rnnkit
asr eval``) adds beam search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from rnnkit import checkpoint
from rnnkit.data.audio import read_audio
from rnnkit.data.speech_corpus import read_manifest
from rnnkit.data.speech_texts import normalise_text
from rnnkit.errors import RnnkitError
from rnnkit.plots import training_curves
from rnnkit.tasks import load
from rnnkit.tasks.asr import SpeechBatches, SpeechRecognizer, SpeechRecognizerConfig, error_rates
from rnnkit.tasks.asr_inference import LM_FILE, WORD_LM_FILE, Decoder, load_fusion_lm, load_word_lm
from rnnkit.tasks.char_ngram import CharNgram
from rnnkit.tasks.word_ngram import WordNgram
from rnnkit.train import TrainConfig, Trainer, seed_everything

LM_ORDER = 6
WORD_LM_ORDER = 3
# Kneser-Ney reads the fortunes validation transcripts at 2.01 bits/char against Witten-Bell's 2.09 (and its
# word trigram at perplexity 362 against 455), but decodes no better: validation CER 20.6% against 20.4% with
# both LMs at the same weights (session-17 model), 20.5% for a Kneser-Ney 8-gram
LM_SMOOTHING = "witten-bell"


@dataclass(frozen=True)
class AsrData:
    manifest: str  # a corpus directory (with manifest.csv) or a manifest CSV with a split column
    batch_size: int = 32
    augment: bool = True  # SpecAugment (and speed perturbation and frequency warp, if > 0) on training batches
    speed: float = 0.0  # speed perturbation: each training utterance sped up by a factor in [1 - speed, 1 + speed]
    warp: float = 0.0  # frequency warp (VTLP): each training utterance's frequencies scaled by [1 - warp, 1 + warp]
    max_train: int = 0  # use at most this many training utterances (0: all)
    # engine balance b: each manifest engine (espeak-ng, flite, ...) is drawn in training with probability
    # proportional to n^(1 - b), n its training utterances (0: as they come; 1: every engine equally often)
    balance: float = 0.0
    lm_text: str = ""  # a UTF-8 file of extra sentences (one a line) for the character LM, beside the transcripts

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise RnnkitError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.max_train < 0:  # iloc[:-n] would silently drop the last n utterances instead
            raise RnnkitError(f"--max-train must be 0 (all) or positive, got {self.max_train}.")
        if not 0 <= self.speed < 0.5:
            raise RnnkitError(f"--speed-perturb must be in [0, 0.5), got {self.speed}.")
        if not 0 <= self.warp < 0.5:
            raise RnnkitError(f"--freq-warp must be in [0, 0.5), got {self.warp}.")
        if not 0 <= self.balance <= 1:
            raise RnnkitError(f"--balance-engines must be in [0, 1], got {self.balance}.")


@dataclass
class Features:
    raw: list[torch.Tensor]  # unnormalised log-mel (L, F) per readable utterance
    texts: list[str]
    rows: pd.DataFrame  # the manifest rows they came from
    skipped: dict[str, str]  # path -> why it could not be read


def load_features(
    model: SpeechRecognizer, table: pd.DataFrame, *, quiet: bool = False, desc: str = "features"
) -> Features:
    """Log-mel of every readable file of ``table``; unreadable files are skipped with the reason."""
    raw, keep, skipped = [], [], {}
    for i, path in enumerate(tqdm(table["path"], desc=desc, disable=True if quiet else None, leave=False)):
        try:
            raw.append(model.raw_features(read_audio(path)))
            keep.append(i)
        except RnnkitError as error:
            skipped[path] = str(error)
    rows = table.iloc[keep].reset_index(drop=True)
    return Features(raw, list(rows["text"]), rows, skipped)


def engine_weights(rows: pd.DataFrame, balance: float) -> torch.Tensor | None:
    """Per-utterance sampling weights that draw each ``engine`` with probability proportional to
    :math:`n^{1 - b}` (:math:`n` its utterances): :math:`w = n^{-b}`. None when ``b`` is 0 or there is no
    engine column."""
    if balance == 0 or "engine" not in rows.columns:
        return None
    sizes = rows["engine"].map(rows["engine"].value_counts())
    return torch.tensor(sizes.to_numpy(dtype="float64") ** -balance)


def make_batches(model: SpeechRecognizer, features: Features, batch_size: int, *, shuffle: bool, seed: int = 0,
                 augment: bool = False, speed: float = 0.0, warp: float = 0.0,
                 balance: float = 0.0) -> SpeechBatches:  # fmt: skip
    normalised = [model.normalise(f).half() for f in features.raw]  # half: 5,000 clips of 3 s in ~250 MB
    targets = [model.encode_text(text) for text in features.texts]
    return SpeechBatches(
        normalised,
        targets,
        features.texts,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        augment=augment,
        speed=speed,
        warp=warp,
        weights=engine_weights(features.rows, balance) if shuffle else None,
    )


def check_texts(texts: list[str], alphabet: str, where: str) -> None:
    for text in texts:
        bad = sorted({c for c in text if c not in alphabet})
        if bad or not text.strip():
            raise RnnkitError(
                f"{where} has the transcript {text!r}, with characters outside a-z, space and apostrophe "
                f"({''.join(bad)!r}) or no letters; normalise it (rnnkit.data.speech_texts.normalise_text)."
            )


def read_lm_text(path: str) -> list[str]:
    """The non-empty lines of ``path`` (none for ""), normalised to the recogniser's alphabet."""
    if not path:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise RnnkitError(f"cannot read the LM text {path}: {error}") from None
    return [text for text in map(normalise_text, lines) if text]


def fit_ngram_lms(run: Path | str, sentences: list[str], alphabet: str) -> None:
    """Fit the decoder's character n-gram and word trigram on ``sentences`` and write them into the run
    directory."""
    Path(run).mkdir(parents=True, exist_ok=True)
    characters = CharNgram.fit(sentences, alphabet, LM_ORDER, LM_SMOOTHING)
    checkpoint.write_json(Path(run) / LM_FILE, characters.to_config())
    checkpoint.write_json(Path(run) / WORD_LM_FILE, WordNgram.fit(sentences, WORD_LM_ORDER, LM_SMOOTHING).to_config())


def train_asr(options: AsrData, model_options: dict, train_config: TrainConfig, out: Path | str, *,
              resume: bool = False) -> dict:  # fmt: skip
    """Train on the manifest's train split (valid picks the best checkpoint), fit the character LM, score
    the test split; returns the summary (also ``out/metrics.json``)."""
    out = Path(out)
    resumed = checkpoint.resumed_config(out, "asr") if resume else {}
    config = SpeechRecognizerConfig(**(resumed["model"] if resumed else model_options))  # --resume: the run's own
    lm_text = read_lm_text(options.lm_text)  # a bad file stops here, before minutes of features
    seed_everything(train_config.seed)  # the initial weights too, not only what the Trainer draws
    model = SpeechRecognizer(config)
    quiet = train_config.quiet
    train_table = read_manifest(options.manifest, "train")
    if options.max_train:
        train_table = train_table.iloc[: options.max_train]
    try:
        valid_table = read_manifest(options.manifest, "valid")
    except RnnkitError:
        valid_table = train_table.iloc[:0]  # a tiny corpus may have no validation rows: keep the last weights
    check_texts(list(train_table["text"]), config.alphabet, "the training split")
    check_texts(list(valid_table["text"]), config.alphabet, "the validation split")
    train_features = load_features(model, train_table, quiet=quiet, desc="train features")
    valid_features = load_features(model, valid_table, quiet=quiet, desc="valid features")
    if not train_features.raw:
        raise RnnkitError(f"no training file of {options.manifest} could be read; check the WAVs.")
    if config.normalisation == "global":
        model.fit_normalisation(train_features.raw)
    run_config = {"task": "asr", "model": asdict(config), "data": asdict(options)}
    train = make_batches(model, train_features, options.batch_size, shuffle=True, seed=train_config.seed,
                         augment=options.augment, speed=options.speed, warp=options.warp,
                         balance=options.balance)  # fmt: skip
    valid = make_batches(model, valid_features, 2 * options.batch_size, shuffle=False) if valid_features.raw else None
    trainer = Trainer(model, replace(train_config, monitor="cer"), out, train, valid, run_config=run_config)
    # the LM needs only text: written first, so even an interrupted run can use it
    if trainer.is_main:  # one writer under torchrun
        fit_ngram_lms(out, train_features.texts + lm_text, config.alphabet)
    summary = trainer.fit(resume=resume)
    if summary["stopped_by"] == "interrupted" or not trainer.is_main:  # under torchrun, rank 0 reports
        return summary
    summary["data"] = {
        "train": len(train_features.raw), "valid": len(valid_features.raw),
        "skipped": len(train_features.skipped) + len(valid_features.skipped),
        "train_hours": round(float(train_features.rows["duration"].sum()) / 3600, 3)
        if "duration" in train_features.rows else None,
    }  # fmt: skip
    summary["parameters"] = sum(p.numel() for p in model.parameters())
    try:
        test_table = read_manifest(options.manifest, "test")
    except RnnkitError:
        test_table = None  # a manifest without a test split: nothing to score
    if test_table is not None:
        summary["test"] = evaluate_asr(out, test_table, decoders={"greedy": {"beam": 0}}, quiet=quiet)
    checkpoint.write_json(out / "metrics.json", summary)
    if (out / "log.csv").exists():
        training_curves(out / "log.csv", out / "loss.png", title=f"{config.cell} CTC recogniser")
    return summary


DEFAULT_DECODERS = {"greedy": {"beam": 0}, "beam": {"beam": 16}}


def evaluate_asr(run: Path | str, manifest: Path | str | pd.DataFrame, *, split: str = "test",
                 decoders: dict[str, dict] | None = None, quiet: bool = False,
                 lm: Path | str | None = None) -> dict:  # fmt: skip
    """WER and CER (jiwer) of a run on a manifest's split, for each named decoder (``{"beam": 16,
    "lm_weight": 0.5, "lm_bonus": 1.0, "word_weight": 0.5}``), overall and per ``engine`` (``by_engine``) when
    the manifest has that column; unreadable files are skipped and counted. ``lm``: an rnnkit character LM
    run to fuse instead of the run's n-gram (the run's word trigram joins either)."""
    model = load(run, task="asr")
    lm = load_fusion_lm(run, model.config.alphabet, lm)  # a wrong --lm stops here, before minutes of features
    word_lm = load_word_lm(run)
    table = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest, split)
    check_texts(list(table["text"]), model.config.alphabet, "the evaluation manifest")
    features = load_features(model, table, quiet=quiet, desc="eval features")
    if not features.raw:
        raise RnnkitError(
            f"none of the {len(table)} files could be read; first problem: {next(iter(features.skipped.values()))}"
        )
    data = make_batches(model, features, 32, shuffle=False)
    log_probs = model.log_probs(data)
    report = {"n": len(features.raw), "skipped": len(features.skipped), "decoders": {}}
    if features.skipped:
        report["skipped_examples"] = dict(list(features.skipped.items())[:3])
    for name, settings in (decoders or DEFAULT_DECODERS).items():
        decoder = Decoder(model.config.alphabet, lm=lm, word_lm=word_lm, **settings)
        hypotheses = [decoder(lp) for lp in tqdm(log_probs, desc=name, disable=True if quiet else None, leave=False)]
        entry = {"decoder": decoder.describe(), **error_rates(features.texts, hypotheses)}
        if "engine" in features.rows:
            entry["by_engine"] = {
                engine: error_rates([features.texts[i] for i in index], [hypotheses[i] for i in index])
                for engine, index in features.rows.groupby("engine").indices.items()
            }
        entry["examples"] = [
            {"reference": r, "hypothesis": h} for r, h in list(zip(features.texts, hypotheses, strict=True))[:5]
        ]
        report["decoders"][name] = entry
    return report
