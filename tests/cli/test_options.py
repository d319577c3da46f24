"""The shared training flags: every train command gets the same fourteen, with its own defaults."""

import pytest
import typer
from typer.testing import CliRunner

from rnnkit import RnnkitError
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


def test_a_run_already_in_out_is_replaced_only_when_asked(tmp_path):
    app, trained = typer.Typer(), []

    @app.command()
    @o.training_options()
    def train(out: o.Out, *, training: o.Training) -> None:
        trained.append(training)

    assert runner.invoke(app, ["--out", str(tmp_path / "new")]).exit_code == 0  # nothing there yet
    (tmp_path / "config.json").write_text("{}")
    refused = runner.invoke(app, ["--out", str(tmp_path)])
    assert isinstance(refused.exception, RnnkitError) and "already holds a run" in str(refused.exception)
    assert len(trained) == 1 and (tmp_path / "config.json").read_text() == "{}"
    nothing = runner.invoke(app, ["--out", str(tmp_path), "--resume"])  # a config without a resume state
    assert isinstance(nothing.exception, RnnkitError) and "nothing to resume" in str(nothing.exception)
    (tmp_path / "trainer_state").mkdir()
    (tmp_path / "trainer_state" / "resume.safetensors").write_bytes(b"")
    assert runner.invoke(app, ["--out", str(tmp_path), "--resume"]).exit_code == 0
    assert runner.invoke(app, ["--out", str(tmp_path), "--overwrite"]).exit_code == 0 and trained[-1].overwrite


def test_the_stop_line_counts_one_step_in_the_singular():
    # a budget that ends after the first step (the fused loops compiling on first use take most of a short one)
    one = o.stop_line({"steps": 1, "train_seconds": 58.2, "stopped_by": "time budget"})
    assert one == "1 step in 58 s; stopped at its time budget (--max-minutes)"
    assert o.stop_line({"steps": 4066, "train_seconds": 240, "stopped_by": "epochs"}).startswith("4,066 steps in 240 s")


def test_json_output_is_strict_json_with_null_for_what_is_not_a_number(capsys):
    """A metric of too few origins is NaN; bare NaN is no JSON (JavaScript's JSON.parse refuses it)."""
    import json

    import numpy as np

    o.print_json({"mase": float("nan"), "p": np.float32("inf"), "n": np.int64(3), "ok": [1.5, np.float64(2.0)]})
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out
    assert json.loads(out) == {"mase": None, "p": None, "n": 3, "ok": [1.5, 2.0]}


def test_under_torchrun_a_mistake_is_said_once_by_rank_0_and_every_rank_exits_2(tmp_path):
    """Every rank runs the same command and meets the same mistake: one line in the job's log, not one per rank."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "rnnkit", "lm", "train", "--data", "no/such/file.txt", "--out", str(tmp_path)]
    said = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        said.append(result.stderr)
    assert said[0].startswith("error: ") and said[0].count("\n") == 1 and said[1] == ""
