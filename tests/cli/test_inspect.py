"""`rnnkit inspect` and `rnnkit report` end to end: pictures, the trace as JSON, clear refusals."""

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rnnkit import checkpoint
from rnnkit.cli import app
from rnnkit.data.text import CharTokenizer
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    tokenizer = CharTokenizer.fit("to be or not")
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, cell="gru", embedding_size=6, hidden_size=5)
    checkpoint.save_model(out, LanguageModel(config), {"task": "lm", "model": asdict(config),
                                                       "tokenizer": tokenizer.to_config()})  # fmt: skip
    return out


def test_inspect_draws_pictures_and_dumps_the_trace(lm_run, tmp_path):
    result = runner.invoke(app, ["inspect", str(lm_run), "--text", "to be", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["task"] == "inspect" and report["run_task"] == "lm" and report["input"] == list("to be")
    assert set(report["trace"]) == {"layer 0", "layer 1"} and set(report["trace"]["layer 0"]) == {"h", "r", "z", "n"}
    assert np.asarray(report["trace"]["layer 0"]["z"]).shape == (5, 5)
    assert len(report["gradient_flow"]["rnn"]) == 5
    for name in ("unfolded", "states-layer-0", "states-layer-1", "gradient-flow"):
        assert (tmp_path / f"{name}.png").stat().st_size > 3000, name


def test_inspect_svg_and_plain_output(lm_run, tmp_path):
    result = runner.invoke(app, ["inspect", str(lm_run), "--text", "not", "--out", str(tmp_path), "--svg"])
    assert result.exit_code == 0, result.output
    assert "GRU, 2 layer rows, 3 steps" in result.stdout and (tmp_path / "unfolded.svg").is_file()


def test_one_step_and_one_layer_are_counted_in_the_singular(tmp_path):
    tokenizer = CharTokenizer.fit("to be")
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, cell="lstm", embedding_size=4, hidden_size=3,
                                 num_layers=1)  # fmt: skip
    checkpoint.save_model(tmp_path / "run", LanguageModel(config), {"task": "lm", "model": asdict(config),
                                                                    "tokenizer": tokenizer.to_config()})  # fmt: skip
    result = runner.invoke(app, ["inspect", str(tmp_path / "run"), "--text", "t", "--out", str(tmp_path / "pictures")])
    assert result.exit_code == 0, result.output
    assert "LSTM, 1 layer row, 1 step\n" in result.stdout


def test_a_wav_for_a_language_model_is_refused(lm_run, tmp_path):
    result = runner.invoke(app, ["inspect", str(lm_run), "--wav", str(tmp_path / "a.wav")])
    assert result.exit_code == 2 and result.stderr.startswith("error: an lm run reads --text")
    assert len(result.stderr.strip().splitlines()) == 1


def test_inspect_of_a_directory_that_is_no_run_is_exit_code_2(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path), "--text", "x"])
    assert result.exit_code == 2 and "config.json does not exist" in result.stderr


def test_report_command_writes_one_static_page(lm_run):
    result = runner.invoke(app, ["report", str(lm_run), "--text", "or not", "--json"])
    assert result.exit_code == 0, result.output
    path = json.loads(result.stdout)["report"]
    assert path.endswith("report.html") and "data:image/png;base64," in open(path, encoding="utf-8").read()


def test_inspect_a_trained_forecaster_on_its_series(tmp_path):
    n = 120
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                          "temp": 12 + 4 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(size=n)})  # fmt: skip
    csv = tmp_path / "weather.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "run"
    train = ["forecast", "train", "--csv", str(csv), "--time-col", "date", "--target", "temp", "--horizon", "3",
             "--hidden-size", "4", "--epochs", "1", "--quiet", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert runner.invoke(app, train).exit_code == 0
    assert (out / "report.html").is_file() and (out / "inspect" / "unfolded.png").is_file()  # written by train
    result = runner.invoke(app, ["inspect", str(out), "--csv", str(csv), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    context = json.loads((out / "config.json").read_text())["model"]["context_length"]
    assert report["run_task"] == "forecast" and report["n"] == context and report["output"] == ["forecast"]
    assert report["input"][-1] == f"{frame['temp'].iloc[-1]:.3g}"
    wrong = runner.invoke(app, ["inspect", str(out), "--text", "hello"])
    assert wrong.exit_code == 2 and "a forecast run reads --csv" in wrong.stderr


def test_the_report_remembers_a_series_it_can_find_again(tmp_path, monkeypatch):
    """Trained from a relative path (or a built-in series' name), the report redraws from anywhere later."""
    monkeypatch.chdir(tmp_path)
    n = 90
    dates = pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"date": dates, "temp": np.sin(np.arange(n))}).to_csv("weather.csv", index=False)
    train = ["forecast", "train", "--csv", "weather.csv", "--time-col", "date", "--target", "temp", "--horizon", "3",
             "--hidden-size", "4", "--epochs", "1", "--quiet", "--device", "cpu", "--out", "run"]  # fmt: skip
    assert runner.invoke(app, train).exit_code == 0
    remembered = json.loads((tmp_path / "run" / "inspect" / "input.json").read_text())["csv"]
    assert remembered == str(tmp_path / "weather.csv")
    monkeypatch.chdir(tmp_path / "run")
    (tmp_path / "run" / "inspect" / "unfolded.png").unlink()
    assert runner.invoke(app, ["report", "."]).exit_code == 0
    assert (tmp_path / "run" / "inspect" / "unfolded.png").is_file()  # redrawn from the remembered series


def test_an_autoregressive_forecasters_steps_are_labelled_with_the_values_they_read(tmp_path):
    """Its context pass reads y_0 .. y_{L-2} (y_{L-1} feeds the first horizon step): the labels are those values."""
    n = 90
    frame = pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                          "temp": np.arange(n, dtype=float)})  # fmt: skip
    csv = tmp_path / "ramp.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "run"
    train = ["forecast", "train", "--csv", str(csv), "--time-col", "date", "--target", "temp", "--horizon", "3",
             "--hidden-size", "4", "--epochs", "1", "--decoder", "autoregressive", "--quiet", "--device", "cpu",
             "--out", str(out)]  # fmt: skip
    assert runner.invoke(app, train).exit_code == 0
    result = runner.invoke(app, ["inspect", str(out), "--csv", str(csv), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    context = json.loads((out / "config.json").read_text())["model"]["context_length"]
    assert report["input"] == [f"{v:.3g}" for v in range(n - context, n - 1)]
