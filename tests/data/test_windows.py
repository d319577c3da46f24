"""Scaling fitted on training steps only, and windows that never look past their origin."""

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.series import SeriesSpec, series_from_frame
from rnnkit.data.windows import Scaler, make_windows, origins_between


def frame(values, rain=None):
    times = pd.date_range("2021-03-01", periods=len(values), freq="D")
    return pd.DataFrame({"date": times, "y": values, "rain": rain if rain is not None else np.zeros(len(values))})


SPEC = SeriesSpec("date", ("y",), covariates=("rain",))


def test_scaler_sees_only_the_training_steps():
    values = np.arange(20.0)
    data = series_from_frame(frame(values), SPEC)
    scaler = Scaler.fit(data, {"0": 10})
    mean, std = scaler.moments(data.series[0], data)
    np.testing.assert_allclose(mean[0], values[:10].mean())
    np.testing.assert_allclose(std[0], values[:10].std(), rtol=1e-6)
    assert std[1] == 1.0  # a constant covariate keeps unit spread
    assert Scaler.from_config(scaler.to_config()).stats == scaler.stats


def test_windows_hold_the_right_steps_in_scaled_units():
    values = np.arange(30.0)
    data = series_from_frame(frame(values, rain=values % 2), SPEC)
    scaler = Scaler.fit(data, {"0": 20})
    windows = make_windows(data, scaler, 5, 3, lambda s: origins_between(5, 20 - 3), batch_size=4)
    assert windows.num_windows == 13 and len(windows) == 4
    batch = next(windows.batches(0))
    assert (
        batch["target"].shape == (4, 8, 1) and batch["past"].shape == (4, 8, 1) and batch["future"].shape == (4, 8, 4)
    )
    mean, std = values[:20].mean(), values[:20].std()
    np.testing.assert_allclose(batch["target"][1, :, 0].numpy() * std + mean, np.arange(1, 9), rtol=1e-5)
    assert batch["origin"].tolist() == [5, 6, 7, 8]


def test_shuffled_order_depends_only_on_the_epoch():
    data = series_from_frame(frame(np.arange(40.0)), SPEC)
    windows = make_windows(data, Scaler.fit(data), 4, 2, lambda s: origins_between(4, 38), batch_size=8, shuffle=True)
    first = [b["origin"].tolist() for b in windows.batches(3)]
    assert first == [b["origin"].tolist() for b in windows.batches(3)]
    assert first != [b["origin"].tolist() for b in windows.batches(4)]
    assert sorted(o for chunk in first for o in chunk) == list(range(4, 39))


def test_forecast_windows_past_the_end_get_calendar_features():
    data = series_from_frame(frame(np.arange(10.0)), SPEC)
    windows = make_windows(data, Scaler.fit(data), 4, 3, lambda s: np.asarray([10]))
    batch = next(windows.batches(0))
    assert batch["target"].shape == (1, 7, 1)
    assert np.all(batch["target"][0, 4:].numpy() == 0)  # the unknown future is not made up
    assert np.all(np.abs(batch["future"][0, 4:].numpy()) > 0)


def test_file_future_covariates_must_cover_the_horizon():
    spec = SeriesSpec("date", ("y",), future_covariates=("rain",))
    data = series_from_frame(frame(np.arange(10.0)), spec)
    with pytest.raises(Exception, match="known-future rows"):
        make_windows(data, Scaler.fit(data), 4, 3, lambda s: np.asarray([10]))


def test_a_window_keeps_its_key_in_a_cut_or_shifted_file():
    """The key is the series and the time of the last context step, not a position in the file or the batch."""
    data = series_from_frame(frame(np.arange(20.0)), SPEC)
    whole = make_windows(data, Scaler.fit(data), 4, 3, lambda s: np.asarray([6, 12, 22]))
    cut = series_from_frame(frame(np.arange(20.0))[5:12], SPEC)  # steps 5 .. 11: the window at 12 is at 7
    alone = make_windows(cut, Scaler.fit(cut), 4, 3, lambda s: np.asarray([7]))
    keys = next(whole.batches(0))["key"]
    assert keys.shape == (3, 2) and keys[:, 0].unique().numel() == 1 and keys[:, 1].unique().numel() == 3
    assert next(alone.batches(0))["key"].tolist() == [keys[1].tolist()]
    # past the observed end (a forecast window) the time comes from the grid
    assert keys[2, 1] - keys[1, 1] == 10 * 86_400 * 10**9


def test_windows_on_integer_steps_are_keyed_by_the_step():
    """On a step index (0, 5, 10, ...) the key's time is the step itself, past the observed end too."""
    table = pd.DataFrame({"t": np.arange(0, 100, 5), "y": np.arange(20.0), "rain": np.zeros(20)})
    data = series_from_frame(table, SeriesSpec("t", ("y",), covariates=("rain",)))
    keys = next(make_windows(data, Scaler.fit(data), 4, 3, lambda s: np.asarray([6, 22])).batches(0))["key"]
    assert keys[:, 1].tolist() == [25, 105]  # the last context steps: 5 * 5 and, two steps past 95, 105
