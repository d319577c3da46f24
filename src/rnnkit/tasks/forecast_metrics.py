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
