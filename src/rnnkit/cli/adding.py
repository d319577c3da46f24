"""``rnnkit adding``: the adding problem for RNN, LSTM and GRU, showing why gated cells exist."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from rnnkit.tasks.memory import AddingConfig, train_adding


def adding(
    steps: Annotated[int, typer.Option(help="Sequence length T of the adding problem.")] = 100,
    train_steps: Annotated[int, typer.Option(help="Parameter updates per cell (batches of 64).")] = 2000,
    cells: Annotated[str, typer.Option(help="Comma-separated cells to train: rnn, lstm, gru.")] = "rnn,lstm,gru",
    seed: Annotated[int, typer.Option(help="Random seed for weights and data.")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Train RNN, LSTM and GRU on the adding problem and compare their held-out MSE with the mean's 0.167.

    Example: rnnkit adding --steps 100 --train-steps 2000
    """
    results = []
    for cell in cells.split(","):
        config = AddingConfig(cell=cell.strip(), num_steps=steps, train_steps=train_steps, seed=seed)
        results.append(train_adding(config, quiet=quiet))
        if not json_output:
            r = results[-1]
            verdict = "solved" if r["solved"] else "not solved"
            typer.echo(
                f"{r['cell']:>5}  test MSE {r['test_mse']:.4f}  (mean baseline {r['baseline_mse']:.3f})  "
                f"{verdict:<10}  {r['train_seconds']:.0f} s"
            )
    if json_output:
        typer.echo(json.dumps({"task": "adding", "metrics": results, "n": len(results)}))


def register(app: typer.Typer) -> None:
    app.command("adding")(adding)
