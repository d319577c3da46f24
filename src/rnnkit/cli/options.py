"""Option types shared by every task's commands, so the same flag means the same thing everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
Quiet = Annotated[bool, typer.Option(help="No progress bars.")]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate.")]
Optimizer = Annotated[str, typer.Option(help="adamw, adam or sgd.")]
Schedule = Annotated[str, typer.Option(help="Learning-rate schedule: cosine, constant or plateau.")]
Clip = Annotated[float, typer.Option(help="Clip the gradient norm to this (0: no clipping).")]
Patience = Annotated[int | None, typer.Option(help="Stop after this many validations without improvement.")]


def train_config(
    *,
    epochs: int,
    max_minutes: float | None,
    seed: int,
    device: str,
    quiet: bool,
    precision: str = "fp32",
    lr: float,
    optimizer: str,
    schedule: str,
    clip: float,
    patience: int | None,
    **extra,
) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        max_minutes=max_minutes,
        seed=seed,
        device=device,
        precision=precision,
        quiet=quiet,
        learning_rate=lr,
        optimizer=optimizer,
        schedule=schedule,
        clip_norm=clip or None,
        patience=patience,
        **extra,
    )


def print_json(obj: dict) -> None:
    typer.echo(json.dumps(obj, default=float))
