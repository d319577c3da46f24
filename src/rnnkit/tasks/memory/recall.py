r"""Delayed recall, a copy task (after Hochreiter & Schmidhuber 1997, experiment 2, and the copy task of
Arjovsky et al. 2016).

``K`` consecutive steps show symbols drawn from an alphabet of ``A``, starting at a random step in
``[0, L - 2K]``; every other step is blank, except the last ``K``, which carry a "recall" marker: there the
network must output the ``K`` symbols in order. Inputs are one-hot over ``A + 2`` channels (the symbols,
blank, recall). The delay varies from ``K`` to ``L - K`` steps, so (as in the adding problem) short delays
give a first learning signal and the long ones decide whether the task is solved. (With the symbols always
at the start, as in the classic copy task, every cell here sat at chance for thousands of updates.) Guessing
scores an accuracy of ``1/A``; solved means at least 99% of the recalled symbols right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import RnnkitError


def recall_batch(
    batch_size: int, num_steps: int, generator: torch.Generator, *, num_symbols: int = 2, alphabet: int = 8
) -> tuple[Tensor, Tensor]:
    """``x`` ``(N, L, A + 2)`` one-hot and the symbols to recall ``y`` ``(N, K)`` (integers in ``[0, A)``)."""
    if num_steps < 2 * num_symbols + 1:
        raise RnnkitError(
            f"delayed recall of {num_symbols} symbols needs at least {2 * num_symbols + 1} steps, got {num_steps}."
        )
    symbols = torch.randint(0, alphabet, (batch_size, num_symbols), generator=generator)
    start = torch.randint(0, num_steps - 2 * num_symbols + 1, (batch_size, 1), generator=generator)
    channels = torch.full((batch_size, num_steps), alphabet)  # blank everywhere...
    shown = start + torch.arange(num_symbols)  # (N, K) steps that show the symbols
    channels.scatter_(1, shown, symbols)  # ...but the symbols from a random start
    channels[:, -num_symbols:] = alphabet + 1  # ...and the recall marker last
    x = F.one_hot(channels, alphabet + 2).float()  # -> (N, L, A + 2)
    return x, symbols


class RecallTask:
    """Classification at each of the last ``K`` steps; the score is the accuracy, solved from 0.99."""

    name = "recall"
    metric, higher_is_better, threshold = "accuracy", True, 0.99

    def __init__(self, num_symbols: int = 2, alphabet: int = 8) -> None:
        self.num_symbols, self.alphabet = num_symbols, alphabet
        self.input_size, self.output_size, self.output_steps = alphabet + 2, alphabet, num_symbols
        self.baseline = 1 / alphabet

    def lengths(self, requested: list[int]) -> list[int]:
        return requested

    def batch(self, batch_size: int, num_steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return recall_batch(batch_size, num_steps, generator, num_symbols=self.num_symbols, alphabet=self.alphabet)

    def held_out(self, split: str, size: int, num_steps: int, seed: int) -> tuple[Tensor, Tensor]:
        """Fresh sequences from a generator training never touches, one per split and seed."""
        offset = {"valid": 10_000, "test": 20_000}[split]
        return self.batch(size, num_steps, torch.Generator().manual_seed(seed + offset))

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        """``output`` ``(N, K, A)`` logits -> mean cross-entropy over the recalled symbols."""
        return F.cross_entropy(output.flatten(0, 1), y.flatten())

    def score(self, output: Tensor, y: Tensor) -> float:
        return (output.argmax(-1) == y).float().mean().item()

    def solved(self, score: float) -> bool:
        return score >= self.threshold
