"""The demo end to end on a tiny text file: a trained checkpoint, held-out bits/char, a loss curve, a sample."""

import json

from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()


def test_demo_trains_scores_plots_and_generates(tmp_path):
    corpus = tmp_path / "verse.txt"
    corpus.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 60, encoding="utf-8")
    out = tmp_path / "demo"
    arguments = ["demo", "--data", str(corpus), "--out", str(out), "--minutes", "0.05", "--hidden-size", "16"]
    result = runner.invoke(app, [*arguments, "--length", "30", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["task"] == "lm" and 0 < report["metrics"]["bits_per_token"] < 8
    assert report["sample"].startswith("ROMEO:\n") and len(report["sample"]) == len("ROMEO:\n") + 30
    for name in ("config.json", "model.safetensors", "metrics.json", "loss.png"):
        assert (out / name).is_file(), name


def test_demo_on_a_missing_file_is_one_line_and_exit_code_2(tmp_path):
    result = runner.invoke(app, ["demo", "--data", str(tmp_path / "none.txt"), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
