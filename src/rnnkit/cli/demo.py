"""``rnnkit demo``: the main job on an embedded default. A character LSTM learns Shakespeare in a few minutes.

It trains on 33 plays, scores three held-out plays (hamlet, the-tempest, twelfth-night) in bits per
character, draws the loss curve and prints a generated passage: the whole toolkit (layers, kernels, trainer,
checkpoints, generation through the step API) in one command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from rnnkit.cli import options as o
from rnnkit.data.text import tokenizer_from_config
from rnnkit.kernels import native
from rnnkit.tasks import load
from rnnkit.tasks.lm import never_sampled
from rnnkit.tasks.lm_training import LanguageModelData, train_language_model
from rnnkit.train import TrainConfig

PRIME = "ROMEO:\n"


def demo(
    out: Annotated[Path, typer.Option(help="Run directory for the checkpoint, metrics.json and loss.png.")] = Path(
        "runs/demo"
    ),
    data: Annotated[str, typer.Option(help="shakespeare or a UTF-8 text file.")] = "shakespeare",
    minutes: Annotated[float, typer.Option(help="Training budget in minutes (the schedule anneals within it).")] = 4.0,
    hidden_size: Annotated[int, typer.Option(help="Units in each of the two LSTM layers.")] = 256,
    length: Annotated[int, typer.Option(help="Characters to generate at the end.")] = 400,
    seed: o.Seed = 0,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Train a character LSTM on Shakespeare for a few minutes, report held-out bits/char, generate a passage.

    Example: rnnkit demo --minutes 4 --out runs/demo
    """
    model_options = {
        "cell": "lstm",
        "num_layers": 2,
        "hidden_size": hidden_size,
        "embedding_size": 64,
        "tie_weights": False,
        "input_dropout": 0.0,
        "hidden_dropout": 0.05,
        "output_dropout": 0.05,
    }
    config = TrainConfig(epochs=100, max_minutes=minutes, learning_rate=3e-3, eval_every=250, seed=seed, quiet=quiet)
    # the native loops compile on their first use after an install without make (a minute or two): before the
    # clock starts, not inside it (a fresh clone's demo trained 1,149 steps in its 240 s instead of 3,510)
    native.load()
    summary = train_language_model(LanguageModelData(data=data, batch_size=32, window=100), model_options, config, out)
    model = load(out)
    tokenizer = tokenizer_from_config(model.run_config["tokenizer"])
    generator = torch.Generator().manual_seed(seed)
    never = never_sampled(tokenizer)
    ids = list(model.generate(tokenizer.encode(PRIME), length, temperature=0.7, generator=generator, never=never))
    text = PRIME + tokenizer.decode(ids)
    test = summary["test"]
    if json_output:
        o.print_json({"task": "lm", "metrics": test, "n": test["tokens"], "summary": summary, "sample": text})
        return
    typer.echo(
        f"{summary['steps']} steps in {summary['train_seconds']:.0f} s; "
        f"{'held-out plays' if data == 'shakespeare' else 'held-out test part'}: "
        f"{test['bits_per_token']:.3f} bits/char over {test['tokens']:,} characters"
    )
    typer.echo(f"loss curve: {out / 'loss.png'}; checkpoint: {out}\n")
    typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
