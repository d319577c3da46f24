r"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

Each step carries a value drawn from U(0, 1) and a marker; exactly two steps are marked, one in each half of
the sequence, and the target is the sum of the two marked values. Always answering the mean (1.0) scores
an MSE of Var(U+U) = 2/12 = 0.167; solving it (MSE < 0.01) means carrying a value across up to ``L`` steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import RnnkitError

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


class AddingTask:
    """Regression read at the last step; the score is the MSE (lower is better), solved below 0.01."""

    name = "adding"
    input_size, output_size, output_steps = 2, 1, 1
    metric, higher_is_better, threshold = "mse", False, 0.01
    baseline = MEAN_BASELINE_MSE

    def lengths(self, requested: list[int]) -> list[int]:
        return requested

    def batch(self, batch_size: int, num_steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return adding_batch(batch_size, num_steps, generator)

    def held_out(self, split: str, size: int, num_steps: int, seed: int) -> tuple[Tensor, Tensor]:
        """Fresh sequences from a generator training never touches, one per split and seed."""
        offset = {"valid": 10_000, "test": 20_000}[split]
        return adding_batch(size, num_steps, torch.Generator().manual_seed(seed + offset))

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        """``output`` ``(N, 1, 1)`` -> MSE against ``y`` ``(N,)``."""
        return F.mse_loss(output[:, -1, 0], y)

    def score(self, output: Tensor, y: Tensor) -> float:
        return self.loss(output, y).item()

    def solved(self, score: float) -> bool:
        return score < self.threshold
