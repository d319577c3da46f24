"""``rnnkit inspect DIR``: pictures of a trained model on one input (unfolded graph, states and gates,
gradient flow), or the trace as numbers with ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.errors import counted
from rnnkit.tasks.inspection import draw_inspection, gradient_flow, inspect_run, to_json


def inspect(
    run: o.RunDir,
    text: Annotated[str | None, typer.Option(help="Input text (language models and classifiers).")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Input series file (forecasters).")] = None,
    wav: Annotated[Path | None, typer.Option(help="Input audio (speech models): WAV, FLAC or OGG.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the pictures (default: RUN/inspect).")] = None,
    svg: Annotated[bool, typer.Option(help="Draw SVG instead of PNG.")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the trace (per-step states and gates) as one JSON object.")
    ] = False,
) -> None:
    """Run a trained model on one input and draw what happens inside: the network unfolded over the input,
    heatmaps of states and gates per layer, and how far the gradient reaches back.

    Example: rnnkit inspect runs/char-lstm --text "To be, or not to be"
    """
    inspection = inspect_run(run, text=text, csv=csv_file, wav=wav)
    files = draw_inspection(inspection, out or Path(run) / "inspect", suffix=".svg" if svg else ".png")
    if json_output:
        o.print_json({**to_json(inspection, gradient_flow(inspection)), "files": {k: str(v) for k, v in files.items()}})
        return
    rows, steps = counted(len(inspection.rows), "layer row"), counted(len(inspection.input_labels), "step")
    typer.echo(f"{inspection.cell}, {rows}, {steps}")
    if inspection.summary:
        typer.echo(inspection.summary)
    for name, path in files.items():
        typer.echo(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
