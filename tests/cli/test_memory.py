"""`rnnkit memory` end to end on a tiny grid: one JSON object, the table, the plot; mistakes exit 2."""

import json

from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()


def test_quick_run_writes_json_and_plot_and_prints_one_object(tmp_path):
    args = ["memory", "--quick", "--tasks", "adding,recall", "--cells", "rnn,lstm", "--workers", "1"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["task"] == "memory" and report["n"] == 4
    assert {(r["task"], r["cell"]) for r in report["summary"]} == {
        ("adding", "rnn"), ("adding", "lstm"), ("recall", "rnn"), ("recall", "lstm")
    }  # fmt: skip
    assert json.loads((tmp_path / "memory.json").read_text())["summary"] == report["summary"]
    assert (tmp_path / "memory.png").stat().st_size > 5000


def test_table_names_every_setting(tmp_path):
    args = ["memory", "--quick", "--tasks", "adding", "--cells", "gru", "--workers", "1", "--quiet"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| adding | 10 | gru |" in result.stdout and "memory.png" in result.stdout


def test_unknown_cell_is_one_line_and_exit_code_2(tmp_path):
    result = runner.invoke(app, ["memory", "--cells", "transformer", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: Unknown cell 'transformer'. Select from rnn, lstm, gru, ln-lstm, ln-gru."


def test_lengths_must_be_numbers(tmp_path):
    result = runner.invoke(app, ["memory", "--lengths", "50,long", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2 and "--lengths must be comma-separated whole numbers" in result.stderr


def test_an_out_that_cannot_hold_the_results_is_refused_before_any_run(tmp_path, monkeypatch):
    def run_benchmark(*args, **kwargs):
        raise AssertionError("the runs went ahead: their results would be lost at the end")

    monkeypatch.setattr("rnnkit.cli.memory.run_benchmark", run_benchmark)
    (tmp_path / "taken").write_text("a file, not a folder")
    result = runner.invoke(app, ["memory", "--quick", "--out", str(tmp_path / "taken" / "memory"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --out ") and "is a file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
