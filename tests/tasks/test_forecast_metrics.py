"""Forecast losses against torch's references and metrics against values worked out by hand."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from rnnkit.tasks.forecast_metrics import (
    diebold_mariano,
    gaussian_nll,
    interval_metrics,
    pinball_loss,
    point_metrics,
    seasonal_scale,
)


def test_pinball_loss_by_hand():
    y = torch.tensor([1.0, 3.0])
    predicted = torch.tensor([[0.0, 2.0], [4.0, 3.0]])  # (2, Q=2)
    levels = torch.tensor([0.1, 0.9])
    # errors y - q: [1, -1], [-1, 0]; losses: [0.1, 0.1], [0.9, 0]
    torch.testing.assert_close(pinball_loss(y, predicted, levels), torch.tensor((0.1 + 0.1 + 0.9 + 0.0) / 4))


def test_pinball_loss_at_one_half_is_half_the_absolute_error():
    y, predicted = torch.randn(5, 7), torch.randn(5, 7, 1)
    expected = 0.5 * F.l1_loss(predicted[..., 0], y)
    torch.testing.assert_close(pinball_loss(y, predicted, torch.tensor([0.5])), expected)


def test_gaussian_nll_matches_torch():
    y, mean, std = torch.randn(4, 6), torch.randn(4, 6), torch.rand(4, 6) + 0.1
    expected = F.gaussian_nll_loss(mean, y, std**2, full=True, eps=0.0)
    torch.testing.assert_close(gaussian_nll(y, mean, std), expected)
    reference = -torch.distributions.Normal(mean, std).log_prob(y).mean()
    torch.testing.assert_close(gaussian_nll(y, mean, std), reference)


def test_point_metrics_by_hand():
    y = np.array([2.0, 4.0, 0.0])
    predicted = np.array([1.0, 6.0, 0.0])
    metrics = point_metrics(y, predicted, np.array(2.0))
    assert metrics["mae"] == pytest.approx(1.0)  # (1 + 2 + 0) / 3
    assert metrics["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert metrics["mase"] == pytest.approx(0.5)
    # 200 * (1/3 + 2/10 + 0) / 3, the 0/0 step counting as perfect
    assert metrics["smape"] == pytest.approx(200 * (1 / 3 + 2 / 10) / 3)


def test_seasonal_scale_by_hand():
    history = np.array([1.0, 2.0, 4.0, 7.0, 7.0])
    assert seasonal_scale(history, 1) == pytest.approx((1 + 2 + 3 + 0) / 4)
    assert seasonal_scale(history, 2) == pytest.approx((3 + 5 + 3) / 3)
    assert seasonal_scale(history, 10) == pytest.approx(1.5)  # too long a season: naive instead
    assert seasonal_scale(np.ones(5), 1) == 1.0


def test_interval_coverage_counts_the_edges_inside():
    y = np.array([0.0, 1.0, 2.0, 5.0])
    quantiles = np.array([[0.0, 0.5, 1.0]] * 4)
    result = interval_metrics(y, quantiles, (0.1, 0.5, 0.9))
    assert result["coverage"] == pytest.approx(0.5)
    expected = pinball_loss(torch.tensor(y), torch.tensor(quantiles), torch.tensor([0.1, 0.5, 0.9])).item()
    assert result["pinball"] == pytest.approx(expected)


def test_diebold_mariano_without_lags_is_the_t_test_of_the_differences():
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, size=40), rng.gamma(2.0, size=40) + 0.3
    result = diebold_mariano(a, b)
    reference = stats.ttest_1samp(a - b, 0.0)
    assert result["statistic"] == pytest.approx(reference.statistic, rel=1e-12)
    assert result["p_value"] == pytest.approx(reference.pvalue, rel=1e-10)
    assert result["mean_difference"] == pytest.approx((a - b).mean())


def test_diebold_mariano_with_lags_by_hand():
    d = np.array([1.0, 0.5, 2.0, 1.5, 0.5, -1.0])  # a - b
    n, h = 6, 2
    c = d - d.mean()
    variance = (c @ c + 2 * 0.5 * c[1:] @ c[:-1]) / n  # Bartlett weight 1 - 1/2 on lag 1
    statistic = d.mean() / np.sqrt(variance / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano(d, np.zeros(6), lags=1)
    assert result["statistic"] == pytest.approx(statistic, rel=1e-12)
    assert result["p_value"] == pytest.approx(2 * stats.t.sf(abs(statistic), n - 1), rel=1e-12)
    # equal losses: nothing to test
    assert np.isnan(diebold_mariano(np.ones(5), np.ones(5))["p_value"])
