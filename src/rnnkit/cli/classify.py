"""``rnnkit classify train | eval | predict``: sentiment and other text classes from a CSV or a built-in set."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.data.sentiment import SENTIMENT_SETS, read_csv
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load
from rnnkit.tasks.classify import ClassifierConfig
from rnnkit.tasks.classify_training import ClassifyData, evaluate_classifier, explain, predict_texts, train_classifier

DEFAULT = ClassifierConfig(vocab_size=1, num_classes=2)  # the model flags' defaults are the config's

app = typer.Typer(help="Text classification (sentiment): train, evaluate, predict with explanations.")

Data = Annotated[str, typer.Option(help=f"Built-in data set: {', '.join(SENTIMENT_SETS)} (instead of --csv).")]
Csv = Annotated[Path | None, typer.Option("--csv", help="UTF-8 CSV file with a header row.")]
TextCol = Annotated[str, typer.Option(help="Column holding the texts.")]
LabelCol = Annotated[str, typer.Option(help="Column holding the labels.")]


@app.command()
@o.training_options(epochs=10)
def train(
    out: o.Out,
    data: Data = "",
    csv_file: Csv = None,
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    vectors: Annotated[str, typer.Option(help="glove (GloVe 6B 50d where known) or random embeddings.")] = "glove",
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="Start from a run: an rnnkit word LSTM/GRU language model's (its vocabulary, embedding and first "
            "layer) or a classifier's (its vocabulary and every layer). Sets the shape flags; no GloVe."
        ),
    ] = None,
    init_classes: Annotated[
        str,
        typer.Option(
            help="With a classifier's --init-from whose classes have other names: pair them, source=ours "
            "(e.g. fresh=positive,rotten=negative), so its output layer carries over too."
        ),
    ] = "",
    pretrained_lr_scale: Annotated[
        float, typer.Option(help="With --init-from: the copied tensors learn at this times the learning rate.")
    ] = DEFAULT.pretrained_lr_scale,
    class_weights: Annotated[str, typer.Option(help="none, or balanced (w_c = n / (C n_c)) for skewed labels.")] = (
        "none"
    ),
    cell: Annotated[str, typer.Option(help="lstm or gru (bidirectional).")] = DEFAULT.cell,
    pooling: Annotated[str, typer.Option(help="last, max, mean or attention over the time steps.")] = DEFAULT.pooling,
    hidden_size: Annotated[int, typer.Option(help="Units per direction.")] = DEFAULT.hidden_size,
    layers: Annotated[int, typer.Option(help="Recurrent layers.")] = DEFAULT.num_layers,
    embedding_size: Annotated[int, typer.Option(help="Embedding width (50 with GloVe).")] = DEFAULT.embedding_size,
    dropout: Annotated[float, typer.Option(help="Dropout on the embeddings and the pooled vector.")] = DEFAULT.dropout,
    word_dropout: Annotated[float, typer.Option(help="Training only: replace words by <unk> this often.")] = 0.0,
    freeze_embeddings: Annotated[bool, typer.Option(help="Keep the embedding vectors fixed.")] = False,
    ensemble: Annotated[
        int, typer.Option(help="Train this many networks side by side and average their logits (K times the cost).")
    ] = DEFAULT.ensemble,
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = ClassifyData.batch_size,
    min_count: Annotated[int, typer.Option(help="Rarer training words (without a GloVe vector) become <unk>.")] = 1,
    test_fraction: Annotated[float, typer.Option(help="Share of a --csv file held out for the test (by hash).")] = 0.1,
    *,
    training: o.Training,
) -> None:
    """Train a classifier on the training split (the validation split picks the best epoch and fits the
    temperature), then score the held-out test split; metrics.json and confusion.png go to --out.

    Example: rnnkit classify train --csv reviews.csv --text-col review --label-col stars --out runs/reviews

    Example: rnnkit classify train --csv reviews.csv --text-col review --label-col stars --out runs/reviews-lm
    --init-from runs/word-lm

    Example: rnnkit classify train --csv reviews.csv --text-col review --label-col stars --out runs/reviews-rt
    --init-from runs/snippets --init-classes fresh=positive,rotten=negative
    """
    options = ClassifyData(
        data=data, csv=str(csv_file or ""), text_col=text_col, label_col=label_col, vectors=vectors,
        class_weights=class_weights, min_count=min_count, batch_size=batch_size, test_fraction=test_fraction,
        init_from=str(init_from or ""), init_classes=init_classes,
    )  # fmt: skip
    model_options = {
        "cell": cell, "pooling": pooling, "hidden_size": hidden_size, "num_layers": layers,
        "embedding_size": embedding_size, "dropout": dropout, "word_dropout": word_dropout,
        "freeze_embeddings": freeze_embeddings, "ensemble": ensemble, "pretrained_lr_scale": pretrained_lr_scale,
    }  # fmt: skip
    summary = train_classifier(options, model_options, training.config(), out, resume=training.resume)
    test = summary.get("test", {})
    if training.json_output:
        o.print_json({"task": "classify", "metrics": _headline(test), "n": test.get("n", 0), "summary": summary})
        return
    typer.echo(o.stop_line(summary))
    if test:
        typer.echo(f"test ({summary['split']}):")
        typer.echo(format_report(test))
        typer.echo(f"model, metrics.json and confusion.png in {out}")


def _headline(report: dict) -> dict:
    return {k: report[k] for k in ("accuracy", "macro_f1", "nll", "ece", "ece_uncalibrated") if k in report}


def format_report(report: dict) -> str:
    """Accuracy, macro-F1, ECE and one row per class."""
    lines = [
        f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  ECE {report['ece']:.4f} "
        f"(before temperature {report['ece_uncalibrated']:.4f}, T = {report['temperature']:.3f})  n = {report['n']}",
        f"{'class':<20}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}",
    ]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<20}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}")
    return "\n".join(lines)


@app.command("eval")
def evaluate(
    run: o.RunDir,
    csv_file: Csv = None,
    data: Data = "",
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    confusion: Annotated[Path | None, typer.Option(help="Draw the confusion matrix here (PNG).")] = None,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1 and calibration (ECE) on labelled texts: a CSV, or
    a built-in set's test split.

    Example: rnnkit classify eval runs/reviews --csv more-reviews.csv --text-col review --label-col stars
    """
    if bool(data) == bool(csv_file):
        raise RnnkitError(f"give either --csv FILE or --data ({', '.join(SENTIMENT_SETS)}), not both or neither.")
    if data:
        if data not in SENTIMENT_SETS:
            raise RnnkitError(f"Unknown data set {data!r}. Select from {', '.join(SENTIMENT_SETS)}.")
        texts = SENTIMENT_SETS[data]().test
    else:
        texts = read_csv(csv_file, text_col, label_col)
    confusion = confusion or Path(run) / "confusion-eval.png"
    report = evaluate_classifier(run, texts, confusion_png=confusion, quiet=quiet)
    if json_output:
        o.print_json({"task": "classify", "metrics": _headline(report), "n": report["n"], "report": report})
        return
    typer.echo(format_report(report))
    typer.echo(f"confusion matrix: {confusion}")


@app.command()
def predict(
    run: o.RunDir,
    text: Annotated[str | None, typer.Argument(help="A text to classify (or use --csv).")] = None,
    csv_file: Csv = None,
    text_col: TextCol = "text",
    explain_flag: Annotated[
        bool,
        typer.Option("--explain", help="Per-word attributions (integrated gradients, or attention weights)."),
    ] = False,
    png: Annotated[Path | None, typer.Option(help="With --explain: draw the attributions here (PNG).")] = None,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """The label and the calibrated probability of every class, for one text or each row of a CSV.

    Example: rnnkit classify predict runs/rt "a gripping, funny and humane film" --explain --png why.png
    """
    if (text is None) == (csv_file is None):
        raise RnnkitError("give either one TEXT argument or --csv FILE, not both or neither.")
    if png is not None and not explain_flag:
        raise RnnkitError("--png draws the --explain attributions; add --explain.")
    model = load(run, task="classify")
    if text is not None:
        if explain_flag:
            result = explain(model, text, png=png)
            if json_output:
                o.print_json({"task": "classify", "n": 1, "predictions": [result]})
                return
            typer.echo(_probabilities_line(result))
            typer.echo(
                f"why ({result['method']}): "
                + colour_tokens(result["tokens"], result["attributions"], signed=result["method"] != "attention")
            )
            if png is not None:
                typer.echo(f"attributions: {png}")
            return
        texts = [text]
    else:
        if explain_flag:
            raise RnnkitError("--explain works on one TEXT argument, not on --csv.")
        texts = read_csv(csv_file, text_col, None).texts
    predictions = predict_texts(model, texts, quiet=quiet or text is not None)  # one text needs no bar
    if json_output:
        o.print_json({"task": "classify", "n": len(predictions), "predictions": predictions})
        return
    if text is not None:
        typer.echo(_probabilities_line(predictions[0]))
        return
    classes = list(predictions[0]["probabilities"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([text_col, "label", *(f"p_{c}" for c in classes)])
    for source, p in zip(texts, predictions, strict=True):
        writer.writerow([source, p["label"], *(f"{p['probabilities'][c]:.4f}" for c in classes)])
    typer.echo(buffer.getvalue(), nl=False)


def _probabilities_line(prediction: dict) -> str:
    probabilities = ", ".join(f"{c} {p:.3f}" for c, p in prediction["probabilities"].items())
    return f"{prediction['label']} ({probabilities})"


def colour_tokens(tokens: list[str], scores: list[float], *, signed: bool = True) -> str:
    """Tokens coloured by attribution, bold when strong: green for the predicted class and red against it, or,
    for unsigned scores (attention weights), blue where the model looked. Off a terminal click drops the
    colours, so each token carries its score instead: ``boring(+0.84)``."""
    if not sys.stdout.isatty():
        shown = "{:+.2f}" if signed else "{:.2f}"
        return " ".join(f"{token}({shown.format(score)})" for token, score in zip(tokens, scores, strict=True))
    scale = max((abs(s) for s in scores), default=0.0) or 1.0
    pieces = []
    for token, score in zip(tokens, scores, strict=True):
        strength = abs(score) / scale
        if strength < 0.1:
            pieces.append(token)
        else:
            colour = "blue" if not signed else "green" if score > 0 else "red"
            pieces.append(typer.style(token, fg=colour, bold=strength > 0.5))
    return " ".join(pieces)
