"""The shared training flags: every train command gets the same thirteen, with its own defaults."""

import pytest
import typer
from typer.testing import CliRunner

from rnnkit.cli import options as o

runner = CliRunner()


def _app(**decorator):
    app = typer.Typer()
    seen = {}

    @app.command()
    @o.training_options(**decorator)
    def train(name: str = "x", *, training: o.Training) -> None:
        seen["name"], seen["training"] = name, training

    return app, seen


def test_flags_reach_the_command_as_one_value_with_its_defaults():
    app, seen = _app(epochs=30)
    result = runner.invoke(app, ["--name", "y", "--lr", "0.01", "--clip", "0", "--max-minutes", "5", "--json"])
    assert result.exit_code == 0, result.output
    training = seen["training"]
    assert seen["name"] == "y" and training.epochs == 30 and training.json_output and not training.resume
    config = training.config(warmup_steps=7)
    assert (config.learning_rate, config.clip_norm, config.max_minutes, config.warmup_steps) == (0.01, None, 5, 7)


def test_a_left_out_flag_is_refused_and_keeps_its_default():
    app, seen = _app(without=("precision",))
    assert runner.invoke(app, ["--precision", "bf16"]).exit_code == 2
    assert runner.invoke(app, []).exit_code == 0 and seen["training"].precision == "fp32"


def test_unknown_flag_names_are_a_programming_error():
    with pytest.raises(TypeError, match="unknown training flags"):
        o.training_options(epoch=3)
