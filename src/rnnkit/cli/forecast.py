"""``rnnkit forecast train | predict | backtest``: probabilistic multi-step forecasts from a CSV or Parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnkit.checkpoint import read_config
from rnnkit.cli import options as o
from rnnkit.data.series import SeriesSpec
from rnnkit.errors import RnnkitError
from rnnkit.tasks.backtest import BacktestOptions, run_backtest
from rnnkit.tasks.forecast import ForecastConfig
from rnnkit.tasks.forecast_training import ForecastOptions, predict, train_forecaster

DEFAULT = ForecastConfig()  # the model flags' defaults are the config's
DEFAULT_QUANTILES = ",".join(f"{q:g}" for q in DEFAULT.quantiles)

app = typer.Typer(help="Time-series forecasting: train, predict with intervals, backtest against baselines.")

Csv = Annotated[
    Path,
    typer.Option(
        "--csv", help="CSV or Parquet file (a time column, numeric columns), or seattle-weather, seattle-temps, co2."
    ),
]
TimeCol = Annotated[str, typer.Option(help="Column holding the timestamps, or integer steps (0, 1, 2 or 1990, 1991).")]
TimeIndex = Annotated[
    str,
    typer.Option(
        help="How to read the time column: auto (integers are steps unless all could be YYYYMMDD dates), dates "
        "or steps."
    ),
]
Target = Annotated[list[str], typer.Option(help="Column(s) to forecast; repeat the flag or separate by commas.")]
Covariates = Annotated[
    list[str] | None, typer.Option(help="Past-observed covariates (e.g. precipitation); repeat or comma-separate.")
]
FutureCovariates = Annotated[
    list[str] | None, typer.Option(help="Covariates known ahead; rows after the last target give their future.")
]
IdCol = Annotated[str | None, typer.Option(help="Long format: the column naming each series.")]
Horizon = Annotated[int, typer.Option(help="Steps to forecast.")]
Context = Annotated[int, typer.Option("--context", help="Steps the model reads (0: 8 seasons, or fewer if short).")]
Season = Annotated[
    int, typer.Option(help="Seasonal period in steps (0: from the frequency: 7 daily, 24 hourly; 1 on integer steps).")
]
Fill = Annotated[bool, typer.Option("--fill", help="Interpolate missing time steps and empty values.")]
Calendar = Annotated[
    bool,
    typer.Option(help="Add day-of-year, day-of-week and hour features from the timestamps (none on integer steps)."),
]
Cell = Annotated[str, typer.Option(help="lstm or gru.")]
Layers = Annotated[int, typer.Option(help="Recurrent layers.")]
HiddenSize = Annotated[int, typer.Option(help="Units per recurrent layer and in the head.")]
Dropout = Annotated[float, typer.Option(help="Dropout on the encoder's state and in the head.")]
Decoder = Annotated[str, typer.Option(help="direct (all steps at once) or autoregressive (DeepAR style).")]
Likelihood = Annotated[str, typer.Option(help="quantile (pinball loss) or gaussian (negative log likelihood).")]
Quantiles = Annotated[str, typer.Option(help="Quantile levels to forecast, comma-separated; must include 0.5.")]
Ensemble = Annotated[
    int, typer.Option(help="Networks trained side by side from different starts; forecasts average their quantiles.")
]
Lookbacks = Annotated[
    str,
    typer.Option(
        help="Multiples of the context each ensemble member reads in turn, comma-separated (e.g. 0.5,1,1.5); "
        "the highway averages a ridge fit per lookback. Empty: all read the context."
    ),
]
BatchSize = Annotated[int, typer.Option(help="Windows per batch.")]
ValidFraction = Annotated[float, typer.Option(help="Last part of the training steps used for validation.")]
ValidStretches = Annotated[
    int,
    typer.Option(
        help="Validation as this many stretches spread over the training steps, the last at their end "
        "(1: one stretch at the end; more: validation holds every season)."
    ),
]


def _columns(values: list[str] | None) -> tuple[str, ...]:
    """Repeated flags and comma-separated lists alike: ``--target a,b`` == ``--target a --target b``."""
    return tuple(name.strip() for value in values or () for name in value.split(",") if name.strip())


def _numbers(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(q) for q in text.split(",") if q.strip())
    except ValueError:
        raise RnnkitError(f"{flag} must be numbers separated by commas, got {text!r}.") from None


def _spec(*, time_col, target, covariates, future_covariates, id_col, fill, calendar, time_index) -> SeriesSpec:
    return SeriesSpec(
        time_col=time_col,
        targets=_columns(target),
        covariates=_columns(covariates),
        future_covariates=_columns(future_covariates),
        id_col=id_col,
        fill=fill,
        calendar=calendar,
        time_index=time_index,
    )


def _model_options(*, cell, layers, hidden_size, dropout, decoder, likelihood, quantiles, ensemble) -> dict:
    return {
        "ensemble": ensemble,
        "cell": cell,
        "num_layers": layers,
        "hidden_size": hidden_size,
        "dropout": dropout,
        "decoder": decoder,
        "likelihood": likelihood,
        "quantiles": _numbers(quantiles, "--quantiles"),
    }


@app.command()
@o.training_options(epochs=30)
def train(
    csv: Csv,
    time_col: TimeCol,
    target: Target,
    horizon: Horizon,
    out: o.Out,
    covariates: Covariates = None,
    future_covariates: FutureCovariates = None,
    id_col: IdCol = None,
    fill: Fill = False,
    calendar: Calendar = True,
    time_index: TimeIndex = "auto",
    context: Context = 0,
    season: Season = 0,
    cell: Cell = DEFAULT.cell,
    layers: Layers = DEFAULT.num_layers,
    hidden_size: HiddenSize = DEFAULT.hidden_size,
    dropout: Dropout = DEFAULT.dropout,
    decoder: Decoder = DEFAULT.decoder,
    likelihood: Likelihood = DEFAULT.likelihood,
    quantiles: Quantiles = DEFAULT_QUANTILES,
    ensemble: Ensemble = DEFAULT.ensemble,
    lookbacks: Lookbacks = "",
    batch_size: BatchSize = ForecastOptions.batch_size,
    valid_fraction: ValidFraction = ForecastOptions.valid_fraction,
    valid_stretches: ValidStretches = ForecastOptions.valid_stretches,
    *,
    training: o.Training,
) -> None:
    """Train a forecaster on every step of the file (its last part validates) and save it in --out.

    Example: rnnkit forecast train --csv seattle-weather --time-col date --target temp_max --covariates
    precipitation,temp_min,wind --horizon 7 --out runs/weather
    """
    spec = _spec(
        time_col=time_col, target=target, covariates=covariates, future_covariates=future_covariates,
        id_col=id_col, fill=fill, calendar=calendar, time_index=time_index,
    )  # fmt: skip
    options = ForecastOptions(
        horizon=horizon, context_length=context, season=season, batch_size=batch_size, valid_fraction=valid_fraction,
        valid_stretches=valid_stretches, lookbacks=_numbers(lookbacks, "--lookbacks"),
    )  # fmt: skip
    model_options = _model_options(
        cell=cell, layers=layers, hidden_size=hidden_size, dropout=dropout, decoder=decoder, likelihood=likelihood,
        quantiles=quantiles, ensemble=ensemble,
    )  # fmt: skip
    summary = train_forecaster(csv, spec, options, model_options, training.config(), out, resume=training.resume)
    valid = summary.get("valid", {})
    if training.json_output:
        o.print_json({"task": "forecast", "metrics": valid, "n": valid.get("windows", 0), "summary": summary})
        return
    typer.echo(o.stop_line(summary))
    if valid:
        # the loss the run's model trains on (--resume keeps the run's likelihood, not the flag's)
        trained_on = read_config(out)["model"]["likelihood"]
        loss_name = "pinball loss" if trained_on == "quantile" else "Gaussian negative log likelihood"
        typer.echo(
            f"validation: {loss_name} {valid['loss']:.4f}, median MAE {valid['mae']:.4f} (scaled units) over "
            f"{valid['windows']} windows; model in {out}"
        )


@app.command("predict")
def predict_command(
    run: o.RunDir,
    csv: Csv,
    out_csv: Annotated[Path | None, typer.Option(help="Write the forecasts here (CSV with quantile columns).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw history, median and interval band (PNG or SVG).")] = None,
    json_output: o.Json = False,
) -> None:
    """Forecast the horizon after the last step of each series in the file, with quantiles.

    Example: rnnkit forecast predict runs/weather --csv seattle-weather --out-csv forecast.csv --plot forecast.png
    """
    table = predict(run, csv, out_csv=out_csv, plot=plot)
    if json_output:
        records = _jsonable(table)
        o.print_json({"task": "forecast", "n": len(table), "forecasts": records, "out_csv": out_csv and str(out_csv)})
        return
    if out_csv is None:
        typer.echo(table.to_csv(index=False), nl=False)
    else:
        typer.echo(f"{len(table)} forecast rows written to {out_csv}")
    if plot is not None:
        typer.echo(f"plot: {plot}")


def _jsonable(table) -> list[dict]:
    """The rows as the CSV writes them: times as text (dates alone when every time is midnight, as pandas
    writes them), numbers as numbers."""
    import pandas as pd  # here: the CLI starts without pandas

    table = table.copy()
    for name in table.columns:
        column = table[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            midnight = (column == column.dt.normalize()).all()
            table[name] = column.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")
    records = table.to_dict("records")
    return [{k: (str(v) if not isinstance(v, int | float | str) else v) for k, v in r.items()} for r in records]


@app.command()
@o.training_options(epochs=30, without=("resume",))
def backtest(
    csv: Csv,
    time_col: TimeCol,
    target: Target,
    horizon: Horizon,
    out: o.Out,
    covariates: Covariates = None,
    future_covariates: FutureCovariates = None,
    id_col: IdCol = None,
    fill: Fill = False,
    calendar: Calendar = True,
    time_index: TimeIndex = "auto",
    context: Context = 0,
    season: Season = 0,
    test_fraction: Annotated[float, typer.Option(help="Last part of each series where the origins lie.")] = 0.2,
    stride: Annotated[int, typer.Option(help="Steps between forecast origins (0: the horizon).")] = 0,
    ridge_lags: Annotated[int, typer.Option(help="Lags of the ridge baseline (0: the model's context).")] = 0,
    ridge_alpha: Annotated[
        float, typer.Option(help="Ridge baseline's penalty on the scaled lags; 0: chosen per step by cross-validation.")
    ] = 1.0,
    cell: Cell = DEFAULT.cell,
    layers: Layers = DEFAULT.num_layers,
    hidden_size: HiddenSize = DEFAULT.hidden_size,
    dropout: Dropout = DEFAULT.dropout,
    decoder: Decoder = DEFAULT.decoder,
    likelihood: Likelihood = DEFAULT.likelihood,
    quantiles: Quantiles = DEFAULT_QUANTILES,
    ensemble: Ensemble = DEFAULT.ensemble,
    lookbacks: Lookbacks = "",
    batch_size: BatchSize = ForecastOptions.batch_size,
    valid_fraction: ValidFraction = ForecastOptions.valid_fraction,
    valid_stretches: ValidStretches = ForecastOptions.valid_stretches,
    *,
    training: o.Training,
) -> None:
    """Rolling-origin backtest: train on the steps before the test part, forecast from every origin in it,
    and compare with naive, seasonal naive and ridge forecasts in one table.

    Example: rnnkit forecast backtest --csv co2 --time-col date --target co2 --fill --horizon 52
    --ridge-lags 156 --out runs/co2-backtest
    """
    spec = _spec(
        time_col=time_col, target=target, covariates=covariates, future_covariates=future_covariates,
        id_col=id_col, fill=fill, calendar=calendar, time_index=time_index,
    )  # fmt: skip
    options = ForecastOptions(
        horizon=horizon, context_length=context, season=season, batch_size=batch_size, valid_fraction=valid_fraction,
        valid_stretches=valid_stretches, lookbacks=_numbers(lookbacks, "--lookbacks"),
    )  # fmt: skip
    model_options = _model_options(
        cell=cell, layers=layers, hidden_size=hidden_size, dropout=dropout, decoder=decoder, likelihood=likelihood,
        quantiles=quantiles, ensemble=ensemble,
    )  # fmt: skip
    config = training.config()
    backtest_options = BacktestOptions(
        test_fraction=test_fraction, stride=stride, ridge_lags=ridge_lags, ridge_alpha=ridge_alpha
    )
    result = run_backtest(csv, spec, options, model_options, config, out, backtest_options)
    if training.json_output:
        o.print_json(result)
        return
    typer.echo(format_table(result))


def format_table(result: dict) -> str:
    """The backtest as a text table, one row per method, the best MASE marked."""
    interval = f"cover{result['interval'] * 100:.0f}%"
    lines = [f"{'method':<16}{'MAE':>10}{'RMSE':>10}{'MASE':>8}{'sMAPE%':>8}{'pinball':>10}{interval:>10}"]
    best = min(result["methods"], key=lambda m: result["methods"][m]["mase"])
    for name, m in result["methods"].items():
        mark = " *" if name == best else ""
        lines.append(
            f"{name:<16}{m['mae']:>10.4g}{m['rmse']:>10.4g}{m['mase']:>8.3f}{m['smape']:>8.2f}"
            f"{m['pinball']:>10.4g}{m['coverage'] * 100:>9.1f}%{mark}"
        )
    relative = result["mase_vs_best_baseline"]
    lines.append(
        f"{result['origins']} origins every {result['stride']} steps, horizon {result['horizon']}, season "
        f"{result['season']}, ridge on {result['ridge_lags']} lags; MASE vs the best baseline "
        f"({result['best_baseline']}): " + ("n/a" if relative is None else f"{relative:+.1%}")
    )
    tests = ", ".join(f"{name} p = {test['p_value']:.2g}" for name, test in result["rnnkit_vs"].items())
    lines.append(f"Diebold-Mariano test of rnnkit against each baseline (per-origin MASE): {tests}")
    return "\n".join(lines)
