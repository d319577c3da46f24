"""``rnnkit report DIR``: (re)write a run directory's report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.tasks.report import write_report


def report(
    run: o.RunDir,
    text: Annotated[str | None, typer.Option(help="Sample text to draw the network on (LMs, classifiers).")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Sample series file (forecasters).")] = None,
    wav: Annotated[Path | None, typer.Option(help="Sample audio file (speech recognisers).")] = None,
    json_output: o.Json = False,
) -> None:
    """Write RUN/report.html: config, metrics, training curves and pictures of the network on a sample input,
    one static page with the images embedded (no server, no network needed).

    Example: rnnkit report runs/char-lstm --text "To be, or not to be"
    """
    path = write_report(run, text=text, csv=csv_file, wav=wav)
    if json_output:
        o.print_json({"task": "report", "report": str(path), "n": 1})
    else:
        typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
