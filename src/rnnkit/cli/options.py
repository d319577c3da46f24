"""Option types shared by every task's commands, so the same flag means the same thing everywhere."""

from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from rnnkit import checkpoint, distributed
from rnnkit.errors import RnnkitError, counted
from rnnkit.train import TrainConfig

Out = Annotated[Path, typer.Option(help="Run directory: checkpoints, metrics.json, log.csv and plots go here.")]
RunDir = Annotated[Path, typer.Argument(help="A run directory written by `train` (its --out).")]
Epochs = Annotated[int, typer.Option(help="Passes over the training data.")]
MaxMinutes = Annotated[
    float | None, typer.Option(help="Wall-clock budget in minutes; stops after the batch that crosses it.")
]
Seed = Annotated[int, typer.Option(help="Random seed for weights, dropout and data order.")]
Device = Annotated[str, typer.Option(help="auto (CUDA if available), cpu or cuda.")]
Precision = Annotated[
    str, typer.Option(help="fp32; bf16 (autocast, CPU or CUDA: ~1.7x faster on CPUs with AVX512-BF16); fp16 (CUDA).")
]
Resume = Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")]
Overwrite = Annotated[bool, typer.Option(help="Replace the run already in --out (without it, that is refused).")]
Quiet = Annotated[bool, typer.Option(help="No progress bars.")]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate.")]
Optimizer = Annotated[str, typer.Option(help="adamw, adam or sgd.")]
Schedule = Annotated[str, typer.Option(help="Learning-rate schedule: cosine, constant or plateau.")]
Clip = Annotated[float, typer.Option(help="Clip the gradient norm to this (0: no clipping).")]
Patience = Annotated[int | None, typer.Option(help="Stop after this many validations without improvement.")]


@dataclass(frozen=True)
class Training:
    """The flags every ``train`` command shares, as its body receives them (see :func:`training_options`)."""

    epochs: int
    max_minutes: float | None
    lr: float
    optimizer: str
    schedule: str
    clip: float
    patience: int | None
    seed: int
    device: str
    precision: str
    resume: bool
    overwrite: bool
    quiet: bool
    json_output: bool

    def config(self, **extra) -> TrainConfig:
        """The :class:`TrainConfig` of these flags, with the command's own settings (``extra``) added."""
        return TrainConfig(
            epochs=self.epochs,
            max_minutes=self.max_minutes,
            seed=self.seed,
            device=self.device,
            precision=self.precision,
            quiet=self.quiet,
            learning_rate=self.lr,
            optimizer=self.optimizer,
            schedule=self.schedule,
            clip_norm=self.clip or None,
            patience=self.patience,
            **extra,
        )


# the flags in --help order, with their types and defaults (a command may change a default or drop a flag)
_TRAINING_FLAGS = {
    "epochs": (Epochs, 10),
    "max_minutes": (MaxMinutes, None),
    "lr": (LearningRate, 2e-3),
    "optimizer": (Optimizer, "adamw"),
    "schedule": (Schedule, "cosine"),
    "clip": (Clip, 1.0),
    "patience": (Patience, None),
    "seed": (Seed, 0),
    "device": (Device, "auto"),
    "precision": (Precision, "fp32"),
    "resume": (Resume, False),
    "overwrite": (Overwrite, False),
    "quiet": (Quiet, False),
    "json_output": (Json, False),
}


def training_options(*, without: tuple[str, ...] = (), **defaults):
    """Give a ``train`` command the shared training flags (``--epochs``, ``--lr``, ..., ``--json``) after its own.

    The command declares a ``training: Training`` parameter instead of the fourteen flags; typer sees the
    flags (a rewritten signature), the body gets them as one value. ``defaults`` changes a flag's default
    (``epochs=30``); a flag in ``without`` is left out and keeps its default.

    Example::

        @app.command()
        @training_options(epochs=20)
        def train(out: Out, ..., *, training: Training) -> None:
            summary = fit(..., training.config(warmup_steps=200), out, resume=training.resume)
    """
    unknown = (set(defaults) | set(without)) - set(_TRAINING_FLAGS)
    if unknown:
        raise TypeError(f"unknown training flags {sorted(unknown)}")

    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "training"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=defaults.get(name, value))
            for name, (kind, value) in _TRAINING_FLAGS.items()
            if name not in without
        ]

        @functools.wraps(command)
        def wrapper(**kwargs):
            values = {name: kwargs.pop(name, defaults.get(name, value)) for name, (_, value) in _TRAINING_FLAGS.items()}
            if values["resume"] and values["overwrite"]:
                raise RnnkitError("--resume continues the run in --out and --overwrite replaces it; pass one of them.")
            if "out" in kwargs:
                check_out(
                    kwargs["out"], replace=values["resume"] or values["overwrite"], resume=values["resume"],
                    can_resume="resume" not in without,
                )  # fmt: skip
            return command(**kwargs, training=Training(**values))

        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        wrapper.__signature__ = inspect.Signature(keyword + shared)
        return wrapper

    return decorate


def check_out(out: Path, *, replace: bool, resume: bool = False, can_resume: bool = True) -> None:
    """A one-line error, before any work, if the run directory ``out`` cannot be made or written, or if it already
    holds a run (its weights, config or resume state) and ``replace`` (``--resume`` or ``--overwrite``) is off: a
    new run there would replace that work; and with ``resume``, if it holds nothing to resume.

    Under torchrun only rank 0 looks: the other ranks start at the same moment and could find the files rank 0
    has just begun to write; when rank 0 stops here, torchrun stops the others. ``can_resume``: the command has a
    ``--resume`` flag to offer (a backtest has not)."""
    if not distributed.context_from_env().is_main:
        return
    out = Path(out)
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())  # the run makes the rest
    if not existing.is_dir():
        raise RnnkitError(f"--out {out}: {existing} is a file; give a directory for the run.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RnnkitError(f"--out {out}: cannot write in {existing}; give a directory you may write to.")
    if resume and not (out / checkpoint.RESUME_FILE).is_file():  # before any data is read or file written
        raise RnnkitError(f"nothing to resume in {out}: it has no {checkpoint.RESUME_FILE}; train without --resume.")
    if replace:
        return
    if checkpoint.holds_run(out):
        continue_it = "pass --resume to continue it, " if can_resume else "pass "
        raise RnnkitError(f"{out} already holds a run; {continue_it}--overwrite to replace it, or give another --out.")


# why a training ended (the summary's "stopped_by"), as the end of a sentence
_STOPS = {
    "epochs": "after its last epoch",
    "time budget": "at its time budget (--max-minutes)",
    "early stopping": "by early stopping (--patience)",
    "interrupted": "when interrupted; --resume continues it",
}


def stop_line(summary: dict) -> str:
    """The line a ``train`` command prints when the trainer returns: how far it got, and why it stopped there."""
    why = _STOPS.get(summary["stopped_by"], f"by {summary['stopped_by']}")
    return f"{counted(summary['steps'], 'step')} in {summary['train_seconds']:.0f} s; stopped {why}"


def print_json(obj: dict) -> None:
    """One JSON object on stdout; NaN and infinities (a metric of too few origins) as null, which every parser reads."""
    typer.echo(checkpoint.strict_json(obj))
