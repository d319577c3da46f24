"""``rnnkit memory``: the classic memory tasks for RNN, LSTM, GRU and the layer-norm cells, over lengths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rnnkit import checkpoint
from rnnkit.cli import options as o
from rnnkit.errors import RnnkitError
from rnnkit.tasks.memory import MemoryConfig, run_benchmark, summarise
from rnnkit.tasks.memory.benchmark import format_table
from rnnkit.viz.memory import memory_plot

QUICK = {
    "lengths": (10,),
    "seeds": (0,),
    "max_steps": 10,
    "eval_every": 5,
    "eval_size": 64,
    "test_size": 64,
    "batch_size": 16,
}


def _numbers(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RnnkitError(f"--{name} must be comma-separated whole numbers, got {text!r}.") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def memory(
    tasks: Annotated[
        str, typer.Option(help="Comma-separated: adding, recall (copy), digits.")
    ] = "adding,recall,digits",
    cells: Annotated[
        str, typer.Option(help="Comma-separated: rnn, lstm, gru, ln-lstm, ln-gru (10x slower: not by default).")
    ] = ",".join(MemoryConfig.cells),
    lengths: Annotated[str, typer.Option(help="Comma-separated sequence lengths (digits: always 64).")] = ",".join(
        map(str, MemoryConfig.lengths)
    ),
    seeds: Annotated[int, typer.Option(help="Runs per setting, seeds 0, 1, ...")] = 1,
    budget: Annotated[
        int, typer.Option(help="Parameters per model (layer and head): equal for every cell.")
    ] = MemoryConfig.parameter_budget,
    max_steps: Annotated[
        int, typer.Option(help="Updates per run at most; a solved run stops early.")
    ] = MemoryConfig.max_steps,
    max_seconds: Annotated[
        float, typer.Option(help="CPU seconds per run at most (then: not solved).")
    ] = MemoryConfig.max_seconds,
    workers: Annotated[
        int, typer.Option(help="Runs side by side, one thread each (default: the CPU count, at most 2).")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Where memory.json and memory.png go.")] = Path("runs/memory"),
    quick: Annotated[bool, typer.Option(help="A tiny grid that runs in seconds (a smoke test).")] = False,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Train every cell on every task and length at the same parameter budget; print which solve it.

    Adding: MSE < 0.01 on fresh sequences (always answering 1 scores 0.167). Recall: 2 symbols shown at a
    random step, recalled at the end, >= 99% right. Digits: scikit-learn's 8x8 digits one pixel a step, >= 90%.
    A run stops when solved on held-out data, or after --max-steps updates or --max-seconds of CPU.

    Example: rnnkit memory --tasks adding --lengths 50,100,200,400 --seeds 3
    """
    settings = {"tasks": _names(tasks), "cells": _names(cells), "lengths": _numbers(lengths, "lengths"),
                "seeds": tuple(range(seeds)), "parameter_budget": budget, "max_steps": max_steps,
                "max_seconds": max_seconds}  # fmt: skip
    if quick:
        settings.update(QUICK)
    config = MemoryConfig(**settings)
    o.check_out(out, replace=True)  # before the runs: a file in its place would lose them all at the end

    def show(result: dict) -> None:
        if not json_output and not quiet:
            verdict = "solved" if result["solved"] else "not solved"
            typer.echo(
                f"{result['task']:>7} T={result['length']:<4} {result['cell']:>7} seed {result['seed']}: "
                f"{result['metric']} {result['test_score']:.4f}  {verdict}  {result['train_seconds']:.0f} s",
                err=True,
            )

    workers = workers or min(2, os.cpu_count() or 1)
    results = run_benchmark(config, workers=workers, quiet=quiet, on_result=show)
    rows = summarise(results)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "task": "memory",
        "config": {**config.__dict__, "workers": workers},
        "summary": rows,
        "runs": results,
        "n": len(results),
    }
    checkpoint.write_json(out / "memory.json", report)
    memory_plot(rows, out / "memory.png")
    if json_output:
        o.print_json({**report, "files": [str(out / "memory.json"), str(out / "memory.png")]})
        return
    typer.echo(format_table(rows))
    typer.echo(f"table and runs: {out / 'memory.json'}; plot: {out / 'memory.png'}")


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)
