"""Naive, seasonal naive and ridge autoregression on series whose forecasts are known exactly."""

import numpy as np
import pytest

from rnnkit.errors import RnnkitError
from rnnkit.tasks.forecast_baselines import (
    RidgeAR,
    in_sample_errors,
    lag_windows,
    naive,
    residual_quantiles,
    seasonal_naive,
)
from rnnkit.tasks.forecast_ridge import ALPHAS


def test_naive_and_seasonal_naive():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(naive(history, 3), [5, 5, 5])
    np.testing.assert_array_equal(seasonal_naive(history, 5, 2), [4, 5, 4, 5, 4])
    with pytest.raises(RnnkitError, match="season"):
        seasonal_naive(history, 2, 6)


def test_lag_windows_stop_before_the_end():
    X, Y = lag_windows(np.arange(10.0), 3, 2, 8)
    assert X.shape == (4, 3) and Y.shape == (4, 2)
    np.testing.assert_array_equal(X[-1], [3, 4, 5])
    np.testing.assert_array_equal(Y[-1], [6, 7])  # the last window's targets end at step 7 < 8


def test_ridge_recovers_a_noise_free_autoregression():
    # a sine obeys y_t = 2 cos(w) y_{t-1} - y_{t-2} exactly
    w = 0.3
    y = 1.0 + np.sin(w * np.arange(200))
    model = RidgeAR.fit([y], lags=2, horizon=3, alpha=1e-9)
    # one step: oldest lag first, then the intercept that keeps the mean of 1
    np.testing.assert_allclose(model.weight[:, 0], [-1, 2 * np.cos(w), 2 - 2 * np.cos(w)], atol=1e-5)
    np.testing.assert_allclose(model.predict(y[-2:]), 1.0 + np.sin(w * np.arange(200, 203)), atol=1e-5)


def test_cross_validated_ridge_shrinks_noise_and_not_a_recurrence():
    """alpha=0 picks each step's penalty by blocked cross-validation over the windows of both series: the
    least of ALPHAS for an exact recurrence, large ones for white noise (whose best forecast is its mean)."""
    w = 0.3
    sines = [1.0 + np.sin(w * np.arange(200)), 1.0 + np.cos(w * np.arange(150))]  # one recurrence, one intercept
    exact = RidgeAR.fit(sines, lags=2, horizon=3, alpha=0)
    np.testing.assert_array_equal(exact.alphas, [ALPHAS[0]] * 3)
    np.testing.assert_allclose(exact.predict(sines[0][-2:]), 1.0 + np.sin(w * np.arange(200, 203)), atol=1e-2)
    noise = RidgeAR.fit([np.random.default_rng(0).normal(size=1000)], lags=8, horizon=3, alpha=0)
    assert noise.alphas.min() >= 1000
    np.testing.assert_array_equal(RidgeAR.fit(sines, lags=2, horizon=3, alpha=2.0).alphas, [2.0] * 3)


def test_ridge_needs_enough_windows():
    with pytest.raises(RnnkitError, match="ridge on 8 lags"):
        RidgeAR.fit([np.arange(10.0)], lags=8, horizon=1)


def test_in_sample_errors_and_their_quantiles():
    y = np.arange(6.0)  # a ramp: the naive forecast is short by h + 1 at step h
    errors = in_sample_errors("naive", y, 2, 1, 1)
    np.testing.assert_array_equal(errors, [[1, 2]] * 4)
    np.testing.assert_array_equal(residual_quantiles(errors, (0.1, 0.9)), [[1, 1], [2, 2]])
