"""Translation end to end: sentence pairs -> hash split -> subword vocabularies -> Trainer -> scored model.

The CLI's ``rnnkit translate train|eval|run`` call these; a notebook can too::

    summary = train_translator(TranslateData(pairs="ding-de-en", direction="de-en"), {}, TrainConfig(), "runs/de-en")
    model = load_translator("runs/de-en")
    [result] = translate_texts(model, ["Es hat mir sehr gut gefallen."], beam_size=5, n_best=3)

The checkpoint kept is the one with the best greedy BLEU on the validation split (``bleu_gap`` = 100 - BLEU);
the test split is then scored once, greedy and with beam search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from rnnkit import checkpoint
from rnnkit.data.pairs import BUILT_IN, Pairs, PairSplits, load_pairs
from rnnkit.data.subwords import EOS, SubwordVocabulary
from rnnkit.errors import RnnkitError
from rnnkit.plots import training_curves
from rnnkit.tasks import load
from rnnkit.tasks.beam import translate_ids
from rnnkit.tasks.translate import PairBatches, Translator, TranslatorConfig
from rnnkit.tasks.translate_metrics import corpus_scores
from rnnkit.train import TrainConfig, Trainer, seed_everything


@dataclass(frozen=True)
class TranslateData:
    pairs: str = "ding-de-en"  # the built-in Ding pairs, or a TSV path (source<TAB>target)
    direction: str = "de-en"  # which Ding side is the source (a TSV: a label only)
    vocab_size: int = 4000  # subword ids per vocabulary, specials included (small data: 2-4k)
    shared_vocabulary: bool = True  # one BPE model for both languages
    phrases: bool = False  # add the Ding phrase entries to the training pairs
    min_phrase_words: int = 2  # ... those with at least this many words a side
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.min_phrase_words < 1:
            raise RnnkitError(f"batch_size and min_phrase_words must be at least 1, got {self.batch_size}.")
        if self.phrases and self.pairs != "ding-de-en":
            raise RnnkitError("--phrases adds Ding dictionary entries; it needs --pairs ding-de-en.")


def build_vocabularies(train: Pairs, options: TranslateData) -> tuple[SubwordVocabulary, SubwordVocabulary]:
    if options.shared_vocabulary:
        shared = SubwordVocabulary.fit(train.sources + train.targets, options.vocab_size)
        return shared, shared
    return SubwordVocabulary.fit(train.sources, options.vocab_size), SubwordVocabulary.fit(
        train.targets, options.vocab_size
    )


def encode_pairs(
    vocabularies, pairs: Pairs, batch_size: int, max_length: int, *, shuffle: bool, seed: int = 0, references=False
) -> tuple[PairBatches, int]:
    """Batches of ``pairs``, and how many were skipped for a side longer than ``max_length`` tokens."""
    source_ids = vocabularies[0].encode_batch(pairs.sources)
    target_ids = vocabularies[1].encode_batch(pairs.targets)
    keep = [i for i, (s, t) in enumerate(zip(source_ids, target_ids, strict=True)) if 0 < len(s) <= max_length
            and 0 < len(t) <= max_length]  # fmt: skip
    batches = PairBatches(
        [source_ids[i] for i in keep],
        [target_ids[i] for i in keep],
        batch_size,
        shuffle=shuffle,
        seed=seed,
        references=[pairs.targets[i] for i in keep] if references else None,
    )
    return batches, len(pairs) - len(keep)


def load_translator(directory: Path | str) -> Translator:
    """:func:`rnnkit.load` plus the vocabularies from ``config.json``."""
    return attach_vocabularies(load(directory, task="translate"))


def attach_vocabularies(model: Translator) -> Translator:
    """Attach the (source, target) vocabularies that ``model.run_config`` (its ``config.json``) holds."""
    configs = getattr(model, "run_config", {}).get("vocabularies")
    if configs is None:
        raise RnnkitError("this translator has no vocabularies: load its run with load_translator(DIR).")
    model.vocabularies = (SubwordVocabulary.from_config(configs[0]), SubwordVocabulary.from_config(configs[1]))
    return model


def train_translator(
    options: TranslateData,
    model_options: dict,
    train_config: TrainConfig,
    out: Path | str,
    *,
    resume: bool = False,
    beam_size: int = 5,
    alpha: float = 1.0,
    splits: PairSplits | None = None,
) -> dict:
    """Train, keep the best validation BLEU, score the test split greedy and with beam search; returns the
    summary (also in ``out/metrics.json``). ``splits`` overrides ``options.pairs`` (tests, benches)."""
    out = Path(out)
    splits = splits or load_pairs(options.pairs, options.direction, phrases=options.phrases,
                                  min_phrase_words=options.min_phrase_words)  # fmt: skip
    if not len(splits.train):
        raise RnnkitError("the training split is empty; give more pairs.")
    train_pairs = Pairs(splits.train.sources + splits.extra.sources, splits.train.targets + splits.extra.targets)
    resumed = checkpoint.resumed_config(out, "translate") if resume else {}
    if resumed:
        vocabularies = tuple(SubwordVocabulary.from_config(c) for c in resumed["vocabularies"])
    else:
        vocabularies = build_vocabularies(train_pairs, options)
    seed_everything(train_config.seed)
    if resumed:  # --resume: the run's own model
        model = Translator.from_config(resumed["model"])
    else:
        sizes = {"source_vocab_size": vocabularies[0].vocab_size, "target_vocab_size": vocabularies[1].vocab_size}
        model = Translator(TranslatorConfig(**sizes, **model_options))
    config = model.config
    model.vocabularies = vocabularies
    data = asdict(options)
    if options.pairs not in BUILT_IN and Path(options.pairs).is_file():
        # as typed, a relative path would name another file (or none) when `translate eval` runs elsewhere
        data["pairs"] = str(Path(options.pairs).resolve())
    run_config = {
        "task": "translate",
        "model": asdict(config),
        "vocabularies": [v.to_config() for v in vocabularies],
        "data": data,
        "split": splits.split,
    }
    batch_size = options.batch_size
    train, skipped = encode_pairs(vocabularies, train_pairs, batch_size, config.max_length, shuffle=True,
                                  seed=train_config.seed)  # fmt: skip
    valid, _ = encode_pairs(vocabularies, splits.valid, 64, config.max_length, shuffle=False,
                            references=True)  # fmt: skip
    monitor = "bleu_gap" if len(splits.valid) else "loss"
    trainer = Trainer(model, replace(train_config, monitor=monitor), out, train, valid if len(splits.valid) else None,
                      run_config=run_config)  # fmt: skip
    summary = trainer.fit(resume=resume)
    if summary["stopped_by"] == "interrupted" or not trainer.is_main:  # under torchrun, rank 0 reports
        return summary
    best = load_translator(out).to(trainer.device)
    summary["test"] = {
        "greedy": score_pairs(best, splits.test, beam_size=1, quiet=train_config.quiet),
        f"beam{beam_size}": score_pairs(best, splits.test, beam_size=beam_size, alpha=alpha, quiet=train_config.quiet),
    }
    summary["split"] = splits.split
    summary["sizes"] = {"train": len(splits.train), "extra": len(splits.extra), "skipped_too_long": skipped,
                        "valid": len(splits.valid), "test": len(splits.test)}  # fmt: skip
    summary["parameters"] = sum(p.numel() for p in best.parameters())
    checkpoint.write_json(out / "metrics.json", summary)
    if (out / "log.csv").exists():
        training_curves(out / "log.csv", out / "loss.png", title=f"{options.direction} translator")
    return summary


def translate_texts(
    model: Translator,
    texts: list[str],
    *,
    beam_size: int = 5,
    n_best: int = 1,
    alpha: float = 1.0,
    beta: float = 0.0,
    quiet: bool = True,
    with_attention: bool = False,
) -> list[dict]:
    """Per text: ``{"source", "translations": [{"text", "score", "log_prob"}], "truncated"}``, best first.
    An empty text has no translations; one over ``max_length`` subwords is cut there (and says so).
    ``with_attention`` adds each translation's ``attention`` (T, S) and subword ``source_pieces``/``pieces``.
    A model from :func:`rnnkit.load` gets its vocabularies from its ``config.json`` here."""
    if model.vocabularies is None:
        attach_vocabularies(model)
    source_vocabulary, target_vocabulary = model.vocabularies
    source_ids = source_vocabulary.encode_batch([t.strip() for t in texts])
    limit = model.config.max_length
    decoded = translate_ids(model, source_ids, beam_size=beam_size, n_best=n_best, alpha=alpha, beta=beta,
                            quiet=quiet)  # fmt: skip
    results = []
    for text, ids, hypotheses in zip(texts, source_ids, decoded, strict=True):
        translations = [] if not ids else [
            {"text": target_vocabulary.decode(h.tokens), "score": h.score, "log_prob": h.log_prob}
            for h in hypotheses
        ]  # fmt: skip
        result = {"source": text, "translations": translations, "truncated": len(ids) > limit}
        if with_attention and ids:
            result["source_pieces"] = source_vocabulary.pieces(ids[:limit])
            for translation, h in zip(translations, hypotheses, strict=True):
                translation["attention"] = h.attention.tolist()
                translation["pieces"] = target_vocabulary.pieces([*h.tokens, EOS])[: len(h.attention)]
        results.append(result)
    return results


def score_pairs(
    model: Translator, pairs: Pairs, *, beam_size: int = 5, alpha: float = 1.0, beta: float = 0.0, quiet: bool = True
) -> dict:
    """sacrebleu BLEU and chrF of the model's translations of ``pairs.sources`` against ``pairs.targets``."""
    results = translate_texts(model, pairs.sources, beam_size=beam_size, alpha=alpha, beta=beta, quiet=quiet)
    hypotheses = [r["translations"][0]["text"] if r["translations"] else "" for r in results]
    scores = corpus_scores(hypotheses, pairs.targets)
    scores["hypotheses"] = hypotheses
    return scores


def evaluate_translator(directory: Path | str, pairs: Pairs | None = None, *, beam_size: int = 5,
                        alpha: float = 1.0, quiet: bool = True) -> dict:  # fmt: skip
    """Score a trained translator on ``pairs`` (default: the test split of the data it was trained on)."""
    model = load_translator(directory)
    if pairs is None:
        data = model.run_config["data"]
        if data["pairs"] not in BUILT_IN and not Path(data["pairs"]).is_file():
            raise RnnkitError(f"the run's training pairs {data['pairs']} are gone; give --pairs FILE.")
        pairs = load_pairs(data["pairs"], data["direction"]).test
    with torch.no_grad():  # and the caller's setting back after, whatever it was
        return score_pairs(model, pairs, beam_size=beam_size, alpha=alpha, quiet=quiet)
