r"""Delayed recall, the copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016 in this form).

The first ``K`` steps show symbols drawn from an alphabet of ``A``; blanks follow; the last ``K`` steps carry
a "recall" marker, and there the network must output the ``K`` symbols in order. Inputs are one-hot over
``A + 2`` channels (the symbols, blank, recall). The sequence is ``L`` steps long in all, so the first
symbol must be kept for ``L - K`` steps. Guessing scores an accuracy of ``1/A``; solved means at least 99%
of the recalled symbols right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import RnnkitError


def recall_batch(
    batch_size: int, num_steps: int, generator: torch.Generator, *, num_symbols: int = 4, alphabet: int = 8
) -> tuple[Tensor, Tensor]:
    """``x`` ``(N, L, A + 2)`` one-hot and the symbols to recall ``y`` ``(N, K)`` (integers in ``[0, A)``)."""
    if num_steps < 2 * num_symbols + 1:
        raise RnnkitError(
            f"delayed recall of {num_symbols} symbols needs at least {2 * num_symbols + 1} steps, got {num_steps}."
        )
    symbols = torch.randint(0, alphabet, (batch_size, num_symbols), generator=generator)
    channels = torch.full((batch_size, num_steps), alphabet)  # blank everywhere...
    channels[:, :num_symbols] = symbols  # ...but the symbols first
    channels[:, -num_symbols:] = alphabet + 1  # ...and the recall marker last
    x = F.one_hot(channels, alphabet + 2).float()  # -> (N, L, A + 2)
    return x, symbols


class RecallTask:
    """Classification at each of the last ``K`` steps; the score is the accuracy, solved from 0.99."""

    name = "recall"
    metric, higher_is_better, threshold = "accuracy", True, 0.99

    def __init__(self, num_symbols: int = 4, alphabet: int = 8) -> None:
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
