r"""The classical forecasts every backtest reports beside the network.

On one series y_1..y_T (a history ending at the forecast origin), for steps h = 1..H:

* naive: :math:`\hat y_{T+h} = y_T`;
* seasonal naive, season m: :math:`\hat y_{T+h} = y_{T+h-m\lceil h/m \rceil}` (the same step one season ago);
* ridge autoregression on p lags, one linear map per horizon step (direct, as in DLinear, Zeng et al.
  2023), fitted in closed form on the scaled training windows:

  .. math:: W = (X^\top X + \alpha I')^{-1} X^\top Y, \quad X = [y_{t-p..t-1}, 1],\ Y = y_{t..t+H-1}

  with :math:`I'` the identity without the intercept's entry (the intercept is not shrunk), α fixed (1 by
  default) or chosen for each step by blocked cross-validation (``alpha=0``).

The three give point forecasts; their intervals are the forecast plus quantiles of their own errors on the
training steps, step by step (:func:`residual_quantiles`), so pinball loss and coverage compare fairly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.forecast_ridge import cross_validated_alphas, ridge

METHODS = ("naive", "seasonal_naive", "ridge")


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """The last value repeated: ``history`` (T,) -> (H,)."""
    return np.full(horizon, history[-1], dtype=np.float64)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The last season repeated: step h takes the value of step T + h - m·ceil(h / m); (T,) -> (H,)."""
    if season > len(history):
        raise RnnkitError(
            f"the seasonal naive forecast needs a season ({season} steps) of history, got {len(history)}."
        )
    last_season = history[len(history) - season :]
    return np.asarray([last_season[h % season] for h in range(horizon)], dtype=np.float64)


def lag_windows(series: np.ndarray, lags: int, horizon: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """All (lags, horizon) windows with targets before ``end``: X (W, p), Y (W, H)."""
    origins = np.arange(lags, end - horizon + 1)
    if len(origins) == 0:
        return np.zeros((0, lags)), np.zeros((0, horizon))
    X = np.stack([series[t - lags : t] for t in origins])
    Y = np.stack([series[t : t + horizon] for t in origins])
    return X, Y


@dataclass
class RidgeAR:
    """Direct multi-step ridge regression on the last ``lags`` values, shared by every (scaled) series."""

    weight: np.ndarray  # (p + 1, H): lag weights, then the intercept
    lags: int
    alphas: np.ndarray  # (H,): the penalty of each step's fit

    @classmethod
    def fit(cls, series: list[np.ndarray], lags: int, horizon: int, alpha: float = 1.0) -> RidgeAR:
        """Fit on the windows of every array in ``series`` (each scaled, cut at its training end); ``alpha`` 0
        chooses each step's penalty by blocked cross-validation (:mod:`rnnkit.tasks.forecast_ridge`)."""
        pairs = [lag_windows(s, lags, horizon, len(s)) for s in series]
        X = np.concatenate([x for x, _ in pairs])
        Y = np.concatenate([y for _, y in pairs])
        if len(X) <= lags:
            raise RnnkitError(
                f"ridge on {lags} lags needs more than {lags} training windows, got {len(X)}; "
                "give a longer series or fewer --ridge-lags."
            )
        x = torch.from_numpy(np.concatenate([X, np.ones((len(X), 1))], axis=1))  # -> (W, p + 1)
        y = torch.from_numpy(Y.astype(np.float64))
        alphas = torch.full((horizon,), alpha, dtype=torch.float64)
        if alpha == 0:
            which = torch.cat([torch.full((len(inputs),), i) for i, (inputs, _) in enumerate(pairs)])
            origin = torch.cat([torch.arange(lags, lags + len(inputs)) for inputs, _ in pairs])
            chosen = cross_validated_alphas(x, y, which, origin, lags, horizon)
            alphas = chosen if chosen is not None else torch.full((horizon,), 1.0, dtype=torch.float64)
        return cls(ridge(x, y, alphas).numpy(), lags, alphas.numpy())

    def predict(self, context: np.ndarray) -> np.ndarray:
        """``context`` (..., p) -> forecasts (..., H)."""
        return context[..., -self.lags :] @ self.weight[:-1] + self.weight[-1]


def residual_quantiles(errors: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Per-step quantiles of in-sample errors y - ŷ, ``errors`` (W, H) -> offsets (H, Q) to add to ŷ."""
    if len(errors) == 0:
        return np.zeros((errors.shape[1], len(levels)))
    return np.quantile(errors, levels, axis=0).T


def in_sample_errors(method: str, series: np.ndarray, horizon: int, season: int, first: int) -> np.ndarray:
    """Errors (W, H) of naive or seasonal naive at every origin t in [first, T - H]."""
    rows = []
    for t in range(max(first, season, 1), len(series) - horizon + 1):
        history = series[:t]
        point = naive(history, horizon) if method == "naive" else seasonal_naive(history, horizon, season)
        rows.append(series[t : t + horizon] - point)
    return np.asarray(rows).reshape(-1, horizon)
