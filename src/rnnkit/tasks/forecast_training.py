"""Forecasting end to end: file -> checked series -> windows -> Trainer -> run directory -> forecasts.

The CLI's ``rnnkit forecast train|predict`` call these; a notebook can too::

    spec = SeriesSpec("date", ("temp_max",), covariates=("precipitation",))
    summary = train_forecaster("weather.csv", spec, ForecastOptions(horizon=7), {}, TrainConfig(), "runs/w")
    table = predict("runs/w", "weather.csv")      # one row per series, step and target: quantile columns

Training uses steps [0, end) of each series (all of them, or those before a backtest's first origin): the
scaler is fitted there, the last ``valid_fraction`` of it validates (picks the best checkpoint; or that share
spread over ``valid_stretches`` stretches, so that validation holds every season) and the windows whose horizon
misses validation train.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pandas.tseries.frequencies import to_offset

from rnnkit import checkpoint
from rnnkit.data.series import (
    Series,
    SeriesSet,
    SeriesSpec,
    check_length,
    future_times,
    load_series,
    load_series_as_trained,
)
from rnnkit.data.series_times import DAY, Freq, nominal_step
from rnnkit.data.windows import Scaler, Windows, make_windows, origins_between
from rnnkit.errors import RnnkitError
from rnnkit.plots import forecast_plot, training_curves
from rnnkit.tasks import load
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel
from rnnkit.tasks.forecast_highway import choose_alphas
from rnnkit.tasks.report import write_report
from rnnkit.train import TrainConfig, Trainer, seed_everything
from rnnkit.viz.figure import check_path


@dataclass(frozen=True)
class ForecastOptions:
    horizon: int
    context_length: int = 0  # 0: chosen from the season, see default_context
    season: int = 0  # 0: from the frequency (7 for daily steps, 24 for hourly, 52 weekly, 12 monthly; 1 int steps)
    batch_size: int = 64
    valid_fraction: float = 0.1  # of the training steps, at their end, for validation (0: none)
    # validation as that many stretches spread over the training steps, the last at their end (1: one stretch at
    # the end); spread, it holds every season instead of the last one
    valid_stretches: int = 1
    # multiples of the context, one per ensemble member in turn (ForecastConfig.lookbacks); the windows hold the
    # longest. Empty: every member reads the context
    lookbacks: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "lookbacks", tuple(float(scale) for scale in self.lookbacks))
        if not all(scale > 0 for scale in self.lookbacks):
            raise RnnkitError(f"lookbacks are positive multiples of the context, got {self.lookbacks}.")
        if self.horizon < 1:
            raise RnnkitError(f"horizon must be at least 1 step, got {self.horizon}.")
        if self.context_length < 0 or self.season < 0 or self.batch_size < 1:
            raise RnnkitError("context length and season must be >= 0 (0: automatic) and batch size >= 1.")
        if not 0 <= self.valid_fraction < 0.5:
            raise RnnkitError(f"valid_fraction must be in [0, 0.5), got {self.valid_fraction}.")
        if self.valid_stretches < 1:
            raise RnnkitError(f"valid_stretches must be at least 1, got {self.valid_stretches}.")


def season_length(freq: Freq) -> int:
    """The usual seasonal period in steps: a day of sub-daily steps, a week of days, a year of longer steps;
    none (1) on integer steps, whose calendar is unknown (give the season, e.g. 12 for monthly steps)."""
    if isinstance(freq, int):
        return 1
    step = nominal_step(to_offset(freq))
    if step < DAY:
        return max(1, round(DAY / step))
    days = step / DAY
    for low, high, season in ((1, 1, 7), (7, 7, 52), (28, 31, 12), (89, 92, 4)):
        if low <= days <= high:
            return season
    return 1


def default_context(season: int, horizon: int, train_steps: int) -> int:
    """8 seasons of context if the training steps hold ten times that, else 3 seasons, else one."""
    for seasons in (8, 3, 1):
        if 10 * seasons * season <= train_steps:
            return max(seasons * season, horizon)
    return max(1, min(2 * horizon, train_steps // 4))


def lookback_steps(scales: tuple[float, ...], context: int) -> tuple[int, ...]:
    """Each member's lookback in steps: ``scales`` times the context, at least one step."""
    return tuple(max(1, round(scale * context)) for scale in scales)


def validation_steps(end: int, horizon: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(horizon, math.ceil(fraction * end))


def validation_stretches(end: int, options: ForecastOptions) -> list[tuple[int, int]]:
    """The validation steps of a series trained on steps [0, end): ``[start, stop)`` of each of
    ``options.valid_stretches`` stretches of a horizon or more, the k-th ending at (k + 1) / n of ``end``."""
    total = validation_steps(end, options.horizon, options.valid_fraction)
    if total == 0:
        return []
    n = options.valid_stretches
    size = max(options.horizon, math.ceil(total / n))
    return [(round((k + 1) * end / n) - size, round((k + 1) * end / n)) for k in range(n)]


def training_origins(end: int, context: int, options: ForecastOptions) -> np.ndarray:
    """Origins whose horizon lies in steps [0, end) and misses every validation stretch (a window may read a
    validation step in its context: it is an input there, never a target)."""
    origins = origins_between(context, end - options.horizon)
    for start, stop in validation_stretches(end, options):
        origins = origins[(origins + options.horizon <= start) | (origins >= stop)]
    return origins


def validation_origins(end: int, context: int, options: ForecastOptions) -> np.ndarray:
    """Origins whose horizon lies in a validation stretch."""
    parts = [
        origins_between(max(context, start), stop - options.horizon)
        for start, stop in validation_stretches(end, options)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def prepare(
    series_set: SeriesSet, options: ForecastOptions, ends: dict[str, int], *, seed: int = 0
) -> tuple[int, int, tuple[int, ...], Scaler, Windows, Windows | None]:
    """Season, context (the windows': the longest lookback), lookbacks, scaler and the train / validation windows
    of steps [0, ends[id]); ``seed`` orders the training windows (differently each epoch)."""
    shortest = min(ends.values())
    if options.horizon >= shortest:
        raise RnnkitError(
            f"horizon {options.horizon} is longer than the data ({shortest} training steps in the shortest "
            "series); give a shorter --horizon or more data."
        )
    season = options.season or season_length(series_set.freq)
    base = options.context_length or default_context(season, options.horizon, shortest)
    lookbacks = lookback_steps(options.lookbacks, base)
    context = max(lookbacks, default=base)
    valid = validation_steps(shortest, options.horizon, options.valid_fraction)
    needed = context + options.horizon + valid + 1
    if shortest < needed:
        raise RnnkitError(
            f"a series has {shortest} training steps but needs at least {needed} (context {context} + horizon "
            f"{options.horizon} + validation {valid}); give a shorter --context or --horizon, or more data."
        )
    scaler = Scaler.fit(series_set, ends)

    train = make_windows(
        series_set, scaler, context, options.horizon, lambda s: training_origins(ends[s.id], context, options),
        batch_size=options.batch_size, shuffle=True, seed=seed,
    )  # fmt: skip
    valid_windows = None
    if valid:
        valid_windows = make_windows(
            series_set, scaler, context, options.horizon, lambda s: validation_origins(ends[s.id], context, options),
            batch_size=256,
        )  # fmt: skip
    return season, context, lookbacks, scaler, train, valid_windows


def fit_ridge_highway(
    model: ForecastModel,
    series_set: SeriesSet,
    scaler: Scaler,
    origins: Callable[[Series], np.ndarray],
    *,
    start_head: bool = True,
) -> dict | None:
    """Fit ``model``'s ridge highway on the windows at ``origins(series)`` (the penalties chosen by cross-validation
    over the same windows where the config asks for it); returns those penalties, or None.
    ``start_head``: also start the head at the fit's error band (:meth:`ForecastModel.fit_linear`)."""
    context, horizon = model.config.context_length, model.config.horizon
    every = make_windows(series_set, scaler, context, horizon, origins)
    alphas = None
    if not model.config.linear_alpha:  # the penalty per output, by cross-validation over the same windows
        alphas = choose_alphas(model.config, every, torch.device("cpu"))
    model.fit_linear(every, alphas=alphas, start_head=start_head)
    return alphas


def train_forecaster(
    data: Path | str | SeriesSet,
    spec: SeriesSpec,
    options: ForecastOptions,
    model_options: dict,
    train_config: TrainConfig,
    out: Path | str,
    *,
    ends: dict[str, int] | None = None,
    resume: bool = False,
) -> dict:
    """Train a forecaster on steps [0, ends[id]) of each series (all steps by default); returns the summary."""
    out = Path(out)
    series_set = data if isinstance(data, SeriesSet) else load_series(data, spec)
    check_length(series_set, 2, "a forecast needs some history")
    ends = ends or {s.id: len(s) for s in series_set.series}
    season, context, lookbacks, scaler, train, valid = prepare(series_set, options, ends, seed=train_config.seed)
    first = series_set.series[0]
    resumed = checkpoint.resumed_config(out, "forecast") if resume else {}
    shape = {
        "num_targets": first.target.shape[1],
        "num_past": first.past.shape[1],
        "num_future": first.future.shape[1],
        "context_length": context,
        "horizon": options.horizon,
        "lookbacks": lookbacks,
    }
    config = ForecastConfig(**(resumed["model"] if resumed else {**shape, **model_options}))  # --resume: its own
    if resumed:  # the windows come from these data and options: the run's model must read them as they are
        expected = ForecastConfig(**shape)
        name = next((name for name in shape if getattr(config, name) != getattr(expected, name)), None)
        if name is not None:
            raise RnnkitError(
                f"the run in {out} was trained with {name} {getattr(config, name)}, these data and options give "
                f"{getattr(expected, name)}; resume with the data and options it was started with."
            )
    run_config = {
        "task": "forecast",
        "model": asdict(config),
        # the grid as read, so predict reads a file on the same one: dates at a frequency or int steps
        "series": {
            **asdict(spec),
            "time_index": series_set.time_index,
            "freq": series_set.freq,
            "calendar": list(series_set.calendar),
        },
        "data": {**asdict(options), "season": season, "context_length": context},
        "scaler": scaler.to_config(),
        "train_ends": ends,
    }
    seed_everything(train_config.seed)  # the initial weights too depend on the seed, not on what ran before
    model = ForecastModel(config)
    ridge = config.decoder == "direct" and config.linear == "ridge"
    alphas = None
    if ridge and not resume:
        # the highway the network trains beside sees no validation step, so validation judges both out of
        # sample and weighs each checkpoint against the untrained start fairly; fitted on validation's steps too
        # it would be in sample there, and training would have to beat an in-sample fit to be kept
        alphas = fit_ridge_highway(model, series_set, scaler, lambda s: training_origins(ends[s.id], context, options))
    trainer = Trainer(model, train_config, out, train, valid, run_config=run_config)
    metrics_file = out / "metrics.json"
    before = checkpoint.read_json(metrics_file) if resume and metrics_file.is_file() else {}
    summary = trainer.fit(resume=resume)
    if not trainer.is_main:  # under torchrun, rank 0 reports
        return summary
    summary.update(train_windows=train.num_windows, context_length=context, season=season)
    if valid is not None:
        chosen = load(out)
        if "valid" in before and before.get("best_step") == summary.get("best_step"):
            # resumed, and still the model the last run chose: its highway is refitted on validation's steps
            # by now, so the figure measured before that refit stands
            summary["valid"] = before["valid"]
        else:  # before the refit below, so out of sample (an interrupted run is refitted too, and resumed later)
            summary["valid"] = chosen.to(trainer.device).evaluate(valid)
        if ridge:
            # then the chosen model's highway is refitted on every training step, its head kept: a trending
            # series needs its latest steps in the fit (Mauna Loa CO2: without validation's 3.5 years, the
            # backtest's MASE went from 0.40 to 0.64-0.71)
            alphas = fit_ridge_highway(
                chosen.cpu(), series_set, scaler, lambda s: origins_between(context, ends[s.id] - options.horizon),
                start_head=False,
            )  # fmt: skip
            checkpoint.save_model(out, chosen, run_config)
    if alphas:  # the highway's penalty per lookback and output (horizon step, then target)
        summary["highway_alphas"] = {str(lookback): alpha.tolist() for lookback, alpha in sorted(alphas.items())}
    summary["parameters"] = sum(p.numel() for p in trainer.model.parameters())
    checkpoint.write_json(metrics_file, summary)
    if (out / "log.csv").exists():
        training_curves(out / "log.csv", out / "loss.png", title=f"{config.cell} forecaster, horizon {config.horizon}")
    if summary["stopped_by"] != "interrupted":
        write_report(out, csv=None if isinstance(data, SeriesSet) else data)
    return summary


def forecast_windows(
    model: ForecastModel, windows: Windows, scalers: list[tuple[np.ndarray, np.ndarray]], *, seed: int = 0
) -> np.ndarray:
    """Quantiles ``(W, H, C_y, Q)`` in the data's units, for every window in order; sample paths (the
    autoregressive Gaussian's) come from ``seed`` and each window's key: the same forecast every time."""
    device = model.levels.device
    parts = []
    for batch in windows.batches(0):
        batch = {k: v.to(device) for k, v in batch.items()}
        quantiles = model.forecast(batch, seed=seed).cpu().double().numpy()
        num_y = quantiles.shape[2]
        mean = np.stack([scalers[i][0][:num_y] for i in batch["series"].tolist()])  # -> (N, C_y)
        std = np.stack([scalers[i][1][:num_y] for i in batch["series"].tolist()])
        parts.append(quantiles * std[:, None, :, None] + mean[:, None, :, None])
    return np.concatenate(parts) if parts else np.zeros((0, model.config.horizon, model.config.num_targets, 0))


def predict(
    directory: Path | str, data: Path | str, *, out_csv: Path | str | None = None, plot: Path | str | None = None
) -> pd.DataFrame:
    """Forecast the horizon after the last step of every series in ``data``; one row per series, step, target."""
    if plot is not None:
        check_path(plot)
    model = load(directory, task="forecast")
    run_config = model.run_config
    series_set = load_series_as_trained(data, run_config["series"])
    spec = series_set.spec
    config = model.config
    check_length(series_set, config.context_length, f"the model reads a context of {config.context_length} steps")
    scaler = Scaler.from_config(run_config["scaler"])
    windows = make_windows(
        series_set, scaler, config.context_length, config.horizon, lambda s: np.asarray([len(s)]), batch_size=256
    )
    quantiles = forecast_windows(model, windows, [scaler.moments(s, series_set) for s in series_set.series])
    names = [f"q{q:g}" for q in config.quantiles]
    rows = []
    for series, forecast in zip(series_set.series, quantiles, strict=True):
        times = future_times(series, series_set.freq, config.horizon)
        for index, target in enumerate(spec.targets):
            frame = pd.DataFrame(forecast[:, index], columns=names)
            frame.insert(0, "target", target)
            frame.insert(0, spec.time_col, times)
            if spec.id_col:
                frame.insert(0, spec.id_col, series.id)
            rows.append(frame)
    table = pd.concat(rows, ignore_index=True)
    if out_csv is not None:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_csv, index=False)
    if plot is not None:
        series = series_set.series[0]
        shown = min(len(series), max(4 * config.horizon, config.context_length))
        forecast_plot(
            series.times[-shown:],
            series.target[-shown:, 0],
            future_times(series, series_set.freq, config.horizon),
            quantiles[0, :, 0],
            config.quantiles,
            plot,
            title=f"{spec.targets[0]}" + (f" ({series.id})" if spec.id_col else ""),
        )
    return table
