"""``rnnkit export DIR --format onnx``: a trained model as ONNX, for onnxruntime and other servers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.errors import RnnkitError
from rnnkit.export import FORMATS, OPSET, export_onnx


def export(
    run: o.RunDir,
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="File to write (default: DIR/model.onnx).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = OPSET,
    json_output: o.Json = False,
) -> None:
    """Export a trained model: the language model's step, the classifier, the forecaster or the speech
    recogniser's acoustic model, with a dynamic batch (and the classifier's and recogniser's length).

    Example: rnnkit export runs/char-lstm --format onnx
    """
    if format not in FORMATS:
        raise RnnkitError(f"Unknown format {format!r}. Select from {', '.join(FORMATS)}.")
    result = export_onnx(run, out, opset=opset)
    if json_output:
        o.print_json(result)
        return
    inputs = ", ".join(f"{name} {shape}" for name, shape in result["inputs"].items())
    typer.echo(f"wrote {result['path']} ({result['task']}); inputs: {inputs}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
