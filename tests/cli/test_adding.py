"""The adding command end to end on a tiny run; user mistakes exit 2 with one line."""

import json

from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()


def test_adding_prints_one_json_object_per_run():
    result = runner.invoke(
        app, ["adding", "--steps", "8", "--train-steps", "3", "--cells", "rnn,gru", "--quiet", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["task"] == "adding" and report["n"] == 2
    assert [r["cell"] for r in report["metrics"]] == ["rnn", "gru"]
    assert all(0 <= r["test_mse"] < 10 for r in report["metrics"])


def test_adding_table_names_each_cell():
    result = runner.invoke(app, ["adding", "--steps", "8", "--train-steps", "2", "--cells", "lstm", "--quiet"])
    assert result.exit_code == 0
    assert "lstm  test MSE" in result.stdout and "mean baseline 0.167" in result.stdout


def test_unknown_cell_is_one_line_and_exit_code_2():
    result = runner.invoke(app, ["adding", "--cells", "transformer", "--train-steps", "1", "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: Unknown cell 'transformer'. Select from rnn, lstm, gru."
    assert "Traceback" not in result.output
