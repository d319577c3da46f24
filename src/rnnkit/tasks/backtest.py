r"""Rolling-origin backtest: the network against naive, seasonal naive and ridge, in one table.

For each series of length T the test part is its last ``test_fraction`` of steps; its first step
:math:`t_0 = \lfloor (1 - f) T \rfloor` is the first forecast origin and the next ones follow every
``stride`` steps while a whole horizon fits: :math:`t_0, t_0 + s, \dots \le T - H`.

No refit and no leakage: the network, the scaler, the ridge weights, the baselines' error quantiles and
the MASE scale all see steps :math:`[0, t_0)` only. At an origin t every method reads the history before t
(which grows into the test part, as it would in use) and forecasts steps :math:`[t, t + H)`. Metrics are
in :mod:`rnnkit.tasks.forecast_metrics`; each baseline is also compared with the network origin by origin
(Diebold-Mariano on the per-origin MASE), which says whether a difference in the table is more than chance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rnnkit import checkpoint
from rnnkit.data.series import SeriesSet, SeriesSpec, load_series
from rnnkit.data.windows import Scaler, make_windows
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load
from rnnkit.tasks.forecast_baselines import (
    METHODS,
    RidgeAR,
    in_sample_errors,
    lag_windows,
    naive,
    residual_quantiles,
    seasonal_naive,
)
from rnnkit.tasks.forecast_metrics import diebold_mariano, interval_metrics, point_metrics, seasonal_scale
from rnnkit.tasks.forecast_training import ForecastOptions, forecast_windows, train_forecaster
from rnnkit.train import TrainConfig


@dataclass(frozen=True)
class BacktestOptions:
    test_fraction: float = 0.2  # the last part of each series, where the origins lie
    stride: int = 0  # steps between origins; 0: the horizon
    ridge_lags: int = 0  # 0: the network's context length
    ridge_alpha: float = 1.0  # 0: chosen per horizon step by blocked cross-validation

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise RnnkitError(f"test fraction must be in (0, 1), got {self.test_fraction}.")
        if self.stride < 0 or self.ridge_lags < 0 or not 0 <= self.ridge_alpha < math.inf:
            raise RnnkitError("stride, ridge lags and ridge alpha must not be negative.")


def first_origins(series_set: SeriesSet, test_fraction: float) -> dict[str, int]:
    """t0 of each series: where its test part starts (and its training steps end)."""
    return {s.id: int(len(s) * (1 - test_fraction)) for s in series_set.series}


def run_backtest(
    data: Path | str | SeriesSet,
    spec: SeriesSpec,
    options: ForecastOptions,
    model_options: dict,
    train_config: TrainConfig,
    out: Path | str,
    backtest_options: BacktestOptions = BacktestOptions(),
) -> dict:
    """Train on the steps before each series' first origin (into ``out``), then score every method."""
    series_set = data if isinstance(data, SeriesSet) else load_series(data, spec)
    ends = first_origins(series_set, backtest_options.test_fraction)
    summary = train_forecaster(series_set, spec, options, model_options, train_config, out, ends=ends)
    result = score(load(out), series_set, backtest_options)
    result["train"] = {k: summary[k] for k in ("stopped_by", "steps", "train_seconds", "best_valid", "best_step")}
    checkpoint.write_json(Path(out) / "backtest.json", result)
    return result


def score(model, series_set: SeriesSet, options: BacktestOptions, *, with_forecasts: bool = False) -> dict:
    """The backtest table of a model trained on the steps before ``run_config["train_ends"]``.

    ``with_forecasts``: also return the arrays behind it (not JSON): ``"forecasts"`` holds the model's quantiles
    ``(W, H, C_y, Q)``, the baselines' point forecasts and the truth ``(W, H, C_y)``, and the MASE scale
    ``(W, 1, C_y)``, origin by origin.
    """
    config, run_config = model.config, model.run_config
    horizon, levels = config.horizon, config.quantiles
    season = run_config["data"]["season"]
    stride = options.stride or horizon
    lags = options.ridge_lags or config.context_length
    ends = run_config["train_ends"]
    scaler = Scaler.from_config(run_config["scaler"])
    missing = [s.id for s in series_set.series if s.id not in ends]
    if missing:
        raise RnnkitError(f"series {missing[0]!r} was not in the model's training data; backtest the same file.")

    def origins(series):
        return np.arange(ends[series.id], len(series) - horizon + 1, stride)

    counts = [len(origins(s)) for s in series_set.series]
    if sum(counts) == 0:
        raise RnnkitError(f"the test part holds no whole horizon of {horizon} steps; lower the horizon or the stride.")
    moments = [scaler.moments(s, series_set) for s in series_set.series]
    windows = make_windows(series_set, scaler, config.context_length, horizon, origins, batch_size=256)
    network = forecast_windows(model, windows, moments)  # -> (W, H, C_y, Q)

    # every method's point forecasts (W, H, C_y) and quantiles (W, H, C_y, Q), the truth and the MASE scale
    median = levels.index(0.5)
    points = {"rnnkit": network[..., median], **{m: np.zeros(network.shape[:3]) for m in METHODS}}
    bands = {"rnnkit": network, **{m: np.zeros_like(network) for m in METHODS}}
    truth = np.zeros(network.shape[:3])
    scale = np.ones((len(network), 1, config.num_targets))
    ridge = _fit_ridges(series_set, ends, moments, lags, horizon, options.ridge_alpha, levels)
    row = 0
    for index, series in enumerate(series_set.series):
        end, chosen = ends[series.id], origins(series)
        if len(chosen) == 0:  # a series whose test part holds no whole horizon: trained on, not scored
            continue
        rows = slice(row, row + len(chosen))
        for target in range(config.num_targets):
            y = series.target[:, target].astype(np.float64)
            mean, std = moments[index][0][target], moments[index][1][target]
            truth[rows, :, target] = [y[t : t + horizon] for t in chosen]
            scale[rows, 0, target] = seasonal_scale(y[:end], season)
            weights, ridge_offsets = ridge[target]
            forecasts = {
                "naive": [naive(y[:t], horizon) for t in chosen],
                "seasonal_naive": [seasonal_naive(y[:t], horizon, season) for t in chosen],
                "ridge": [weights.predict((y[t - lags : t] - mean) / std) * std + mean for t in chosen],
            }
            offsets = {
                "naive": residual_quantiles(in_sample_errors("naive", y[:end], horizon, season, 1), levels),
                "seasonal_naive": residual_quantiles(
                    in_sample_errors("seasonal_naive", y[:end], horizon, season, 1), levels
                ),
                "ridge": ridge_offsets * std,
            }
            for name in METHODS:
                point = np.asarray(forecasts[name]).reshape(len(chosen), horizon)
                points[name][rows, :, target] = point
                # the baselines' bands: their point forecast plus quantiles of their in-sample errors
                bands[name][rows, :, target] = point[..., None] + offsets[name]
        row += len(chosen)

    methods = {
        name: {**point_metrics(truth, points[name], scale), **interval_metrics(truth, np.sort(bands[name], -1), levels)}
        for name in bands
    }
    best = min(METHODS, key=lambda m: methods[m]["mase"])
    best_mase = methods[best]["mase"]
    baselines = {name: points[name] for name in METHODS}
    versus = versus_baselines(points["rnnkit"], baselines, truth, scale, horizon, stride)
    arrays = {"forecasts": {"quantiles": network, "baselines": baselines, "truth": truth, "scale": scale}}
    return {
        **(arrays if with_forecasts else {}),
        "task": "forecast",
        "metrics": methods["rnnkit"],
        "methods": methods,
        "best_baseline": best,
        # relative MASE: -0.05 is 5% below the best baseline (undefined when that one is perfect)
        "mase_vs_best_baseline": methods["rnnkit"]["mase"] / best_mase - 1 if best_mase > 0 else None,
        # rnnkit against each baseline: the mean difference of their per-origin MASE, and whether it could be
        # chance (Diebold-Mariano p-value; below 0.05: a real difference)
        "rnnkit_vs": versus,
        "n": int(truth.size),
        "origins": int(sum(counts)),
        "horizon": horizon,
        "stride": stride,
        "season": season,
        "ridge_lags": lags,
        "interval": levels[-1] - levels[0],
        "options": asdict(options),
    }


def versus_baselines(points, baselines: dict, truth, scale, horizon: int, stride: int) -> dict:
    """Diebold-Mariano tests of point forecasts ``(W, H, C_y)`` against each baseline's, on each origin's mean scaled
    error; windows closer than the horizon share steps (``ceil(horizon / stride) - 1`` lags)."""

    def per_origin(forecast):
        return (np.abs(truth - forecast) / scale).mean(axis=(1, 2))

    shared = math.ceil(horizon / stride) - 1
    return {name: diebold_mariano(per_origin(points), per_origin(other), shared) for name, other in baselines.items()}


def _fit_ridges(series_set, ends, moments, lags, horizon, alpha, levels) -> list[tuple[RidgeAR, np.ndarray]]:
    """One ridge per target column, shared by the series; with its in-sample error quantiles (scaled)."""
    fitted = []
    for target in range(series_set.series[0].target.shape[1]):
        scaled = [
            (s.target[: ends[s.id], target] - moments[i][0][target]) / moments[i][1][target]
            for i, s in enumerate(series_set.series)
        ]
        model = RidgeAR.fit(scaled, lags, horizon, alpha)
        errors = [y - model.predict(x) for x, y in (lag_windows(z, lags, horizon, len(z)) for z in scaled) if len(x)]
        fitted.append((model, residual_quantiles(np.concatenate(errors), levels)))
    return fitted
