"""The forecasting network: shapes, no look-ahead, a saved run that reloads, a backtest with known baselines."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data.series import SeriesSpec, series_from_frame
from rnnkit.data.windows import Scaler, make_windows, origins_between
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load
from rnnkit.tasks.backtest import BacktestOptions, run_backtest, score
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel
from rnnkit.tasks.forecast_highway import choose_alphas
from rnnkit.tasks.forecast_ridge import ALPHAS, _blocks, _overlapping
from rnnkit.tasks.forecast_training import (
    ForecastOptions,
    default_context,
    predict,
    prepare,
    season_length,
    train_forecaster,
    training_origins,
    validation_origins,
    validation_steps,
    validation_stretches,
)
from rnnkit.train import TrainConfig

TINY = {"hidden_size": 6, "dropout": 0.0}
FAST = TrainConfig(epochs=2, quiet=True, device="cpu")


def batch(n=3, context=5, horizon=4, targets=2, past=1, future=3):
    steps = context + horizon
    return {
        "target": torch.randn(n, steps, targets),
        "past": torch.randn(n, steps, past),
        "future": torch.randn(n, steps, future),
    }


def model(decoder, likelihood, **extra):
    config = ForecastConfig(
        num_targets=2, num_past=1, num_future=3, context_length=5, horizon=4, decoder=decoder, likelihood=likelihood,
        num_samples=50, **{**TINY, **extra},
    )  # fmt: skip
    return ForecastModel(config)


KINDS = [(d, lik) for d in ("direct", "autoregressive") for lik in ("quantile", "gaussian")]


@pytest.mark.parametrize(("decoder", "likelihood"), KINDS)
def test_forecast_shapes_and_sorted_quantiles(decoder, likelihood):
    net = model(decoder, likelihood).eval()
    quantiles = net.forecast(batch(), seed=0)
    assert quantiles.shape == (3, 4, 2, 3)
    assert torch.all(quantiles.diff(dim=-1) >= 0)
    output = net.train().loss(batch())
    output.loss.backward()
    assert torch.isfinite(output.loss) and output.units > 0
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize(("decoder", "likelihood"), KINDS)
def test_forecast_never_reads_the_horizon_targets_or_past(decoder, likelihood):
    net = model(decoder, likelihood).eval()
    b = batch()
    changed = {k: v.clone() for k, v in b.items()}
    changed["target"][:, 5:] += 100.0
    changed["past"][:, 5:] -= 100.0
    first = net.forecast(b, seed=1)
    second = net.forecast(changed, seed=1)
    torch.testing.assert_close(first, second)


def member_alone(ensemble: ForecastModel, k: int) -> ForecastModel:
    """A one-network model holding member ``k`` of ``ensemble`` (and its shared highway)."""
    single = ForecastModel(replace(ensemble.config, ensemble=1))
    single.members[0].load_state_dict(ensemble.members[k].state_dict())
    if ensemble.skip is not None:
        single.skip.load_state_dict(ensemble.skip.state_dict())
    return single


@pytest.mark.parametrize(("decoder", "likelihood"), [k for k in KINDS if k != ("autoregressive", "gaussian")])
def test_an_ensemble_forecasts_the_mean_of_its_members_quantiles(decoder, likelihood):
    net = model(decoder, likelihood, ensemble=3).eval()
    b = batch()
    members = [member_alone(net, k).eval().forecast(b) for k in range(3)]
    torch.testing.assert_close(net.forecast(b), torch.stack(members).mean(0))
    assert not torch.allclose(members[0], members[1])  # different starting weights


@pytest.mark.parametrize(("decoder", "likelihood"), KINDS)
def test_each_ensemble_member_follows_its_own_loss(decoder, likelihood):
    """The ensemble's loss is the mean of the members' losses: member k's gradient is its own loss's over K."""
    net = model(decoder, likelihood, ensemble=2).train()
    b = batch()
    net.loss(b).loss.backward()
    for k in range(2):
        single = member_alone(net, k).train()
        single.loss(b).loss.backward()
        for mine, alone in zip(net.members[k].parameters(), single.members[0].parameters(), strict=True):
            torch.testing.assert_close(mine.grad, alone.grad / 2)


def test_teacher_forced_loss_reads_no_value_after_its_step():
    net = model("autoregressive", "gaussian").eval()
    b = batch(n=1)
    b["target"].requires_grad_(True)
    params, _ = net._teacher_forced(b)
    # the output for step 3 (index 2 of steps 1 ..) reads targets 0 .. 2, and the rest of the context only
    # through its mean (the level); the horizon (steps 5 ..) not at all
    params[0, 0, 2, 0, 0].backward()  # member 0, window 0, step 3, target 0, the mean
    grad = b["target"].grad[0, :, 0]
    assert torch.all(grad[5:] == 0) and grad[3] == grad[4] and grad[2] != grad[3]


def test_ridge_highway_starts_at_the_least_squares_fit():
    """A sine is exactly linear in its past: the fitted, untrained model forecasts it, and the fit stays fixed."""
    times = pd.date_range("2022-01-01", periods=80, freq="D")
    frame = pd.DataFrame({"date": times, "y": 5 + np.sin(np.arange(80) * 0.4)})
    data = series_from_frame(frame, SeriesSpec("date", ("y",), calendar=False))
    scaler = Scaler.fit(data)
    windows = make_windows(data, scaler, 6, 3, lambda s: origins_between(6, 77))
    config = ForecastConfig(num_targets=1, context_length=6, horizon=3, linear_alpha=1e-9, **TINY)
    net = ForecastModel(config).eval()
    net.fit_linear(windows)
    assert not net.skip.weight.requires_grad
    batch = next(windows.batches(0))
    quantiles = net.forecast(batch)
    torch.testing.assert_close(quantiles[..., 1], batch["target"][:, 6:], atol=1e-4, rtol=0)
    assert torch.all(quantiles[..., 0] <= quantiles[..., 2])
    # cross-validation finds no reason to shrink an exact linear recurrence
    chosen = choose_alphas(replace(config, linear_alpha=0.0), windows, torch.device("cpu"))
    assert chosen[6].tolist() == [ALPHAS[0]] * 3
    # a refit of the highway alone (after training) keeps the head as it is
    head = [p.clone() for p in net.members[0].parameters()]
    weight = net.skip.weight.clone()
    with torch.no_grad():
        net.members[0].last.weight.fill_(0.5)
    net.fit_linear(make_windows(data, scaler, 6, 3, lambda s: origins_between(6, 40)), start_head=False)
    assert not torch.allclose(net.skip.weight, weight)
    assert torch.all(net.members[0].last.weight == 0.5)
    torch.testing.assert_close(net.members[0].last.bias, head[-1])


def per_lookback_design(windows, context: int, lookback: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy: the inputs on the last ``lookback`` steps centred on their mean (with a column of ones), the targets
    centred on that mean, and the mean, one row per window."""
    rows, targets, levels = [], [], []
    for b in windows.batches(0):
        for n in range(len(b["target"])):
            window = b["target"][n].double().numpy()
            level = window[context - lookback : context].mean(0)
            past, future = b["past"][n, context - 1].double().numpy(), b["future"][n, context].double().numpy()
            recent = (window[context - lookback : context] - level).ravel()
            rows.append(np.concatenate([recent, level, past, future, [1.0]]))
            targets.append((window[context:] - level).ravel())
            levels.append(level)
    return np.asarray(rows), np.asarray(targets), np.asarray(levels)


def numpy_ridge(x: np.ndarray, y: np.ndarray, alphas) -> np.ndarray:
    """One ridge solve per column of ``y`` with its own penalty, the intercept (last column of x) unshrunk."""
    alphas = np.broadcast_to(alphas, y.shape[1])
    weights = []
    for column, alpha in enumerate(alphas):
        penalty = alpha * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0
        weights.append(np.linalg.solve(x.T @ x + penalty, x.T @ y[:, column]))
    return np.stack(weights, axis=1)


def per_lookback_ridge(windows, context: int, lookback: int, alpha) -> np.ndarray:
    """numpy: one ridge fit on the last ``lookback`` steps centred on their mean, and its forecasts (W, H, C_y)."""
    x, y, levels = per_lookback_design(windows, context, lookback)
    fit = x @ numpy_ridge(x, y, alpha)
    return fit.reshape(len(x), -1, levels.shape[1]) + levels[:, None, :]


def test_lookback_highway_forecasts_the_mean_of_one_ridge_fit_per_lookback():
    """Two targets, a past covariate and the calendar: the highway stored on the whole context gives exactly the
    mean of ridge fits on the last 4, 7 and 10 steps (each centred on its own level)."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2022-01-01", periods=150, freq="D")
    frame = pd.DataFrame(
        {"date": times, "a": np.cumsum(rng.normal(size=150)), "b": rng.normal(size=150), "p": rng.normal(size=150)}
    )
    data = series_from_frame(frame, SeriesSpec("date", ("a", "b"), covariates=("p",)))
    windows = make_windows(data, Scaler.fit(data), 10, 3, lambda s: origins_between(10, 147), batch_size=64)
    first = data.series[0]
    config = ForecastConfig(
        num_targets=2, num_past=1, num_future=first.future.shape[1], context_length=10, horizon=3,
        lookbacks=(4, 7, 10), ensemble=3, **TINY,
    )  # fmt: skip
    net = ForecastModel(config).eval()
    net.fit_linear(windows)
    for member in net.members:
        member.last.bias.data.zero_()  # leave the highway's forecast alone (the head starts at zero weights)
    expected = np.mean([per_lookback_ridge(windows, 10, lookback, 1.0) for lookback in (4, 7, 10)], axis=0)
    forecast = torch.cat([net.forecast(b)[..., 1] for b in windows.batches(0)])
    np.testing.assert_allclose(forecast.double().numpy(), expected, atol=2e-5)
    # one lookback, the whole context: the plain fit
    single = ForecastModel(replace(config, lookbacks=(), ensemble=1)).eval()
    single.fit_linear(windows)
    single.members[0].last.bias.data.zero_()
    forecast = torch.cat([single.forecast(b)[..., 1] for b in windows.batches(0)])
    np.testing.assert_allclose(forecast.double().numpy(), per_lookback_ridge(windows, 10, 10, 1.0), atol=2e-5)


def two_target_windows(n=150, context=10, horizon=3):
    """A random walk and white noise as targets, a past covariate and the calendar; their windows."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2022-01-01", periods=n, freq="D")
    frame = pd.DataFrame(
        {"date": times, "a": np.cumsum(rng.normal(size=n)), "b": rng.normal(size=n), "p": rng.normal(size=n)}
    )
    data = series_from_frame(frame, SeriesSpec("date", ("a", "b"), covariates=("p",)))
    scaler = Scaler.fit(data)

    def windows(first, last):
        return make_windows(data, scaler, context, horizon, lambda s: origins_between(first, last), batch_size=64)

    return data, windows


def test_cross_validation_chooses_each_outputs_penalty_and_the_highway_uses_it():
    """Per lookback and output, the penalty of ALPHAS with the least absolute error over five contiguous held-out
    blocks, each forecast by a fit on the windows whose horizon stays clear of it, as numpy finds it; the highway
    fitted with those penalties is the mean of numpy's per-lookback fits with them."""
    data, windows = two_target_windows()
    every = windows(10, 147)
    config = ForecastConfig(
        num_targets=2, num_past=1, num_future=data.series[0].future.shape[1], context_length=10, horizon=3,
        lookbacks=(4, 10), ensemble=2, **TINY,
    )  # fmt: skip
    chosen = choose_alphas(config, every, torch.device("cpu"))
    assert set(chosen) == {4, 10}
    origin = np.arange(10, 148)  # the windows' origins, in order
    fold = 5 * (origin - 10) // len(origin)
    for lookback in (4, 10):
        x, y, _ = per_lookback_design(every, 10, lookback)
        errors = np.zeros((len(ALPHAS), y.shape[1]))
        for held in range(5):
            test = fold == held
            first, last = origin[test].min(), origin[test].max()
            train = ~test & ((origin + 3 <= first - 10) | (origin >= last + 3))
            for i, alpha in enumerate(ALPHAS):
                errors[i] += np.abs(y[test] - x[test] @ numpy_ridge(x[train], y[train], alpha)).sum(0)
        np.testing.assert_array_equal(chosen[lookback].numpy(), np.asarray(ALPHAS)[errors.argmin(0)])
    assert len(set(torch.cat(list(chosen.values())).tolist())) > 1  # the outputs do not all agree
    net = ForecastModel(config).eval()
    net.fit_linear(every, alphas=chosen)
    for member in net.members:
        member.last.bias.data.zero_()
    expected = np.mean([per_lookback_ridge(every, 10, k, chosen[k].numpy()) for k in (4, 10)], axis=0)
    forecast = torch.cat([net.forecast(b)[..., 1] for b in every.batches(0)])
    np.testing.assert_allclose(forecast.double().numpy(), expected, atol=2e-5)
    assert choose_alphas(config, windows(10, 25), torch.device("cpu")) is None  # too few windows: the default


def test_cross_validation_blocks_each_series_and_keeps_clear_of_the_held_out_steps():
    series = torch.tensor([0] * 10 + [1] * 5)
    origin = torch.cat([torch.arange(20, 30), torch.arange(100, 105)])
    fold = _blocks(series, origin, 5)
    assert fold.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 1, 2, 3, 4]
    # context 3, horizon 2: block 2 of series 0 (origins 24, 25) reads and forecasts steps 21 .. 26, block 2 of
    # series 1 (origin 102) steps 99 .. 103; each series keeps clear of its own block only
    near = _overlapping(series, origin, fold == 2, context=3, horizon=2)
    assert origin[near].tolist() == [20, 21, 22, 23, 24, 25, 26, 100, 101, 102, 103]


def test_training_records_the_chosen_penalties(tmp_path):
    data, _ = sine_set(n=120)
    options = ForecastOptions(horizon=3, context_length=10, lookbacks=(1.0, 0.5))
    summary = train_forecaster(data, data.spec, options, {**TINY, "linear_alpha": 0.0}, FAST, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["highway_alphas"] == summary["highway_alphas"]
    assert set(summary["highway_alphas"]) == {"5", "10"}
    assert all(len(a) == 3 and set(a) <= set(ALPHAS) for a in summary["highway_alphas"].values())
    fixed = train_forecaster(data, data.spec, options, TINY, FAST, tmp_path / "fixed")  # the default: 1.0
    assert "highway_alphas" not in fixed


def test_validation_sees_a_highway_fitted_before_it_and_the_saved_one_is_refitted_on_every_step(tmp_path):
    """Step 0's validation loss is that of the ridge fit on the windows whose horizon ends before validation
    (out of sample there, like every checkpoint's); the saved model's highway is then the fit on every training
    step, and its head is the trained one."""
    data, _ = sine_set(n=120)
    options = ForecastOptions(horizon=3, context_length=10)
    summary = train_forecaster(data, data.spec, options, TINY, FAST, tmp_path)
    assert summary["best_step"] == 0
    saved = load(tmp_path)
    _, _, _, scaler, _, valid = prepare(data, options, {"0": 120})
    valid_start = 120 - validation_steps(120, 3, 0.1)

    def ridge_only(end):
        net = ForecastModel(saved.config)
        windows = make_windows(data, scaler, 10, 3, lambda s: origins_between(10, end - 3))
        net.fit_linear(windows)
        return net

    before, every = ridge_only(valid_start), ridge_only(120)
    step0 = pd.read_csv(tmp_path / "log.csv").iloc[0]
    assert step0["step"] == 0
    assert step0["valid_loss"] == pytest.approx(before.evaluate(valid)["loss"], rel=1e-6)
    assert step0["valid_loss"] != pytest.approx(every.evaluate(valid)["loss"], rel=1e-3)  # in sample: lower
    torch.testing.assert_close(saved.skip.weight, every.skip.weight)
    torch.testing.assert_close(saved.skip.bias, every.skip.bias)
    # the head kept (the best step here was the untrained start: the band of the fit before validation)
    torch.testing.assert_close(saved.members[0].last.bias, before.members[0].last.bias)
    assert not torch.allclose(saved.members[0].last.bias, every.members[0].last.bias)


def test_validation_stretches_spread_over_the_training_steps_and_no_training_target_falls_in_one():
    one = ForecastOptions(horizon=3, valid_fraction=0.1)
    assert validation_stretches(120, one) == [(108, 120)]
    np.testing.assert_array_equal(training_origins(120, 10, one), origins_between(10, 105))
    np.testing.assert_array_equal(validation_origins(120, 10, one), origins_between(108, 117))
    spread = replace(one, valid_stretches=3)
    stretches = validation_stretches(120, spread)
    assert stretches == [(36, 40), (76, 80), (116, 120)]  # 12 validation steps, a stretch ending at each third
    train, valid = training_origins(120, 10, spread), validation_origins(120, 10, spread)
    held_out = {step for start, stop in stretches for step in range(start, stop)}
    assert not {t + h for t in train for h in range(3)} & held_out  # inputs may be, targets never
    assert {t + h for t in valid for h in range(3)} <= held_out
    # a stretch costs the origins of its steps and the H - 1 before it; the last has no origins after it
    assert len(train) == len(origins_between(10, 117)) - 2 * (4 + 2) - 4


def test_spread_validation_trains_and_validates_on_every_stretch(tmp_path):
    data, _ = sine_set(n=120)
    options = ForecastOptions(horizon=3, context_length=10, valid_stretches=3)
    summary = train_forecaster(data, data.spec, options, TINY, FAST, tmp_path)
    assert summary["valid"]["windows"] == len(validation_origins(120, 10, options)) == 6
    assert summary["train_windows"] == len(training_origins(120, 10, options))


def test_each_member_reads_only_its_lookback():
    net = model("direct", "quantile", linear="none", lookbacks=(2, 5), ensemble=2).eval()
    b = batch()
    changed = {k: v.clone() for k, v in b.items()}
    for key in changed:
        changed[key][:, :3] += 10.0  # steps member 0 (the last 2 of 5) does not read
    first, second = net._direct(b), net._direct(changed)
    level_shift = (net._level(changed["target"]) - net._level(b["target"])).unsqueeze(-1)
    torch.testing.assert_close(second[0], first[0] + level_shift)  # only the output's level moved
    assert not torch.allclose(second[1], first[1] + level_shift)


def test_lookbacks_set_the_windows_context(tmp_path):
    data, frame = sine_set()
    options = ForecastOptions(horizon=3, context_length=8, lookbacks=(0.5, 1, 1.5))
    train_forecaster(data, data.spec, options, {**TINY, "ensemble": 3}, FAST, tmp_path)
    config = load(tmp_path).config
    assert config.context_length == 12 and config.lookbacks == (4, 8, 12)
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    assert len(predict(tmp_path, csv)) == 3


def test_config_errors_are_one_sentence():
    with pytest.raises(RnnkitError, match="Unknown cell 'rnn'"):
        ForecastConfig(cell="rnn")
    with pytest.raises(RnnkitError, match="linear_alpha must be >= 0"):
        ForecastConfig(linear_alpha=float("nan"))
    with pytest.raises(RnnkitError, match="ridge alpha must not be negative"):
        BacktestOptions(ridge_alpha=float("nan"))
    with pytest.raises(RnnkitError, match=r"include 0\.5"):
        ForecastConfig(quantiles=(0.1, 0.9))
    with pytest.raises(RnnkitError, match="horizon must be at least 1"):
        ForecastOptions(horizon=0)
    with pytest.raises(RnnkitError, match="no linear highway"):
        model("autoregressive", "quantile").fit_linear()
    with pytest.raises(RnnkitError, match="between 1 and the context"):
        ForecastConfig(context_length=5, lookbacks=(3, 6))
    with pytest.raises(RnnkitError, match="direct decoder"):
        ForecastConfig(decoder="autoregressive", lookbacks=(3,))
    with pytest.raises(RnnkitError, match="positive multiples"):
        ForecastOptions(horizon=3, lookbacks=(0.5, 0))
    with pytest.raises(RnnkitError, match="linear_alpha must be >= 0"):
        ForecastConfig(linear_alpha=-1.0)


def test_season_and_context_defaults():
    assert [season_length(f) for f in ("h", "D", "W-SAT", "MS", "QS", "YS")] == [24, 7, 52, 12, 4, 1]
    assert default_context(7, 7, 1168) == 56
    assert default_context(52, 52, 1827) == 156
    assert default_context(12, 6, 60) == 12


def sine_set(n=120, with_id=False):
    times = pd.date_range("2022-01-01", periods=n, freq="D")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": times, "y": 10 + 3 * np.sin(np.arange(n) * 2 * np.pi / 7) + 0.1 * rng.normal(size=n)})
    return series_from_frame(frame, SeriesSpec("date", ("y",))), frame


def test_a_saved_run_reloads_to_the_same_forecasts(tmp_path):
    data, frame = sine_set()
    spec = SeriesSpec("date", ("y",))
    summary = train_forecaster(data, spec, ForecastOptions(horizon=3, context_length=14), TINY, FAST, tmp_path)
    assert summary["stopped_by"] == "epochs" and summary["valid"]["windows"] > 0
    reloaded = load(tmp_path)
    assert isinstance(reloaded, ForecastModel) and reloaded.config.context_length == 14
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    table = predict(tmp_path, csv, out_csv=tmp_path / "forecast.csv", plot=tmp_path / "forecast.png")
    assert list(table.columns) == ["date", "target", "q0.1", "q0.5", "q0.9"] and len(table) == 3
    assert str(table["date"].iloc[0].date()) == "2022-05-01"
    assert (tmp_path / "forecast.png").stat().st_size > 0
    pd.testing.assert_frame_equal(predict(tmp_path, csv), table)


def test_backtest_baselines_on_a_ramp_match_hand_values(tmp_path):
    times = pd.date_range("2022-01-01", periods=60, freq="D")
    data = series_from_frame(pd.DataFrame({"date": times, "y": np.arange(60.0)}), SeriesSpec("date", ("y",)))
    options = ForecastOptions(horizon=3, context_length=6, season=2, valid_fraction=0.1)
    backtest_options = BacktestOptions(test_fraction=0.25, ridge_alpha=1e-9)
    result = run_backtest(data, data.spec, options, TINY, FAST, tmp_path, backtest_options)
    methods = result["methods"]
    # origins 45, 48, ... 57: five of them; on a ramp y_t = t the naive forecast is short by h, the seasonal
    # naive (m = 2) by 2 ceil(h / 2), and the in-sample seasonal naive error (the MASE scale) is 2
    assert result["origins"] == 5 and result["n"] == 15
    assert methods["naive"]["mae"] == pytest.approx(2.0) and methods["naive"]["mase"] == pytest.approx(1.0)
    assert methods["seasonal_naive"]["mae"] == pytest.approx(8 / 3)
    assert methods["seasonal_naive"]["mase"] == pytest.approx(4 / 3)
    assert methods["naive"]["coverage"] == 1.0  # constant in-sample errors: a band of zero width on the truth
    assert methods["ridge"]["mase"] < 1e-3  # an unshrunk linear autoregression extrapolates a ramp
    assert result["best_baseline"] == "ridge" and set(methods) == {"rnnkit", "naive", "seasonal_naive", "ridge"}
    assert (tmp_path / "backtest.json").is_file() and "forecasts" not in result
    # the arrays behind the table: the model's median against the truth gives its MASE again
    arrays = score(load(tmp_path), data, backtest_options, with_forecasts=True)["forecasts"]
    assert arrays["quantiles"].shape == (5, 3, 1, 3) and arrays["truth"].shape == (5, 3, 1)
    median = arrays["quantiles"][..., 1]  # the default levels 0.1, 0.5, 0.9
    mase = (np.abs(arrays["truth"] - median) / arrays["scale"]).mean()
    assert mase == pytest.approx(methods["rnnkit"]["mase"])
    for name, points in arrays["baselines"].items():
        assert (np.abs(arrays["truth"] - points) / arrays["scale"]).mean() == pytest.approx(methods[name]["mase"])


def test_a_series_trained_on_to_its_end_is_not_scored(tmp_path):
    # blocked cross-validation trains on a stretch after the held-out one, as a series with no test part
    times = pd.date_range("2022-01-01", periods=60, freq="D")
    frames = [
        pd.DataFrame({"part": name, "date": times, "y": base + np.sin(np.arange(60) * 2 * np.pi / 7)})
        for name, base in (("before", 10.0), ("after", 20.0))
    ]
    data = series_from_frame(pd.concat(frames), SeriesSpec("date", ("y",), id_col="part"))
    options = ForecastOptions(horizon=3, context_length=7)
    train_forecaster(data, data.spec, options, TINY, FAST, tmp_path, ends={"before": 45, "after": 60})
    result = score(load(tmp_path), data, BacktestOptions())
    assert result["origins"] == 5 and result["n"] == 15  # 45, 48, ... 57 of "before" only
    assert np.isfinite(result["methods"]["rnnkit"]["mase"])


def test_one_global_model_forecasts_every_series_of_a_long_file(tmp_path):
    times = pd.date_range("2022-01-01", periods=60, freq="D")
    frames = [
        pd.DataFrame({"shop": name, "date": times, "sales": base + np.sin(np.arange(60) * 2 * np.pi / 7)})
        for name, base in (("north", 10.0), ("south", 50.0))
    ]
    csv = tmp_path / "sales.csv"
    pd.concat(frames).to_csv(csv, index=False)
    spec = SeriesSpec("date", ("sales",), id_col="shop")
    train_forecaster(csv, spec, ForecastOptions(horizon=2, context_length=7), TINY, FAST, tmp_path / "run")
    table = predict(tmp_path / "run", csv)
    assert list(table["shop"]) == ["north", "north", "south", "south"]
    # each series keeps its own scale: the forecasts sit near each shop's level
    assert abs(table["q0.5"].iloc[0] - 10) < 3 and abs(table["q0.5"].iloc[2] - 50) < 3


def test_autoregressive_gaussian_model_trains_and_predicts(tmp_path):
    data, frame = sine_set(n=90)
    options = ForecastOptions(horizon=3, context_length=10)
    model_options = {**TINY, "decoder": "autoregressive", "likelihood": "gaussian", "num_samples": 20}
    summary = train_forecaster(data, data.spec, options, model_options, FAST, tmp_path)
    assert summary["valid"]["loss"] < 5
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    table = predict(tmp_path, csv)
    assert len(table) == 3 and (table["q0.1"] <= table["q0.9"]).all()
    pd.testing.assert_frame_equal(predict(tmp_path, csv), table)  # sampled paths, yet the same forecast


def test_gaussian_sample_paths_of_a_window_do_not_depend_on_its_batch(tmp_path):
    """Predicting from a file cut at an origin gives the backtest's quantiles at that origin: each window's sample
    paths come from the seed and the window (its series and the time of its last context step), not from the
    windows beside it in a batch."""
    data, frame = sine_set(n=120)
    options = ForecastOptions(horizon=3, context_length=10)
    model_options = {**TINY, "decoder": "autoregressive", "likelihood": "gaussian", "num_samples": 20}
    backtest_options = BacktestOptions(test_fraction=0.25)
    run_backtest(data, data.spec, options, model_options, FAST, tmp_path, backtest_options)
    backtest = score(load(tmp_path), data, backtest_options, with_forecasts=True)["forecasts"]["quantiles"]
    for row, origin in enumerate(range(90, 118, 3)):
        csv = tmp_path / f"cut{origin}.csv"
        frame[:origin].to_csv(csv, index=False)
        table = predict(tmp_path, csv)
        np.testing.assert_allclose(table[["q0.1", "q0.5", "q0.9"]].to_numpy(), backtest[row, :, 0], rtol=1e-5)
    again = score(load(tmp_path), data, backtest_options, with_forecasts=True)["forecasts"]["quantiles"]
    np.testing.assert_array_equal(again, backtest)  # and the same seed, the same forecast


def test_real_daily_weather_backtest_beats_the_naive_forecasts(tmp_path):
    spec = SeriesSpec("date", ("temp_max",), ("precipitation", "temp_min", "wind"))
    options = BacktestOptions(stride=7, ridge_lags=56)
    fast = TrainConfig(epochs=2, quiet=True, device="cpu")
    result = run_backtest("seattle-weather", spec, ForecastOptions(horizon=7), {}, fast, tmp_path, options)
    methods = result["methods"]
    assert result["origins"] == 41
    # the reference figures of DATA.md: naive 1.04, seasonal naive 1.07
    assert methods["naive"]["mase"] == pytest.approx(1.037, abs=0.005)
    assert methods["seasonal_naive"]["mase"] == pytest.approx(1.071, abs=0.005)
    assert methods["rnnkit"]["mase"] < 0.76 and 0.7 <= methods["rnnkit"]["coverage"] <= 0.9
    # 41 origins are enough to tell a third less error from chance: origin by origin, rnnkit beats naive
    versus_naive = result["rnnkit_vs"]["naive"]
    assert versus_naive["mean_difference"] < -0.2 and versus_naive["p_value"] < 1e-3
