"""German <-> English translation on the Ding sentence pairs: rnnkit's attention LSTM against two baselines.

Everything in one run, on the same hash split (sha256 of the German side mod 100: test < 5, valid 5-9, train
otherwise; :mod:`rnnkit.data.pairs`):

- baselines: a translation memory (target of the nearest training source by character n-gram TF-IDF) and
  word-by-word translation with the Ding file's own dictionary entries, both directions;
- rnnkit: a bidirectional LSTM encoder and an LSTM decoder with attention and input feeding (shared 3k BPE
  vocabulary, tied embeddings, dropout 0.3, label smoothing 0.1), trained under a wall-clock budget per
  direction, the checkpoint with the best greedy validation BLEU kept; the beam's length-penalty alpha is
  picked on the validation split; the test split decoded greedily and with beam 5;
- sacrebleu BLEU and chrF on detokenised text, with signatures; the learning curve (validation BLEU against
  training time); translation samples, the best and the worst by sentence BLEU.

Writes bench/results/translate.json (``--quick``: translate-quick.json, a tiny budget that only checks the
script runs). One torch thread by default (``--threads``); `make bench-translate` runs both cores, as the
results were measured on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from sacrebleu.metrics import BLEU

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe
from rnnkit.data.debian import read_ding
from rnnkit.data.pairs import Pairs, PairSplits, load_pairs
from rnnkit.tasks.translate_baselines import TranslationMemory, WordByWord, word_dictionary
from rnnkit.tasks.translate_metrics import corpus_scores
from rnnkit.tasks.translate_training import TranslateData, load_translator, score_pairs, train_translator
from rnnkit.train import TrainConfig

RESULTS = Path(__file__).parent / "results"
MODEL = {
    "cell": "lstm",
    "embedding_size": 256,
    "hidden_size": 256,
    "num_layers": 1,
    "attention": "general",
    "dropout": 0.3,
    "label_smoothing": 0.1,
    "tie_embeddings": True,
}
DATA = {"vocab_size": 3000, "shared_vocabulary": True, "batch_size": 64}
TRAIN = {"learning_rate": 2e-3, "epochs": 100, "eval_every": 0, "clip_norm": 1.0}  # validates once per epoch
# the beam's length penalty alpha (GNMT), picked on the validation split; no coverage penalty (beta = 0)
PENALTIES = [(alpha, 0.0) for alpha in (0.0, 0.6, 1.0)]
BEAM = 5


def baselines(splits: PairSplits, dictionary: dict[str, str]) -> dict:
    start = time.perf_counter()
    memory = TranslationMemory(splits.train).translate(splits.test.sources)
    tm = {k: v for k, v in corpus_scores(memory, splits.test.targets).items() if k != "bleu_detail"}
    word = WordByWord(dictionary).translate(splits.test.sources)
    wbw = {k: v for k, v in corpus_scores(word, splits.test.targets).items() if k != "bleu_detail"}
    wbw["dictionary_words"] = len(dictionary)
    return {"translation_memory": tm, "word_by_word": wbw, "seconds": round(time.perf_counter() - start, 1)}


def samples(sources: list[str], hypotheses: list[str], references: list[str], count: int = 6) -> dict:
    """The ``count`` best and worst test translations by sentence BLEU (sentences of 5+ words)."""
    bleu = BLEU(effective_order=True)
    scored = [
        (bleu.sentence_score(h, [r]).score, s, h, r)
        for s, h, r in zip(sources, hypotheses, references, strict=True)
        if len(r.split()) >= 5
    ]
    scored.sort(key=lambda x: -x[0])

    def rows(items):
        return [{"source": s, "translation": h, "reference": r, "sentence_bleu": round(b, 1)} for b, s, h, r in items]

    return {"best": rows(scored[:count]), "worst": rows(scored[-count:])}


def run_direction(
    direction: str, minutes: float, *, quick: bool, seed: int, keep: str = "", phrases: bool = False,
    rescore: bool = False,
) -> dict:  # fmt: skip
    splits = load_pairs("ding-de-en", direction, phrases=phrases)
    dictionary = word_dictionary(read_ding().phrases, reverse=direction == "en-de")
    result = {
        "split": splits.split,
        "sizes": {part: len(getattr(splits, part)) for part in ("train", "valid", "test")},
        "baselines": baselines(splits, dictionary),
    }
    print(f"{direction} baselines: {json.dumps(result['baselines'])}", flush=True)
    if quick:
        splits = PairSplits(
            Pairs(splits.train.sources[:300], splits.train.targets[:300]),
            Pairs(splits.valid.sources[:40], splits.valid.targets[:40]),
            Pairs(splits.test.sources[:40], splits.test.targets[:40]),
            splits.split,
        )
    if phrases:  # the baselines read splits.train (sentence pairs only); the network also learns splits.extra
        result["sizes"]["extra_phrase_pairs"] = len(splits.extra)
    train = {**TRAIN, "max_minutes": minutes}
    config = TrainConfig(**train, seed=seed, device="cpu", quiet=True)
    options = TranslateData(pairs="ding-de-en", direction=direction, phrases=phrases, **DATA)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(keep) / direction if keep else Path(scratch)
        if rescore:  # a kept run: decode again (new penalties), no training
            summary = json.loads((out / "metrics.json").read_text())
        else:
            summary = train_translator(options, MODEL, config, out, beam_size=BEAM, splits=splits)
        model = load_translator(out)
        valid_bleu = {
            f"{a},{b}": score_pairs(model, splits.valid, beam_size=BEAM, alpha=a, beta=b)["bleu"] for a, b in PENALTIES
        }
        alpha, beta = max(PENALTIES, key=lambda p: valid_bleu[f"{p[0]},{p[1]}"])
        beam = score_pairs(model, splits.test, beam_size=BEAM, alpha=alpha, beta=beta)
    greedy = summary["test"]["greedy"]
    drop = ("hypotheses", "bleu_detail")
    result["rnnkit"] = {
        "model": MODEL,
        "data": {**DATA, "phrases": phrases},
        "train": train,
        "greedy": {k: v for k, v in greedy.items() if k not in drop},
        "beam": {**{k: v for k, v in beam.items() if k not in drop}, "beam_size": BEAM, "alpha": alpha, "beta": beta},
        "beam_alpha1_before_tuning": {k: v for k, v in summary["test"][f"beam{BEAM}"].items() if k not in drop},
        "valid_bleu_beam_by_alpha_beta": valid_bleu,
        "beam_minus_greedy_bleu": round(beam["bleu"] - greedy["bleu"], 2),
        "curve": [
            {k: row[k] for k in ("step", "epoch", "elapsed_s", "train_loss", "valid_loss", "valid_bleu", "valid_chrf")}
            for row in summary["history"]
        ],
        "best_valid_bleu": None if summary["best_valid"] is None else round(100 - summary["best_valid"], 2),
        "stopped_by": summary["stopped_by"],
        "steps": summary["steps"],
        "epochs_completed": summary["epochs_completed"],
        "train_seconds": summary["train_seconds"],
        "seconds": round(time.perf_counter() - start, 1),
        "parameters": summary["parameters"],
        "samples": samples(splits.test.sources, beam["hypotheses"], splits.test.targets),
    }
    tm_bleu = result["baselines"]["translation_memory"]["bleu"]
    result["bleu_over_translation_memory"] = round(beam["bleu"] / tm_bleu, 2) if tm_bleu else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget: only check that the script runs")
    parser.add_argument("--minutes-de-en", type=float, default=55.0, help="training budget, de->en")
    parser.add_argument("--minutes-en-de", type=float, default=10.0, help="training budget, en->de")
    parser.add_argument("--only", choices=("de-en", "en-de"), help="run one direction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default="", help="keep each direction's run directory under this folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (see below)")
    parser.add_argument("--phrases", action="store_true", help="add the Ding phrase entries to the training pairs")
    parser.add_argument("--rescore", action="store_true", help="decode the runs kept in --keep again, no training")
    parser.add_argument("--results", default="", help="write the JSON here (default bench/results/translate.json)")
    args = parser.parse_args()
    if args.rescore and not args.keep:
        parser.error("--rescore decodes the runs kept by an earlier --keep DIR: give that --keep DIR")
    # 1 by default: on a 2-core machine shared with other jobs, 2 threads stall at every op's barrier
    # (measured by the lead: an LSTM + softmax step 1.0 s at 1 thread, 1.8-2.4 s at 2 beside niced jobs)
    torch.set_num_threads(args.threads)
    path = (
        Path(args.results) if args.results else RESULTS / ("translate-quick.json" if args.quick else "translate.json")
    )
    report = json.loads(path.read_text()) if args.only and path.exists() else {}
    report.update(machine=describe(), threads=torch.get_num_threads())
    report.setdefault("directions", {})
    minutes = {"de-en": args.minutes_de_en, "en-de": args.minutes_en_de}
    for direction in ("de-en", "en-de"):
        if args.only and direction != args.only:
            continue
        result = run_direction(
            direction,
            0.3 if args.quick else minutes[direction],
            quick=args.quick,
            seed=args.seed,
            keep=args.keep,
            phrases=args.phrases,
            rescore=args.rescore,
        )
        report["directions"][direction] = result
        ours, base = result["rnnkit"], result["baselines"]
        print(
            f"{direction}: beam {ours['beam']['bleu']} BLEU / {ours['beam']['chrf']} chrF, greedy "
            f"{ours['greedy']['bleu']}; translation memory {base['translation_memory']['bleu']}, word by word "
            f"{base['word_by_word']['bleu']}; {ours['beam']['bleu_signature']}",
            flush=True,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
