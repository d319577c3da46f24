"""Language modelling end to end: corpus -> tokenizer -> streams -> Trainer -> held-out metrics.

The CLI's ``rnnkit lm train|eval`` call these; a notebook can too::

    summary = train_language_model(LanguageModelData("shakespeare"), {"hidden_size": 256},
                                   TrainConfig(max_minutes=5), "runs/char-lstm")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from rnnkit import checkpoint
from rnnkit.data.corpora import TextSplits, text_file
from rnnkit.data.plays import shakespeare
from rnnkit.data.text import CharTokenizer, SubwordTokenizer, Tokenizer, WordTokenizer, tokenizer_from_config
from rnnkit.data.wikitext import wikitext2
from rnnkit.errors import RnnkitError
from rnnkit.plots import training_curves
from rnnkit.report import sample_text, write_report
from rnnkit.tasks import load
from rnnkit.tasks.dynamic_eval import dynamic_evaluate
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig, TokenStream
from rnnkit.train import TrainConfig, Trainer, seed_everything

CORPORA = {"shakespeare": shakespeare, "wikitext2": wikitext2}
TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer, "subword": SubwordTokenizer}
DEFAULT_TOKENIZER = {"shakespeare": "char", "wikitext2": "word"}


@dataclass(frozen=True)
class LanguageModelData:
    data: str = "shakespeare"  # a built-in corpus name or a UTF-8 text file
    tokenizer: str = ""  # char | word | subword; "" picks the corpus' usual one (char for files)
    batch_size: int = 32  # parallel streams
    window: int = 128  # steps per truncated-BPTT window
    eval_batch_size: int = 8
    subword_vocab_size: int = 4096

    def __post_init__(self) -> None:
        if self.tokenizer and self.tokenizer not in TOKENIZERS:
            raise RnnkitError(f"Unknown tokenizer {self.tokenizer!r}. Select from {', '.join(TOKENIZERS)}.")

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


def fit_tokenizer(kind: str, text: str, options: LanguageModelData) -> Tokenizer:
    if kind == "subword":
        return SubwordTokenizer.fit(text, vocab_size=options.subword_vocab_size)
    return TOKENIZERS[kind].fit(text)


def train_language_model(
    options: LanguageModelData, model_options: dict, train_config: TrainConfig, out: Path | str, *, resume: bool = False
) -> dict:
    """Train, then score the best checkpoint on the held-out test split; returns the run's summary."""
    out = Path(out)
    splits = load_corpus(options.data)
    saved = out / checkpoint.CONFIG_FILE
    if resume and saved.exists():
        # the run's own vocabulary, even if the corpus file changed since
        tokenizer = tokenizer_from_config(checkpoint.read_config(out)["tokenizer"])
    else:
        tokenizer = fit_tokenizer(options.tokenizer_kind, splits.train, options)
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, **model_options)
    seed_everything(train_config.seed)  # the initial weights too, not only what the Trainer draws
    model = LanguageModel(config)
    run_config = {"task": "lm", "model": asdict(config), "tokenizer": tokenizer.to_config(), "data": asdict(options)}
    trainer = Trainer(
        model,
        train_config,
        out,
        TokenStream(tokenizer.encode(splits.train), options.batch_size, options.window),
        TokenStream(tokenizer.encode(splits.valid), options.eval_batch_size, options.window),
        run_config=run_config,
    )
    summary = trainer.fit(resume=resume)
    if summary["stopped_by"] == "interrupted":
        return summary
    best = load(out).to(trainer.device)
    summary["test"] = best.evaluate(TokenStream(tokenizer.encode(splits.test), options.eval_batch_size, options.window))
    summary["unit"] = "char" if options.tokenizer_kind == "char" else options.tokenizer_kind
    summary["parameters"] = sum(p.numel() for p in best.parameters())
    checkpoint.write_json(out / "metrics.json", summary)
    if (out / "log.csv").exists():
        training_curves(out / "log.csv", out / "loss.png", title=f"{config.cell} on {options.data}")
    write_report(out, text=sample_text(splits.valid or splits.test))
    return summary


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
    """Score a trained model on a corpus' split (test by default), or on the whole of a text file; with
    ``quiet=False`` a progress bar (shown on a terminal only) counts the windows.

    With ``dynamic_lr`` the model adapts to the text as it scores it (:mod:`rnnkit.tasks.dynamic_eval`).
    """
    model = load(directory)
    run_config = model.run_config
    tokenizer = tokenizer_from_config(run_config["tokenizer"])
    if data in CORPORA:
        if split not in ("train", "valid", "test"):
            raise RnnkitError(f"Unknown split {split!r}. Select from train, valid, test.")
        text = getattr(CORPORA[data](), split)
    else:
        from rnnkit.data.sources import read_text_file

        text = read_text_file(data)
    window = window or run_config.get("data", {}).get("window", 128)
    stream = WithProgress(TokenStream(tokenizer.encode(text), batch_size, window), quiet, "scoring")
    if dynamic_lr is None:
        return model.evaluate(stream)
    return {**dynamic_evaluate(model, stream, learning_rate=dynamic_lr, decay=dynamic_decay), "dynamic": True}


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
