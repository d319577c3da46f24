"""``rnnkit translate train | eval | run``: German <-> English (or any TSV of pairs) with attention and beam search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from tqdm.auto import tqdm

from rnnkit.cli import options as o
from rnnkit.data.pairs import BUILT_IN, read_tsv
from rnnkit.errors import RnnkitError
from rnnkit.tasks.translate import TranslatorConfig
from rnnkit.tasks.translate_training import (
    TranslateData,
    evaluate_translator,
    load_translator,
    train_translator,
    translate_texts,
)
from rnnkit.viz.figure import check_path

DEFAULT = TranslatorConfig(source_vocab_size=1, target_vocab_size=1)  # the model flags' defaults are the config's
CHUNK = 64  # lines of an --input file translated (and printed) at a time

app = typer.Typer(help="Machine translation: train, evaluate (sacrebleu BLEU/chrF), translate with beam search.")

Beam = Annotated[int, typer.Option(help="Beam size (1: greedy decoding).")]
Alpha = Annotated[float, typer.Option(help="Length penalty ((5+|Y|)/6)^alpha: 0 raw log-prob, 1 per-token mean.")]


@app.command()
@o.training_options(epochs=20, without=("precision",))
def train(
    out: o.Out,
    pairs: Annotated[str, typer.Option(help=f"{', '.join(BUILT_IN)} or a UTF-8 TSV file of source<TAB>target.")] = (
        "ding-de-en"
    ),
    direction: Annotated[str, typer.Option(help="de-en or en-de: which Ding side is the source.")] = "de-en",
    vocab_size: Annotated[int, typer.Option(help="Subword (BPE) ids per vocabulary; small data: 2-4k.")] = 4000,
    separate_vocabularies: Annotated[bool, typer.Option(help="One BPE model per language, not shared.")] = False,
    phrases: Annotated[bool, typer.Option(help="Add the Ding dictionary's phrase entries as training pairs.")] = False,
    cell: Annotated[str, typer.Option(help="Encoder cell: lstm or gru (bidirectional).")] = DEFAULT.cell,
    attention: Annotated[str, typer.Option(help="general, dot (Luong) or additive (Bahdanau).")] = DEFAULT.attention,
    hidden_size: Annotated[int, typer.Option(help="Decoder units (half per encoder direction).")] = DEFAULT.hidden_size,
    embedding_size: Annotated[int, typer.Option(help="Embedding width.")] = DEFAULT.embedding_size,
    layers: Annotated[int, typer.Option(help="Recurrent layers in the encoder and in the decoder.")] = 1,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings, between layers, attentional vector.")] = (
        DEFAULT.dropout
    ),
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing epsilon.")] = DEFAULT.label_smoothing,
    tie_embeddings: Annotated[bool, typer.Option(help="Output layer shares the target embedding.")] = True,
    input_feeding: Annotated[bool, typer.Option(help="Feed the attentional vector to the next step.")] = True,
    batch_size: Annotated[int, typer.Option(help="Sentence pairs per batch.")] = TranslateData.batch_size,
    eval_every: Annotated[int, typer.Option(help="Optimizer steps between validations (0: each epoch).")] = 0,
    beam: Beam = 5,
    *,
    training: o.Training,
) -> None:
    """Train on the training split (the best validation BLEU is kept), then score the test split greedy and
    with beam search (sacrebleu BLEU and chrF); metrics.json, log.csv and loss.png go to --out.

    Example: rnnkit translate train --pairs ding-de-en --direction de-en --out runs/de-en --max-minutes 60
    """
    _check_beam(beam)  # before training: the test split is decoded with it only at the end
    options = TranslateData(
        pairs=pairs, direction=direction, vocab_size=vocab_size, shared_vocabulary=not separate_vocabularies,
        phrases=phrases, batch_size=batch_size,
    )  # fmt: skip
    model_options = {
        "cell": cell, "attention": attention, "hidden_size": hidden_size, "embedding_size": embedding_size,
        "num_layers": layers, "dropout": dropout, "label_smoothing": label_smoothing,
        "tie_embeddings": tie_embeddings, "input_feeding": input_feeding,
    }  # fmt: skip
    config = training.config(eval_every=eval_every)
    summary = train_translator(options, model_options, config, out, resume=training.resume, beam_size=beam)
    test = summary.get("test", {})
    for scores in test.values():
        scores.pop("hypotheses", None)
    if training.json_output:
        headline = {f"{name}_{k}": v[k] for name, v in test.items() for k in ("bleu", "chrf")}
        o.print_json({"task": "translate", "metrics": headline, "n": summary.get("sizes", {}).get("test", 0),
                      "summary": summary})  # fmt: skip
        return
    typer.echo(o.stop_line(summary))
    for name, scores in test.items():
        typer.echo(f"test {name}: {scores['bleu_detail']}  chrF {scores['chrf']}")
    if test:
        typer.echo(f"BLEU {next(iter(test.values()))['bleu_signature']}")
        typer.echo(f"model, metrics.json and loss.png in {out}")


@app.command("eval")
def evaluate(
    run: o.RunDir,
    pairs: Annotated[Path | None, typer.Option(help="A TSV of source<TAB>target (default: the test split).")] = None,
    beam: Beam = 5,
    alpha: Alpha = 1.0,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """sacrebleu BLEU and chrF (with their signatures) of the model's translations of a TSV, or of the test
    split of the data it was trained on.

    Example: rnnkit translate eval runs/de-en --beam 5
    """
    _check_beam(beam)
    data = read_tsv(pairs) if pairs is not None else None
    scores = evaluate_translator(run, data, beam_size=beam, alpha=alpha, quiet=quiet)
    scores.pop("hypotheses")
    if json_output:
        o.print_json({"task": "translate", "metrics": {"bleu": scores["bleu"], "chrf": scores["chrf"]},
                      "n": scores["n"], "report": {**scores, "beam": beam, "alpha": alpha}})  # fmt: skip
        return
    typer.echo(f"{scores['bleu_detail']}  chrF {scores['chrf']}  n = {scores['n']}  (beam {beam})")
    typer.echo(f"BLEU {scores['bleu_signature']}")
    typer.echo(f"chrF {scores['chrf_signature']}")


def _check_beam(beam: int) -> None:
    if beam < 1:
        raise RnnkitError(f"--beam must be at least 1 (1: greedy decoding), got {beam}.")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist; give a UTF-8 text file, one sentence a line.")
    try:
        return path.read_bytes().decode("utf-8").removeprefix("\ufeff").splitlines()
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise RnnkitError(f"{path} line {line} is not UTF-8 ({error.reason}); save the file as UTF-8.") from None


@app.command()
def run(
    run_dir: o.RunDir,
    text: Annotated[str | None, typer.Argument(help="A sentence to translate (or use --input).")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="A UTF-8 file, one sentence a line.")] = None,
    beam: Beam = 5,
    n_best: Annotated[int, typer.Option(help="Translations per sentence, best first (at most --beam).")] = 1,
    alpha: Alpha = 1.0,
    beta: Annotated[float, typer.Option(help="Coverage penalty weight (0: none).")] = 0.0,
    plot: Annotated[Path | None, typer.Option(help="Draw the first sentence's attention here (PNG).")] = None,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Translate one sentence, or a file line by line (streamed: each chunk printed as it is done). Empty lines
    give empty lines; a sentence over the model's length limit is cut there, with a warning on stderr.

    Example: rnnkit translate run runs/de-en "Es hat mir sehr gut gefallen." --beam 5 --n-best 3
    """
    if (text is None) == (input_file is None):
        raise RnnkitError("give either one TEXT argument or --input FILE, not both or neither.")
    _check_beam(beam)  # first, or a beam of 0 reads as a wrong --n-best
    if not 1 <= n_best <= beam:
        raise RnnkitError(f"--n-best must be between 1 and --beam ({beam}), got {n_best}.")
    if plot is not None:
        check_path(plot)
    lines = [text] if text is not None else _read_lines(input_file)
    if plot is not None and not lines:
        raise RnnkitError(
            f"--plot draws the first sentence's attention, but {input_file} has no lines; give a sentence."
        )
    if plot is not None and not lines[0].strip():
        # found here, not when drawing: that comes after every line is translated, and --json would print none
        raise RnnkitError("--plot draws the first sentence's attention, but the first line is empty; give a sentence.")
    model = load_translator(run_dir)
    results = []
    bar = tqdm(total=len(lines), desc="translating", unit="line", disable=True if quiet or text else None)
    for start in range(0, len(lines), CHUNK):
        chunk = translate_texts(model, lines[start : start + CHUNK], beam_size=beam, n_best=n_best, alpha=alpha,
                                beta=beta, with_attention=plot is not None and start == 0)  # fmt: skip
        for number, result in enumerate(chunk, start=start + 1):
            if result["truncated"]:
                typer.echo(f"warning: line {number} is over {model.config.max_length} subwords; cut there.", err=True)
            if not json_output:
                _print_result(result, n_best)
        results += chunk
        bar.update(len(chunk))
    bar.close()
    if plot is not None:
        _plot(results[0], plot)
    if json_output:
        for result in results:
            result.pop("source_pieces", None)
            for translation in result["translations"]:
                translation.pop("attention", None), translation.pop("pieces", None)
        o.print_json({"task": "translate", "n": len(results), "beam": beam, "translations": results})
    elif plot is not None:
        typer.echo(f"attention: {plot}", err=True)


def _print_result(result: dict, n_best: int) -> None:
    translations = result["translations"]
    if n_best == 1:
        typer.echo(translations[0]["text"] if translations else "")
        return
    for rank, translation in enumerate(translations, start=1):
        typer.echo(f"{rank}\t{translation['score']:.3f}\t{translation['text']}")
    typer.echo("")


def _plot(result: dict, png: Path) -> None:
    from rnnkit.plots import attention_heatmap

    if not result["translations"]:
        raise RnnkitError("the first line is empty: nothing to plot; give a sentence.")
    best = result["translations"][0]
    attention_heatmap(best["attention"], result["source_pieces"], best["pieces"], png, title=best["text"][:80])
