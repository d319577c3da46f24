r"""Forecast losses (what the network trains on) and backtest metrics (what a forecast is judged by).

Losses, on tensors, mean over every element:

.. math::
    \text{pinball}_\tau(y, \hat y_\tau) = \max\big(\tau (y - \hat y_\tau),\ (\tau - 1)(y - \hat y_\tau)\big)

    \text{NLL}(y; \mu, \sigma) = \tfrac12 \log(2\pi\sigma^2) + \frac{(y - \mu)^2}{2\sigma^2}

The pinball loss is minimised by the τ-quantile of y (Koenker & Bassett 1978); the Gaussian negative log
likelihood is DeepAR's (Salinas et al. 2020) for real-valued series.

Metrics, on arrays of errors e = y - ŷ over every origin, step, series and target:

.. math::
    \text{MAE} = \overline{|e|}, \quad \text{RMSE} = \sqrt{\overline{e^2}}, \quad
    \text{sMAPE} = \overline{\frac{200\,|e|}{|y| + |\hat y|}}\ (\%), \quad
    \text{MASE} = \overline{|e| / s}, \quad s = \frac{1}{T - m} \sum_{t=m+1}^{T} |y_t - y_{t-m}|

with s the in-sample MAE of the seasonal naive forecast (season m) over the training steps of the same
series and target (Hyndman & Koehler 2006): MASE < 1 beats that forecast. Coverage is the share of y
inside [ŷ_low, ŷ_high], the outermost quantiles (0.1 and 0.9 make an 80% interval).

Whether one forecast's errors are really smaller than another's, or only in this sample, is the
Diebold-Mariano test (:func:`diebold_mariano`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def pinball_loss(y: Tensor, predicted: Tensor, quantiles: Tensor) -> Tensor:
    """Mean pinball loss. ``y`` (...,), ``predicted`` (..., Q), ``quantiles`` (Q,) levels τ in (0, 1)."""
    error = y.unsqueeze(-1) - predicted  # -> (..., Q)
    return torch.maximum(quantiles * error, (quantiles - 1) * error).mean()


def gaussian_nll(y: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Mean Gaussian negative log likelihood (nats) of ``y`` under N(mean, std²); all of one shape."""
    return (0.5 * math.log(2 * math.pi) + torch.log(std) + 0.5 * ((y - mean) / std) ** 2).mean()


def seasonal_scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast, ``history`` (T,); season 1 is the naive forecast.

    A season as long as the history falls back to 1; a constant history gives 1.0 so MASE stays finite.
    """
    season = season if len(history) > season else 1
    scale = float(np.mean(np.abs(history[season:] - history[:-season]))) if len(history) > 1 else 0.0
    return scale if scale > 0 else 1.0


def point_metrics(y: np.ndarray, predicted: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MASE and sMAPE; ``y``, ``predicted`` and ``scale`` broadcast to one shape."""
    error = np.abs(y - predicted)
    denominator = np.abs(y) + np.abs(predicted)
    # 0/0 (both zero) is a perfect forecast, not an undefined one
    smape = np.where(denominator > 0, 200 * error / np.where(denominator > 0, denominator, 1), 0.0)
    return {
        "mae": float(error.mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "mase": float((error / scale).mean()),
        "smape": float(smape.mean()),
    }


def interval_metrics(y: np.ndarray, quantiles: np.ndarray, levels: tuple[float, ...]) -> dict[str, float]:
    """Mean pinball loss over the levels, and the coverage of [lowest, highest] quantile.

    ``y`` (...,), ``quantiles`` (..., Q) sorted along the last axis like ``levels``.
    """
    loss = pinball_loss(
        torch.as_tensor(y, dtype=torch.float64),
        torch.as_tensor(quantiles, dtype=torch.float64),
        torch.tensor(levels, dtype=torch.float64),
    )
    inside = (quantiles[..., 0] <= y) & (y <= quantiles[..., -1])
    return {"pinball": float(loss), "coverage": float(inside.mean())}


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, lags: int = 0) -> dict[str, float]:
    r"""Diebold & Mariano's (1995) test of equal mean loss, with the small-sample correction of Harvey,
    Leybourne & Newbold (1997); ``loss_a``, ``loss_b`` ``(n,)``, one loss per forecast (e.g. per origin).

    .. math::
        d_i = a_i - b_i, \quad \gamma_k = \frac1n \sum_{i=k+1}^{n} (d_i - \bar d)(d_{i-k} - \bar d), \quad
        \text{DM} = \frac{\bar d}{\sqrt{(\gamma_0 + 2 \sum_{k=1}^{q} (1 - \frac{k}{q + 1}) \gamma_k) / n}}
        \sqrt{\frac{n + 1 - 2h + h(h - 1)/n}{n}}, \ h = q + 1

    compared with Student's t on n - 1 degrees of freedom (two-sided). ``lags`` q counts the neighbours whose
    losses are correlated because their forecasts share steps (origins closer than the horizon). With q = 0 this
    is the one-sample t-test of the differences. The Bartlett weights on the autocovariances (Newey & West 1987)
    keep the variance from going negative, as the unweighted sum can. Returns the mean difference, the statistic
    and its p-value (NaN where the differences do not vary).
    """
    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n, h = len(d), lags + 1
    untested = {"mean_difference": float(d.mean()) if n else float("nan"), "statistic": float("nan")}
    if n < 2:
        return {**untested, "p_value": float("nan")}
    centred = d - d.mean()
    autocovariance = [centred[k:] @ centred[: n - k] / n for k in range(min(h, n))]
    variance = autocovariance[0] + 2 * sum((1 - k / h) * autocovariance[k] for k in range(1, len(autocovariance)))
    if variance <= 0:
        return {**untested, "p_value": float("nan")}
    statistic = d.mean() / math.sqrt(variance / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    from scipy import stats  # here, not at import: scipy.stats takes a third of a second to load

    return {
        "mean_difference": float(d.mean()),
        "statistic": float(statistic),
        "p_value": float(2 * stats.t.sf(abs(statistic), df=n - 1)),
    }
