"""Language modelling end to end: corpus -> tokenizer -> streams -> Trainer -> held-out metrics.

The CLI's ``rnnkit lm train|eval`` call these; a notebook can too::

    summary = train_language_model(LanguageModelData("shakespeare"), {"hidden_size": 256},
                                   TrainConfig(max_minutes=5), "runs/char-lstm")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from rnnkit import checkpoint
from rnnkit.data.corpora import TextSplits, text_file
from rnnkit.data.plays import shakespeare
from rnnkit.data.sentiment import GLOVE_SIZE, glove_vectors, vector_table
from rnnkit.data.text import CharTokenizer, SubwordTokenizer, Tokenizer, WordTokenizer, tokenizer_from_config
from rnnkit.data.token_file import TokenFile, is_token_file
from rnnkit.data.wikitext import wikitext2
from rnnkit.errors import RnnkitError
from rnnkit.plots import training_curves
from rnnkit.tasks import load
from rnnkit.tasks.dynamic_eval import dynamic_evaluate
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig, TokenStream
from rnnkit.tasks.report import sample_text, write_report
from rnnkit.train import TrainConfig, Trainer, seed_everything

CORPORA = {"shakespeare": shakespeare, "wikitext2": wikitext2}
TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer, "subword": SubwordTokenizer}
DEFAULT_TOKENIZER = {"shakespeare": "char", "wikitext2": "word"}
VECTORS = ("random", "glove")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class LanguageModelData:
    data: str = "shakespeare"  # a built-in corpus name, a UTF-8 text file or a token file (rnnkit data tokenize)
    tokenizer: str = ""  # char | word | subword; "" picks the corpus' usual one (char for files)
    batch_size: int = 32  # parallel streams
    window: int = 128  # steps per truncated-BPTT window
    eval_batch_size: int = 8
    subword_vocab_size: int = 4096
    # the input embedding's start: "random", or "glove" (GloVe 6B 50d where the word has a vector; word
    # tokenizer and embedding size 50): the LM then learns from a corpus too small to learn word meaning alone
    vectors: str = "random"

    def __post_init__(self) -> None:
        if self.tokenizer and self.tokenizer not in TOKENIZERS:
            raise RnnkitError(f"Unknown tokenizer {self.tokenizer!r}. Select from {', '.join(TOKENIZERS)}.")
        if self.vectors not in VECTORS:
            raise RnnkitError(f"Unknown vectors {self.vectors!r}. Select from {', '.join(VECTORS)}.")

    @property
    def tokenizer_kind(self) -> str:
        return self.tokenizer or DEFAULT_TOKENIZER.get(self.data, "char")


def load_corpus(data: str) -> TextSplits:
    """A built-in corpus by name, or a user's text file split into train / valid / test."""
    if data in CORPORA:
        return CORPORA[data]()
    if not Path(data).exists():
        raise RnnkitError(f"--data {data!r} is neither a built-in corpus ({', '.join(CORPORA)}) nor an existing file.")
    return text_file(data)


def token_streams(options: LanguageModelData, saved_tokenizer: dict | None = None):
    """The tokenizer and the train / valid / test data: read window by window from a token file (the corpus is
    never in memory), or tokenized in memory from a corpus or text file (with ``saved_tokenizer``, a resumed
    run's config, that run's vocabulary, even if the corpus file changed since)."""
    if is_token_file(options.data):
        corpus = TokenFile(options.data)
        kind = corpus.header["tokenizer"]["kind"]
        # the file's ids are its tokenizer's: a --tokenizer of another kind would only mislabel the run
        if options.tokenizer and options.tokenizer != kind:
            raise RnnkitError(
                f"{options.data} holds {kind} tokens, not {options.tokenizer}; drop --tokenizer, or tokenize "
                f"the text again with `rnnkit data tokenize --tokenizer {options.tokenizer}`."
            )
        rows = {"train": options.batch_size}
        for name in ("valid", "test"):
            start, stop = corpus.split(name)
            rows[name] = eval_rows(options, stop - start)
        return corpus.tokenizer, *(corpus.windows(split, size, options.window) for split, size in rows.items())
    splits = load_corpus(options.data)
    if saved_tokenizer is not None:
        tokenizer = tokenizer_from_config(saved_tokenizer)
    else:
        tokenizer = fit_tokenizer(options.tokenizer_kind, splits.train, options)
    valid, test = tokenizer.encode(splits.valid), tokenizer.encode(splits.test)
    for name, ids in (("valid", valid), ("test", test)):
        # checked here: batchify's own message names the evaluation rows (1), not --batch-size, and asks for
        # a smaller batch size, which cannot help
        if len(ids) < 2:
            raise RnnkitError(
                f"the {name} part of {options.data} is {len(ids)} {tokenizer.kind} token(s) long "
                f"({getattr(splits, name)!r}); scoring needs at least 2: give a longer file."
            )
    return (
        tokenizer,
        TokenStream(tokenizer.encode(splits.train), options.batch_size, options.window),
        TokenStream(valid, eval_rows(options, len(valid)), options.window),
        TokenStream(test, eval_rows(options, len(test)), options.window),
    )


def eval_rows(options: LanguageModelData, num_tokens: int) -> int:
    """Rows of a held-out split: ``eval_batch_size``, or fewer when the split is too short for them (a row needs
    an input and its target). No flag sets ``eval_batch_size``, so a small file must not fail on it."""
    return max(1, min(options.eval_batch_size, num_tokens // 2))


def fit_tokenizer(kind: str, text: str, options: LanguageModelData) -> Tokenizer:
    if kind == "subword":
        return SubwordTokenizer.fit(text, vocab_size=options.subword_vocab_size)
    return TOKENIZERS[kind].fit(text)


def train_language_model(
    options: LanguageModelData, model_options: dict, train_config: TrainConfig, out: Path | str, *, resume: bool = False
) -> dict:
    """Train, then score the best checkpoint on the held-out test split; returns the run's summary."""
    out = Path(out)
    saved = checkpoint.resumed_config(out, "lm") if resume else {}
    tokenizer, train, valid, test = token_streams(options, saved.get("tokenizer"))
    seed_everything(train_config.seed)  # the initial weights too, not only what the Trainer draws
    if saved:  # --resume: the run's own model
        model = LanguageModel.from_config(saved["model"])
    else:
        model = LanguageModel(LanguageModelConfig(vocab_size=tokenizer.vocab_size, **model_options))
    config = model.config
    if options.vectors == "glove" and not saved:
        load_glove(model, tokenizer)
    run_config = {"task": "lm", "model": asdict(config), "tokenizer": tokenizer.to_config(), "data": asdict(options)}
    trainer = Trainer(model, train_config, out, train, valid, run_config=run_config)
    summary = trainer.fit(resume=resume)
    if summary["stopped_by"] == "interrupted" or not trainer.is_main:  # under torchrun, rank 0 reports
        return summary
    best = load(out).to(trainer.device)
    summary["test"] = {**best.evaluate(test), "unit": tokenizer.kind}  # the unit beside the figures, as lm eval has it
    summary["unit"] = tokenizer.kind
    summary["parameters"] = sum(p.numel() for p in best.parameters())
    checkpoint.write_json(out / "metrics.json", summary)
    if (out / "log.csv").exists():
        training_curves(out / "log.csv", out / "loss.png", title=f"{config.cell} on {options.data}")
    write_report(out, text=sample_text(first_window_text(tokenizer, valid)))
    return summary


def load_glove(model: LanguageModel, tokenizer: Tokenizer) -> int:
    """Copy GloVe 6B 50d vectors into the input embedding's rows of the words GloVe knows; returns how many."""
    # every check before the vectors are read (the archive may have to be fetched first)
    if not isinstance(tokenizer, WordTokenizer):
        raise RnnkitError("GloVe vectors are for words: use --tokenizer word with --vectors glove.")
    if not isinstance(model.embedding, nn.Embedding):
        raise RnnkitError("--vectors glove needs an embedding table: add --no-tie or drop --adaptive-cutoffs.")
    if model.config.embedding_size != GLOVE_SIZE:
        raise RnnkitError(f"GloVe vectors have {GLOVE_SIZE} dimensions: use --embedding-size {GLOVE_SIZE}.")
    table, known = vector_table(tokenizer.vocab, glove_vectors(tokenizer.words), model.config.embedding_size)
    with torch.no_grad():
        model.embedding.weight[known] = table[known]
    return int(known.sum())


def first_window_text(tokenizer: Tokenizer, data) -> str:
    """The first row of ``data``'s first window, decoded: the input the report's pictures are drawn on
    (read from the token stream, so a token file's corpus is never loaded for it)."""
    x, _ = next(iter(data.batches()))
    return tokenizer.decode(x[0].tolist())


def evaluate_language_model(
    directory: Path | str,
    data: str,
    *,
    batch_size: int = 8,
    window: int | None = None,
    dynamic_lr: float | None = None,
    dynamic_decay: float = 0.0,
    split: str = "test",
    quiet: bool = True,
) -> dict:
    """Score a trained model on a corpus' or token file's split (test by default), or on a whole text file; with
    ``quiet=False`` a progress bar (shown on a terminal only) counts the windows.

    The text is read as ``batch_size`` parallel streams (as in training): the last ``len % batch_size`` tokens and
    each stream's first token (it has no context) are not scored, so ``tokens`` in the result, the count scored,
    falls short of a small file's length (8 of 20 at the default ``batch_size=8``; 19 at ``batch_size=1``).

    With ``dynamic_lr`` the model adapts to the text as it scores it (:mod:`rnnkit.tasks.dynamic_eval`).
    """
    # checked for a text file too, which is scored whole: a mistyped split must not pass unnoticed
    if split not in SPLITS:
        raise RnnkitError(f"Unknown split {split!r}. Select from {', '.join(SPLITS)}.")
    model = load(directory, task="lm")
    run_config = model.run_config
    window = window or run_config.get("data", {}).get("window", 128)
    if is_token_file(data):
        corpus = TokenFile(data)
        if corpus.header["tokenizer"] != run_config["tokenizer"]:
            raise RnnkitError(f"{data} was tokenized with another vocabulary than the model's; tokenize it again.")
        windows = corpus.windows(split, batch_size, window)  # read from disk, window by window
    else:
        tokenizer = tokenizer_from_config(run_config["tokenizer"])
        windows = TokenStream(tokenizer.encode(evaluation_text(data, split)), batch_size, window)
    stream = WithProgress(windows, quiet, "scoring")
    unit = {"unit": run_config["tokenizer"]["kind"]}  # char, word or subword: what a token is, as train reports
    if dynamic_lr is None:
        return {**model.evaluate(stream), **unit}
    return {**dynamic_evaluate(model, stream, learning_rate=dynamic_lr, decay=dynamic_decay), "dynamic": True, **unit}


def evaluation_text(data: str, split: str) -> str:
    """A built-in corpus' split, or the whole of a text file."""
    if data in CORPORA:
        return getattr(CORPORA[data](), split)
    from rnnkit.data.sources import read_text_file

    return read_text_file(data)


class WithProgress:
    """Data that counts its batches on a tqdm bar as they are read (off when quiet or not on a terminal)."""

    def __init__(self, data, quiet: bool, description: str) -> None:
        self.data, self.quiet, self.description = data, quiet, description

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, epoch: int = 0):
        disable = True if self.quiet else None  # None: tqdm shows the bar only on a terminal
        with tqdm(total=len(self.data), desc=self.description, disable=disable, leave=False) as bar:
            for batch in self.data.batches(epoch):
                yield batch
                bar.update(1)
