r"""The direct forecaster's linear highway: a ridge ARX fit in closed form, or the mean of one per lookback.

A window's highway reads its last ℓ context steps centred on their mean :math:`\bar y_ℓ`, that level, the last
past covariates and the first forecast step's known covariates (:func:`highway_inputs`), and forecasts the
horizon around the level. Each lookback's fit is

.. math:: W_ℓ = (X_ℓ^\top X_ℓ + \alpha I')^{-1} X_ℓ^\top (Y - \bar y_ℓ), \quad X_ℓ = [\text{inputs}_ℓ, 1]

in float64, the intercept unshrunk (:func:`rnnkit.tasks.forecast_ridge.ridge`). The penalty α is either
fixed or chosen per output (horizon step and target) and lookback by blocked cross-validation over the training
windows (:func:`choose_alphas`), and then every window is fitted with it. With several lookbacks the forecast
is the mean of their forecasts. That mean is still linear in the window, so :func:`fit_highway` returns it as
weights on the whole context's inputs: one ``nn.Linear`` in :class:`rnnkit.tasks.forecast.ForecastModel` serves
either case.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.tasks.forecast_ridge import cross_validated_alphas, ridge

# the penalty when it is neither given nor chosen (too few windows to cross-validate)
DEFAULT_ALPHA = 1.0


def window_level(target: Tensor, context_length: int, lookback: int | None = None, center: bool = True) -> Tensor:
    """The mean of the last ``lookback`` context steps (all of them by default), ``(N, 1, C_y)``; zeros without
    centring. Known at the forecast origin."""
    L = context_length
    context = target[:, L - (lookback or L) : L]
    return context.mean(dim=1, keepdim=True) if center else torch.zeros_like(context[:, :1])


def highway_inputs(batch: dict[str, Tensor], level: Tensor, context_length: int, lookback: int | None = None) -> Tensor:
    """What the highway reads, ``(N, (ℓ + 1)·C_y + C_p + C_f)``: the last ℓ context steps (all L by default)
    centred on ``level``, that level (without it the lag weights would have to sum to one: no pull back to the
    mean), the last past covariates and the known covariates of the first forecast step (the calendar's phase
    there fixes it at every later step, so the rest would only add noise to a linear map; the network's head
    reads the whole horizon's)."""
    L = context_length
    context = batch["target"][:, L - (lookback or L) : L] - level
    return torch.cat([context.flatten(1), level.flatten(1), batch["past"][:, L - 1], batch["future"][:, L]], dim=-1)


@torch.no_grad()
def fit_highway(
    config, datasets, device: torch.device, alphas: dict[int, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """Weights ``(inputs + 1, H·C_y)`` (the last row the bias) on the whole context's inputs, and their residuals
    ``(W, H·C_y)`` on the windows of ``datasets``; ``config`` is a ``ForecastConfig``. ``alphas`` maps each
    lookback to its penalty per output (:func:`choose_alphas`); without it every fit uses ``config.linear_alpha``
    (or :data:`DEFAULT_ALPHA` where that is 0, "choose")."""
    L = config.context_length
    lookbacks = config.lookbacks or (L,)
    designs = {lookback: _designs(config, datasets, lookback, device) for lookback in {*lookbacks, L}}
    fixed = config.linear_alpha or DEFAULT_ALPHA
    fits = {lookback: ridge(*designs[lookback], alphas[lookback] if alphas else fixed) for lookback in set(lookbacks)}
    if set(lookbacks) == {L}:
        weight = fits[L]
    else:
        weight = _mean_of_fits(config, [fits[lookback] for lookback in lookbacks])
    x, y = designs[L]
    return weight, y - x @ weight


@torch.no_grad()
def choose_alphas(config, windows, device: torch.device) -> dict[int, Tensor] | None:
    """Per lookback, the penalty for each output ``(H·C_y,)`` chosen by blocked cross-validation over
    ``windows`` (:func:`rnnkit.tasks.forecast_ridge.cross_validated_alphas`); None when there are too few.

    The first steps of a horizon follow the last values and want little shrinkage, the later ones lean on the
    level and the calendar and want more (seattle-weather: α 10 for the next day, 100-300 for the last ones).
    """
    series, origin = _positions(windows)
    chosen = {}
    for lookback in set(config.lookbacks or (config.context_length,)):
        x, y = _design(config, windows, lookback, device)
        alphas = cross_validated_alphas(
            x, y, series.to(device), origin.to(device), config.context_length, config.horizon
        )
        if alphas is None:
            return None
        chosen[lookback] = alphas
    return chosen


def _positions(windows) -> tuple[Tensor, Tensor]:
    """Each window's series index and origin, in the order of ``windows.batches(0)``."""
    batches = list(windows.batches(0))
    return torch.cat([b["series"] for b in batches]), torch.cat([b["origin"] for b in batches])


def _designs(config, datasets, lookback: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """:func:`_design` over several window sets, concatenated."""
    parts = [_design(config, data, lookback, device) for data in datasets]
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def _design(config, data, lookback: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """The inputs on the last ``lookback`` steps with a column of ones ``(W, inputs + 1)``, and the targets
    centred on that window's level ``(W, H * C_y)``."""
    L = config.context_length
    inputs, targets = [], []
    for batch in data.batches(0):
        batch = {k: v.to(device) for k, v in batch.items()}
        level = window_level(batch["target"], L, lookback, config.center)
        inputs.append(highway_inputs(batch, level, L, lookback).double())
        targets.append((batch["target"][:, L:] - level).flatten(1).double())
    x = torch.cat(inputs)
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1), torch.cat(targets)


def _mean_of_fits(config, fits: list[Tensor]) -> Tensor:
    r"""Weights on the whole context that forecast the mean of the per-lookback fits' forecasts.

    Each fit forecasts :math:`r E_ℓ + r A_ℓ W_ℓ` from the raw inputs :math:`r` (:func:`_raw_maps`), so the mean
    is :math:`r M`, :math:`M = \frac{1}{m}\sum_i (E_i + A_i W_i)`; the whole-context weights W solve
    :math:`A_L W = M - E_L` exactly, since :math:`A_L` has full row rank (r is recovered from the centred
    context and its level): :math:`W = A_L^{+} (M - E_L)`.
    """
    forecasts = []
    for lookback, fit in zip(config.lookbacks, fits, strict=True):
        inputs, level = _raw_maps(config, lookback)
        forecasts.append(level + inputs @ fit)  # -> (R, H * C_y)
    mean = torch.stack(forecasts).mean(dim=0)
    inputs, level = _raw_maps(config, config.context_length)
    return torch.linalg.pinv(inputs) @ (mean - level)


def _raw_maps(config, lookback: int) -> tuple[Tensor, Tensor]:
    """``(A, E)`` in float64: a window's inputs on the last ``lookback`` steps with their column of ones, ``r @ A``,
    and its level repeated over the horizon, ``r @ E``, from its raw inputs
    ``r = [context (L·C_y, step-major), last past covariates, first future covariates, 1]``."""
    L, C, H = config.context_length, config.num_targets, config.horizon
    extra = config.num_past + config.num_future + 1
    inputs = torch.zeros(L * C + extra, lookback * C + C + extra, dtype=torch.float64)
    level = torch.zeros(L * C + extra, H * C, dtype=torch.float64)
    share = 1.0 / lookback if config.center else 0.0
    for target in range(C):
        rows = torch.arange(L - lookback, L) * C + target
        columns = torch.arange(lookback) * C + target
        inputs[rows, columns] = 1.0
        inputs[rows[:, None], columns[None, :]] -= share  # each step minus the level
        inputs[rows, lookback * C + target] = share  # the level itself
        level[rows[:, None], (torch.arange(H) * C + target)[None, :]] = share
    inputs[L * C :, lookback * C + C :] = torch.eye(extra, dtype=torch.float64)
    return inputs, level
