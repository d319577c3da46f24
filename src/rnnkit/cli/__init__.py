"""The ``rnnkit`` command: one typer app, a sub-command group per task.

Commands are thin: parse, call the library, print. User mistakes (:class:`rnnkit.RnnkitError`) are caught
in one place, the root group's ``invoke``: ``error: <message>`` on stderr and exit code 2, no traceback. A
training that a signal stopped (Ctrl-C, SIGTERM) saves, reports, and then exits with 128 + the signal's number.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from rnnkit.allocator import keep_freed_memory
from rnnkit.distributed import context_from_env
from rnnkit.errors import RnnkitError
from rnnkit.train import stopped_by_signal


class RnnkitGroup(TyperGroup):
    """Root group: turns a user mistake anywhere below (an :class:`RnnkitError`, or an ``OSError`` about a path)
    into one line on stderr and exit code 2, and a training stopped by a signal into exit code 128 + its number
    (130 for Ctrl-C, 143 for SIGTERM)."""

    def invoke(self, ctx):
        stopped_by_signal(clear=True)
        try:
            result = super().invoke(ctx)
        except RnnkitError as error:
            _say(f"error: {error}")
            raise typer.Exit(2) from None
        except OSError as error:
            if error.filename is None:
                raise  # not about a path the user gave: a bug, shown with its traceback
            # a path that cannot be read or written (missing, a file where a folder goes, no permission, full disk)
            _say(f"error: {error.strerror or error}: {error.filename}; check the path and try again.")
            raise typer.Exit(2) from None
        number = stopped_by_signal(clear=True)
        if number is not None:
            raise typer.Exit(128 + number)
        return result


def _say(line: str) -> None:
    """A user mistake's line on stderr. Under torchrun every rank runs the same command on the same input and
    meets the same mistake: rank 0 alone says it (each rank still exits with code 2)."""
    if context_from_env().is_main:
        typer.echo(line, err=True)


app = typer.Typer(
    cls=RnnkitGroup,
    help="Recurrent neural networks for PyTorch: cells, unfolding, fast kernels and trained task models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Recurrent neural networks for PyTorch."""
    # an application may change process-wide allocator settings; a library import must not
    keep_freed_memory()
    if context_from_env().rank > 0:
        # under torchrun every worker runs this command; rank 0 alone reports, the others would repeat it
        sys.stdout = open(os.devnull, "w")  # open for the life of the process


from rnnkit.cli import (  # noqa: E402  (each registers its commands)
    asr,
    classify,
    data,
    demo,
    export,
    forecast,
    inspect,
    lm,
    memory,
    report,
    translate,
)

demo.register(app)
memory.register(app)
inspect.register(app)
report.register(app)
export.register(app)
app.add_typer(lm.app, name="lm")
app.add_typer(data.app, name="data")
app.add_typer(forecast.app, name="forecast")
app.add_typer(classify.app, name="classify")
app.add_typer(translate.app, name="translate")
app.add_typer(asr.app, name="asr")


def main() -> None:
    app()
