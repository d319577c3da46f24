r"""Memory tasks that show why gated cells exist; first of them the adding problem.

Adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): each step carries a value
drawn from U(0, 1) and a marker; exactly two steps are marked, one in each half of the sequence, and the
target is the sum of the two marked values. Always answering the mean (1.0) scores an MSE of
Var(U+U) = 2/12 = 0.167; solving it means carrying a value across up to ``L`` steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM, RNN

LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
MEAN_BASELINE_MSE = 2 / 12  # always answering E[U+U] = 1


def adding_batch(batch_size: int, num_steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``x`` ``(N, L, 2)`` (value, marker) and target ``y`` ``(N,)``, the sum of the two marked values."""
    if num_steps < 2:
        raise RnnkitError(f"the adding problem needs at least 2 steps, got {num_steps}.")
    values = torch.rand(batch_size, num_steps, generator=generator)
    half = num_steps // 2
    first = torch.randint(0, half, (batch_size,), generator=generator)
    second = torch.randint(half, num_steps, (batch_size,), generator=generator)
    markers = torch.zeros(batch_size, num_steps)
    rows = torch.arange(batch_size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # -> (N, L, 2)
    return x, (values * markers).sum(dim=1)


class SequenceRegressor(nn.Module):
    """A recurrent layer read at its last step by a linear head: ``(N, L, H_in) -> (N,)``."""

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if cell not in LAYERS:
            raise RnnkitError(f"Unknown cell {cell!r}. Select from {', '.join(LAYERS)}.")
        self.rnn = LAYERS[cell](input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        if cell == "lstm":
            # forget gates start open (bias 1, Jozefowicz et al. 2015; Keras' unit_forget_bias), so memory
            # survives from the first update instead of being learnt out of a plateau
            with torch.no_grad():
                self.rnn.bias_ih_l0[hidden_size : 2 * hidden_size] = 1.0
                self.rnn.bias_hh_l0[hidden_size : 2 * hidden_size] = 0.0

    def forward(self, x: Tensor) -> Tensor:
        output, _ = self.rnn(x)
        return self.head(output[:, -1]).squeeze(-1)


@dataclass(frozen=True)
class AddingConfig:
    cell: str = "lstm"
    num_steps: int = 100  # T in Hochreiter & Schmidhuber's experiment
    hidden_size: int = 64
    batch_size: int = 64
    train_steps: int = 1500
    learning_rate: float = 3e-3
    clip_norm: float = 1.0
    eval_size: int = 1000
    seed: int = 0


def train_adding(config: AddingConfig, *, quiet: bool = False) -> dict:
    """Train one cell kind on fresh batches; return held-out MSE (a separate seed) and timing."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = SequenceRegressor(config.cell, 2, config.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    start = time.perf_counter()
    bar = tqdm(range(config.train_steps), desc=f"adding {config.cell}", disable=True if quiet else None, leave=False)
    for step in bar:
        x, y = adding_batch(config.batch_size, config.num_steps, generator)
        # forward backward update
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        # clip the gradient: plain RNNs blow up here without it
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        if step % 50 == 0:
            bar.set_postfix(mse=f"{loss.item():.4f}")
    train_seconds = time.perf_counter() - start

    # held out: sequences from a generator the training never touched
    model.eval()
    x, y = adding_batch(config.eval_size, config.num_steps, torch.Generator().manual_seed(config.seed + 10_000))
    with torch.no_grad():
        mse = nn.functional.mse_loss(model(x), y).item()
    return {
        "cell": config.cell,
        "num_steps": config.num_steps,
        "test_mse": mse,
        "baseline_mse": MEAN_BASELINE_MSE,
        "solved": mse < 0.01,
        "train_seconds": round(train_seconds, 1),
    }
