r"""Probabilistic multi-step forecasting with one recurrent network over many series (a global model).

Each window (:mod:`rnnkit.data.windows`) gives a context of L steps and a horizon of H steps. The inputs
at a context step are the scaled targets, the past covariates and the known-future covariates; the
targets are first centred on the context's mean :math:`\bar y` (per window: a series that drifts out of
its training range still looks familiar to the network), which is added back to the outputs.

Two decoders:

* ``direct`` (MQ-RNN style, Wen et al. 2017): an encoder LSTM/GRU reads the context; an MLP maps its last
  state and the horizon's future covariates to all H steps at once. A linear "highway" (LSTNet, Lai et al.
  2018) adds a linear autoregression with exogenous inputs (ARX) to the location:

  .. math:: \hat y_{t+h} = \bar y + \sum_{l=1}^{L} a_{hl} (y_{t-l} - \bar y) + b_h \bar y + c_h^\top x_t
            + \text{MLP}(h_t, x^{fut}_{t+1..t+H})_h

  with :math:`x_t` the last past covariates and the first forecast step's known covariates. By default
  (``linear="ridge"``) the highway is fitted in closed form on the training windows (with ``linear_alpha=0``
  its ridge penalty is chosen per horizon step by blocked cross-validation,
  :func:`~rnnkit.tasks.forecast_highway.choose_alphas`) and then kept fixed, and the head starts at that
  fit's error quantiles: the untrained model *is* a ridge ARX forecast with its band, and training only
  teaches the network what the linear model misses. Training fits it on the steps before validation, and the
  kept model's is then refitted on every training step (:func:`rnnkit.tasks.forecast_training.train_forecaster`).
  (Trained from zero by gradient descent, ``linear="learned"``, the highway stays short of the closed-form fit
  within the epochs a forecaster gets: on Mauna Loa CO2 it ended 50% worse than ridge.)

* ``autoregressive`` (DeepAR style, Salinas et al. 2020): one network steps through context and horizon;
  at step s it reads :math:`y_{s-1}` (teacher forcing in training; its own forecast when forecasting),
  the past covariates of s - 1 with a flag saying whether they were observed, and the future covariates of
  s. Forecasts feed back the median (quantile output) or sampled paths (Gaussian output).

**Ensembles.** ``ensemble=K`` holds K such networks (encoder and head; the ridge highway is shared) that
differ only in their initial weights and dropout masks. Training minimises the mean of their losses, so
each member follows its own gradient (Adam does not see the 1/K; only gradient clipping sees them together),
and a forecast is the mean of the members' quantiles (quantile averaging, "Vincentisation"). This is a deep
ensemble (Lakshminarayanan et al. 2017; N-BEATS averages many such members): it removes the part of the
error that comes from one member's random start.

**Lookbacks.** ``lookbacks=(ℓ_1, ..., ℓ_m)`` lets member k read only the last :math:`ℓ_{k \bmod m}` steps of the
context (N-BEATS, Oreshkin et al. 2020, ensembles over lookback windows the same way), and makes the highway
the mean of m ridge fits, one per lookback, each on its own centred window:

.. math:: \hat y^{lin}_{t+h} = \frac{1}{m} \sum_{i=1}^{m} \Big(\bar y_i + \sum_{l=1}^{ℓ_i} a^{(i)}_{hl}
          (y_{t-l} - \bar y_i) + b^{(i)}_h \bar y_i + c^{(i)\top}_h x_t\Big), \qquad
          \bar y_i = \tfrac{1}{ℓ_i} \textstyle\sum_{l=1}^{ℓ_i} y_{t-l}

That mean is still linear in the context, so it is stored as the one highway above
(:meth:`ForecastModel.fit_linear`). Short windows follow recent changes of level, long ones average more
seasons; their errors differ, and their mean errs less than most of them.

Outputs are quantiles (``likelihood="quantile"``: pinball loss at each level, default 0.1, 0.5, 0.9) or a
Gaussian N(μ, σ²) per step and target (``likelihood="gaussian"``: negative log likelihood), see
:mod:`rnnkit.tasks.forecast_metrics`. Either way :meth:`ForecastModel.forecast` returns the quantiles at
``config.quantiles``.

Shapes: N windows, L context, H horizon, C_y targets, C_p past covariates, C_f future covariates,
Q quantile levels, S sample paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM
from rnnkit.tasks.forecast_highway import fit_highway, highway_inputs, window_level
from rnnkit.tasks.forecast_metrics import gaussian_nll, pinball_loss
from rnnkit.train import LossOutput

LAYERS = {"lstm": LSTM, "gru": GRU}
DECODERS = ("direct", "autoregressive")
LIKELIHOODS = ("quantile", "gaussian")
LINEAR = ("ridge", "learned", "none")


@dataclass(frozen=True)
class ForecastConfig:
    num_targets: int = 1
    num_past: int = 0
    num_future: int = 0
    context_length: int = 56
    horizon: int = 7
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    # on the encoder's last state and inside the head: heavy, because the head only learns what the ridge
    # highway misses, from about a thousand windows of a daily series (tuned on seattle-weather)
    dropout: float = 0.5
    decoder: str = "direct"
    likelihood: str = "quantile"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    # direct decoder's linear highway: "ridge" (fitted in closed form on the training windows, then fixed: the
    # network learns what it misses), "learned" (trained with the rest from zero) or "none"
    linear: str = "ridge"
    # ridge penalty of the "ridge" highway, on scaled inputs; 0: chosen per lookback and horizon step by blocked
    # cross-validation over the training windows (forecast_highway.choose_alphas). Not the default: on the
    # benchmarks it lowered no test error (seattle-weather MASE 0.710 against 0.706, Mauna Loa CO2 0.413
    # against 0.405, seed 0)
    linear_alpha: float = 1.0
    center: bool = True  # subtract each window's context mean from the targets, add it back to the outputs
    ensemble: int = 1  # independent networks whose quantiles are averaged (the highway is shared)
    # direct decoder: member k reads the last lookbacks[k % len] context steps, and the highway averages one
    # ridge fit per lookback (N-BEATS' lookback ensemble); empty: every member reads the whole context
    lookbacks: tuple[int, ...] = ()
    num_samples: int = 200  # autoregressive Gaussian: sample paths per window when forecasting

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        object.__setattr__(self, "lookbacks", tuple(int(steps) for steps in self.lookbacks))
        choices = {"cell": LAYERS, "decoder": DECODERS, "likelihood": LIKELIHOODS, "linear": LINEAR}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RnnkitError(f"Unknown {name} {getattr(self, name)!r}. Select from {', '.join(allowed)}.")
        for name in (
            "num_targets",
            "context_length",
            "horizon",
            "hidden_size",
            "num_layers",
            "num_samples",
            "ensemble",
        ):
            if getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be at least 1, got {getattr(self, name)}.")
        levels = list(self.quantiles)
        if levels != sorted(set(levels)) or not all(0 < q < 1 for q in levels) or 0.5 not in levels:
            raise RnnkitError(
                f"quantiles must increase within (0, 1) and include 0.5 (the point forecast), got {levels}."
            )
        if not 0 <= self.dropout < 1:
            raise RnnkitError(f"dropout must be a probability in [0, 1), got {self.dropout}.")
        if not 0 <= self.linear_alpha < math.inf:
            raise RnnkitError(f"linear_alpha must be >= 0 (0: chosen by cross-validation), got {self.linear_alpha}.")
        if self.lookbacks and self.decoder != "direct":
            raise RnnkitError("lookbacks need the direct decoder (the autoregressive one steps through it all).")
        if not all(1 <= steps <= self.context_length for steps in self.lookbacks):
            raise RnnkitError(
                f"each lookback must be between 1 and the context ({self.context_length} steps), got {self.lookbacks}."
            )

    def lookback(self, member: int) -> int:
        """The context steps ``member`` reads."""
        return self.lookbacks[member % len(self.lookbacks)] if self.lookbacks else self.context_length


class ForecastNetwork(nn.Module):
    """One member: the encoder (or stepping) LSTM/GRU and its head, for :class:`ForecastModel`."""

    def __init__(self, c: ForecastConfig, num_out: int, levels: Tensor) -> None:
        super().__init__()
        autoregressive = c.decoder == "autoregressive"
        # autoregressive input: y_{s-1}, past_{s-1}, observed flag, future_s; direct: y_s, past_s, future_s
        input_size = c.num_targets + c.num_past + c.num_future + (1 if autoregressive and c.num_past else 0)
        self.rnn = LAYERS[c.cell](
            input_size, c.hidden_size, c.num_layers, batch_first=True, dropout=c.dropout if c.num_layers > 1 else 0.0
        )
        if autoregressive:
            self.head = nn.Linear(c.hidden_size, c.num_targets * num_out)
        else:
            self.head = nn.Sequential(
                nn.Linear(c.hidden_size + c.horizon * c.num_future, c.hidden_size),
                nn.ReLU(),
                nn.Dropout(c.dropout),
                nn.Linear(c.hidden_size, c.horizon * c.num_targets * num_out),
            )
        if c.likelihood == "quantile" and num_out > 1:
            with torch.no_grad():
                # spread the initial quantiles apart so they start in order (about ±1.3 σ for 0.1 / 0.9)
                spread = torch.distributions.Normal(0.0, 1.0).icdf(levels)
                self.last.bias.copy_(spread.repeat(self.last.bias.numel() // num_out))

    @property
    def last(self) -> nn.Linear:
        """The head's output layer."""
        return self.head if isinstance(self.head, nn.Linear) else self.head[-1]


class ForecastModel(nn.Module):
    """A global forecaster: windows of scaled series in, quantiles of the horizon out."""

    carries_state = False

    def __init__(self, config: ForecastConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        num_out = len(c.quantiles) if c.likelihood == "quantile" else 2  # quantiles, or (μ, raw σ)
        self.register_buffer("levels", torch.tensor(c.quantiles), persistent=False)
        self.members = nn.ModuleList(ForecastNetwork(c, num_out, self.levels) for _ in range(c.ensemble))
        self.skip = None
        if c.decoder == "direct":
            # linear in the context's targets, their level (centring alone would force the lag weights to sum
            # to one: no pull back towards the series' mean), the last past covariates and the known future
            skip_size = (c.context_length + 1) * c.num_targets + c.num_past + c.num_future
            self.skip = nn.Linear(skip_size, c.horizon * c.num_targets) if c.linear != "none" else None
            if self.skip is not None:
                nn.init.zeros_(self.skip.weight)  # start from "the context mean", the level's own forecast
                nn.init.zeros_(self.skip.bias)
                # a closed-form fit is final: the optimizer skips parameters without gradients
                self.skip.requires_grad_(c.linear == "learned")
        self.num_out = num_out

    @property
    def validate_start(self) -> bool:
        """With a closed-form highway the untrained model is the ridge forecast and its band: the trainer keeps
        it unless training does better on the validation data (on Mauna Loa CO2 every epoch did worse)."""
        return self.skip is not None and self.config.linear == "ridge"

    @classmethod
    def from_config(cls, model_config: dict) -> ForecastModel:
        return cls(ForecastConfig(**model_config))

    # --- the network ---------------------------------------------------------------------------------------

    def _level(self, target: Tensor, lookback: int | None = None) -> Tensor:
        """The mean of the last ``lookback`` context steps (all L by default), ``(N, 1, C_y)``."""
        return window_level(target, self.config.context_length, lookback, self.config.center)

    def _direct(self, batch: dict[str, Tensor]) -> Tensor:
        """Output parameters ``(K, N, H, C_y, num_out)`` around the level, from the context: one set per member."""
        c = self.config
        L = c.context_length
        known = batch["future"][:, L : L + c.horizon].flatten(1)  # -> (N, H * C_f)
        member_inputs = {}  # by lookback: its last ℓ steps, the targets centred on their own mean
        outs = []
        for k, member in enumerate(self.members):
            lookback = c.lookback(k)
            if lookback not in member_inputs:
                steps = slice(L - lookback, L)
                context = batch["target"][:, steps] - self._level(batch["target"], lookback)  # -> (N, ℓ, C_y)
                parts = [context, batch["past"][:, steps], batch["future"][:, steps]]
                member_inputs[lookback] = torch.cat(parts, dim=-1)
            encoded, _ = member.rnn(member_inputs[lookback])
            last = F.dropout(encoded[:, -1], c.dropout, self.training)  # -> (N, H_hidden)
            outs.append(member.head(torch.cat([last, known], dim=-1)))
        level = self._level(batch["target"])
        out = torch.stack(outs).view(len(outs), -1, c.horizon, c.num_targets, self.num_out)
        location = level.unsqueeze(-1)  # -> (N, 1, C_y, 1)
        if self.skip is not None:
            linear = self.skip(highway_inputs(batch, level, L))  # -> (N, H * C_y)
            location = location + linear.view(-1, c.horizon, c.num_targets, 1)
        if c.likelihood == "quantile":
            return out + location
        mean, raw_std = out.unbind(-1)
        return torch.stack([mean + location[..., 0], raw_std], dim=-1)

    @torch.no_grad()
    def fit_linear(self, *datasets, alphas: dict[int, Tensor] | None = None, start_head: bool = True) -> None:
        """Set the highway to the ridge fit on the windows of ``datasets`` (the mean of one per lookback, see
        :mod:`rnnkit.tasks.forecast_highway`; ``alphas``: the penalties per lookback and output), and start the
        head at that fit's error band (the direct decoder's ``linear="ridge"``): the per-step quantiles (or
        spread) of its residuals. The head's last layer starts at zero, so the untrained model forecasts exactly
        the ridge fit and its band. ``start_head=False`` refits the highway alone and keeps the trained head."""
        if self.skip is None:
            raise RnnkitError("this model has no linear highway to fit (linear='none' or an autoregressive decoder).")
        weight, residuals = fit_highway(self.config, datasets, self.levels.device, alphas)
        self.skip.weight.copy_(weight[:-1].T)  # weight: (inputs + 1, H * C_y)
        self.skip.bias.copy_(weight[-1])
        if not start_head:
            return
        residuals = residuals.float()  # -> (W, H * C_y)
        if self.config.likelihood == "quantile":
            start = torch.quantile(residuals, self.levels, dim=0).T  # -> (H * C_y, Q)
        else:
            spread = residuals.std(dim=0).clamp_min(1e-3)
            start = torch.stack([torch.zeros_like(spread), spread + torch.log(-torch.expm1(-spread))], dim=-1)
        for member in self.members:
            nn.init.zeros_(member.last.weight)
            member.last.bias.copy_(start.flatten())

    def _ar_inputs(self, target: Tensor, past: Tensor, future: Tensor, observed_steps: int) -> Tensor:
        """Step s reads y_{s-1}, past_{s-1} (zero from ``observed_steps`` on) with a flag, future_s.

        ``target``, ``past`` hold steps s - 1; ``future`` steps s; all ``(N, S, ·)`` -> ``(N, S, input_size)``.
        """
        parts = [target]
        if self.config.num_past:
            flag = torch.zeros_like(past[..., :1])
            flag[:, :observed_steps] = 1.0
            parts += [past * flag, flag]
        if self.config.num_future:
            parts.append(future)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else target

    def _teacher_forced(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Parameters ``(K, N, L + H - 1, C_y, num_out)`` for steps 1 .. L + H - 1 given the true previous
        values, one set per member; returns (params, level)."""
        L = self.config.context_length
        level = self._level(batch["target"])
        y = batch["target"] - level if self.config.center else batch["target"]
        # past covariates are unknown from the origin on: step s >= L + 1 reads past_{s-1}, s - 1 >= L
        x = self._ar_inputs(y[:, :-1], batch["past"][:, :-1], batch["future"][:, 1:], observed_steps=L)
        params = []
        for member in self.members:
            hidden, _ = member.rnn(x)
            if self.config.dropout:
                hidden = F.dropout(hidden, self.config.dropout, self.training)
            params.append(member.head(hidden).view(*hidden.shape[:2], self.config.num_targets, self.num_out))
        return torch.stack(params), level

    def _split_gaussian(self, params: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw_std = params.unbind(-1)
        return mean, F.softplus(raw_std) + 1e-3  # σ > 0, floored so the likelihood cannot blow up

    def _loss(self, params: Tensor, y: Tensor) -> Tensor:
        """The mean over members of each one's loss: ``params`` ``(K, ...)``, ``y`` without the K."""
        if self.config.likelihood == "quantile":
            return torch.stack([pinball_loss(y, p, self.levels) for p in params]).mean()
        return torch.stack([gaussian_nll(y, *self._split_gaussian(p)) for p in params]).mean()

    # --- the task-model contract ---------------------------------------------------------------------------

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """Mean loss per (window, step, target) over the horizon; the autoregressive decoder also learns
        from every context step (each one is a one-step-ahead forecast given the truth before it)."""
        c = self.config
        if c.decoder == "direct":
            y = batch["target"][:, c.context_length :]
            return LossOutput(self._loss(self._direct(batch), y), y.numel())
        params, level = self._teacher_forced(batch)
        y = batch["target"][:, 1:] - level if c.center else batch["target"][:, 1:]
        return LossOutput(self._loss(params, y), y.numel())

    @torch.no_grad()
    def evaluate(self, data) -> dict[str, float]:
        """Horizon loss (scaled units) and the median forecast's MAE over every window of ``data``."""
        self.eval()
        c = self.config
        total_loss, total_error, count = 0.0, 0.0, 0
        for batch in data.batches(0):
            batch = {k: v.to(self.levels.device) for k, v in batch.items()}
            y = batch["target"][:, c.context_length :]
            if c.decoder == "direct":
                loss = self._loss(self._direct(batch), y)
            else:
                params, level = self._teacher_forced(batch)
                loss = self._loss(params[:, :, c.context_length - 1 :], y - level)
            median = self.forecast(batch)[..., c.quantiles.index(0.5)]
            total_loss += loss.item() * y.numel()
            total_error += (median - y).abs().sum().item()
            count += y.numel()
        if count == 0:
            raise RnnkitError("the validation data holds no windows; give longer series or a shorter horizon.")
        return {"loss": total_loss / count, "mae": total_error / count, "windows": count // c.horizon // c.num_targets}

    @torch.no_grad()
    def forecast(self, batch: dict[str, Tensor], *, seed: int = 0) -> Tensor:
        """Quantiles of the horizon in scaled units, ``(N, H, C_y, Q)``, sorted along Q: the mean of the
        members' quantiles (a mean of sorted vectors stays sorted).

        Only the context of ``target`` and ``past`` is read; ``future`` is read over context and horizon. The
        autoregressive Gaussian decoder's sample paths of a window are drawn from ``seed`` and the window's
        ``key`` (its series and time, :mod:`rnnkit.data.windows`) alone: the same window gets the same forecast
        in any batch, from a file cut at its origin as in a backtest. A batch without keys numbers its windows.
        """
        c = self.config
        if c.decoder == "direct":
            params = self._direct(batch)  # -> (K, N, H, C_y, num_out)
            if c.likelihood == "quantile":
                return params.sort(dim=-1).values.mean(dim=0)
            mean, std = self._split_gaussian(params)
            normal = torch.distributions.Normal(mean.unsqueeze(-1), std.unsqueeze(-1))
            return normal.icdf(self.levels.to(mean.dtype)).mean(dim=0)
        streams = self._window_streams(batch, seed) if c.likelihood == "gaussian" else []
        return torch.stack([self._rollout(member, batch, streams) for member in self.members]).mean(dim=0)

    @staticmethod
    def _window_streams(batch: dict[str, Tensor], seed: int) -> list[np.random.Generator]:
        """One random stream per window, seeded by ``seed`` and the window's key; members draw from it in turn."""
        keys = batch["key"].tolist() if "key" in batch else [[-1, n] for n in range(len(batch["target"]))]
        # SeedSequence hashes the whole key (torch's generators keep 32 bits of a seed); it takes no negative
        # entropy, so the int64 keys are read as unsigned
        return [np.random.default_rng([seed, *(part % 2**64 for part in key)]) for key in keys]

    def _rollout(self, member: ForecastNetwork, batch: dict[str, Tensor], streams: list[np.random.Generator]) -> Tensor:
        c = self.config
        L = c.context_length
        level = self._level(batch["target"])
        y = batch["target"][:, :L] - level
        past, future = batch["past"], batch["future"]
        # the context, teacher forced: steps 1 .. L - 1 leave the state that step L starts from
        x = self._ar_inputs(y[:, :-1], past[:, : L - 1], future[:, 1:L], observed_steps=L - 1)
        _, state = member.rnn(x)
        last = y[:, -1:]  # -> (N, 1, C_y)
        last_past = past[:, L - 1 : L]
        samples = c.num_samples if c.likelihood == "gaussian" else 1
        if c.likelihood == "gaussian":
            # each window's standard normal draws from its own stream: (N, S, H, C_y) -> (S * N, H, C_y)
            draws = [stream.standard_normal((samples, c.horizon, c.num_targets), np.float32) for stream in streams]
            noise = torch.from_numpy(np.stack(draws)).transpose(0, 1).flatten(0, 1).to(y.device, y.dtype)
        if samples > 1:
            # S paths per window, as one big batch: (N, ...) -> (S * N, ...)
            last, last_past = last.repeat(samples, 1, 1), last_past.repeat(samples, 1, 1)
            future = future.repeat(samples, 1, 1)
            state = (
                tuple(s.repeat(1, samples, 1) for s in state)
                if isinstance(state, tuple)
                else state.repeat(1, samples, 1)
            )
        steps = []
        for h in range(c.horizon):
            # the first step still reads an observed past value (step L - 1); later ones do not know it
            x = self._ar_inputs(last, last_past, future[:, L + h : L + h + 1], observed_steps=1 if h == 0 else 0)
            hidden, state = member.rnn(x, state)
            params = member.head(hidden[:, 0]).view(-1, c.num_targets, self.num_out)
            if c.likelihood == "quantile":
                quantiles = params.sort(dim=-1).values  # -> (N, C_y, Q)
                steps.append(quantiles)
                last = quantiles[..., c.quantiles.index(0.5)].unsqueeze(1)
            else:
                mean, std = self._split_gaussian(params)
                draw = mean + std * noise[:, h]
                steps.append(draw)
                last = draw.unsqueeze(1)
        if c.likelihood == "quantile":
            return torch.stack(steps, dim=1) + level.unsqueeze(-1)  # -> (N, H, C_y, Q)
        paths = torch.stack(steps, dim=1).view(samples, -1, c.horizon, c.num_targets)  # -> (S, N, H, C_y)
        quantiles = torch.quantile(paths, self.levels.to(paths.dtype), dim=0)  # -> (Q, N, H, C_y)
        return quantiles.permute(1, 2, 3, 0) + level.unsqueeze(-1)
