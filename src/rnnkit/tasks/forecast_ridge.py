r"""Ridge regression in closed form, and its penalty chosen by blocked cross-validation over forecast windows.

Both the forecaster's highway (:mod:`rnnkit.tasks.forecast_highway`) and the ridge baseline
(:mod:`rnnkit.tasks.forecast_baselines`) fit

.. math:: W = (X^\top X + \alpha I')^{-1} X^\top Y

on windows, the last column of X the intercept's ones (:math:`I'` leaves it unshrunk). How much to shrink is
an empirical question, answered per output column (horizon step and target) by :func:`cross_validated_alphas`.
"""

from __future__ import annotations

import torch
from torch import Tensor

# the penalties cross-validation tries, on inputs scaled to unit variance: 0.01 to 10,000 in half decades
ALPHAS = tuple(10.0 ** (k / 2) for k in range(-4, 9))
# contiguous blocks of each series' windows held out in turn
FOLDS = 5


def ridge(x: Tensor, y: Tensor, alpha: float | Tensor) -> Tensor:
    """``(X^T X + αI')^{-1} X^T Y`` with the last column of ``x`` (the ones) unshrunk; ``alpha`` is one penalty
    or one per column of ``y``."""
    return _solve(x.T @ x, x.T @ y, alpha)


def _solve(gram: Tensor, moments: Tensor, alpha: float | Tensor) -> Tensor:
    """:func:`ridge` from ``X^T X`` and ``X^T Y``, which cross-validation reuses across penalties."""
    alpha = torch.as_tensor(alpha, dtype=gram.dtype, device=gram.device).expand(moments.shape[1])
    weight = torch.empty_like(moments)
    for value in alpha.unique():
        penalty = value * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        penalty[-1, -1] = 0.0
        columns = alpha == value
        weight[:, columns] = torch.linalg.solve(gram + penalty, moments[:, columns])
    return weight


@torch.no_grad()
def cross_validated_alphas(
    x: Tensor, y: Tensor, series: Tensor, origin: Tensor, context: int, horizon: int, folds: int = FOLDS
) -> Tensor | None:
    """The penalty of :data:`ALPHAS` with the least absolute error in blocked cross-validation, for each column
    of ``y`` separately ``(outputs,)``; None when there are too few windows.

    ``x`` ``(W, inputs + 1)``, ``y`` ``(W, outputs)``; ``series`` and ``origin`` ``(W,)`` place each window,
    which reads ``context`` steps before its origin and forecasts ``horizon`` from it. Each series' windows are
    cut into ``folds`` contiguous blocks by origin. Each block is held out in turn and forecast by a fit on the
    others, less the windows whose horizon reaches into what the held-out ones read or forecast (hv-blocking,
    Racine 2000: overlapping windows would otherwise leak the held-out values). The blocks together span every
    season, where one validation block at the end would span one: on seattle-weather, penalties chosen on the
    last autumn alone shrank the last steps of the horizon to the recent level, which fails in spring.
    """
    if len(origin) < 4 * folds:
        return None
    fold = _blocks(series, origin, folds)
    errors = torch.zeros(len(ALPHAS), y.shape[1], dtype=y.dtype, device=y.device)
    for held in range(folds):
        test = fold == held
        train = ~test & ~_overlapping(series, origin, test, context, horizon)
        if not test.any() or not train.any():
            return None
        gram, moments = x[train].T @ x[train], x[train].T @ y[train]
        for i, alpha in enumerate(ALPHAS):
            errors[i] += (y[test] - x[test] @ _solve(gram, moments, alpha)).abs().sum(dim=0)
    return torch.tensor(ALPHAS, dtype=y.dtype, device=y.device)[errors.argmin(dim=0)]


def _blocks(series: Tensor, origin: Tensor, folds: int) -> Tensor:
    """Block index of each window: its series' origins cut into ``folds`` equal spans of time."""
    fold = torch.empty_like(origin)
    for index in series.unique():
        mine = series == index
        first, last = origin[mine].min(), origin[mine].max()
        fold[mine] = (folds * (origin[mine] - first)) // (last - first + 1)
    return fold


def _overlapping(series: Tensor, origin: Tensor, test: Tensor, context: int, horizon: int) -> Tensor:
    """Windows whose horizon ``[o, o + H)`` meets steps the ``test`` windows of their series read or forecast."""
    near = torch.zeros_like(test)
    for index in series[test].unique():
        mine = series == index
        first, last = origin[test & mine].min(), origin[test & mine].max()
        near |= mine & (origin + horizon > first - context) & (origin < last + horizon)
    return near
