r"""Sequential digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, UCI optdigits test set)
read one pixel per step, row by row, so the network sees 64 steps of one value (scaled to [0, 1]) and names
the digit at the end. A small cousin of sequential MNIST (Le et al. 2015); no download, the data ship with
scikit-learn. Every fifth image (360) is held out for the test, the next fifth of the rest (288) validates.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

NUM_STEPS = 64  # 8 x 8 pixels, one per step


@cache
def digit_splits() -> dict[str, tuple[Tensor, Tensor]]:
    """``{"train", "valid", "test"}`` -> pixels ``(n, 64, 1)`` in [0, 1] and labels ``(n,)``."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32).unsqueeze(-1) / 16.0  # -> (1797, 64, 1)
    y = torch.tensor(digits.target, dtype=torch.long)
    index = torch.arange(len(y))
    test = index % 5 == 0
    rest = index[~test]
    valid = torch.zeros_like(test)
    valid[rest[torch.arange(len(rest)) % 5 == 0]] = True
    train = ~(test | valid)
    return {"train": (x[train], y[train]), "valid": (x[valid], y[valid]), "test": (x[test], y[test])}


class DigitsTask:
    """Ten classes read at the last of 64 steps; the score is the accuracy, "solved" from 0.9."""

    name = "digits"
    input_size, output_size, output_steps = 1, 10, 1
    metric, higher_is_better, threshold = "accuracy", True, 0.9
    baseline = 0.1

    def lengths(self, requested: list[int]) -> list[int]:
        return [NUM_STEPS]  # the images fix the length

    def batch(self, batch_size: int, num_steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = digit_splits()["train"]
        pick = torch.randint(0, len(y), (batch_size,), generator=generator)
        return x[pick], y[pick]

    def held_out(self, split: str, size: int, num_steps: int, seed: int) -> tuple[Tensor, Tensor]:
        """The fixed validation or test images (all of them: the splits are small)."""
        return digit_splits()[split]

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(output[:, -1], y)

    def score(self, output: Tensor, y: Tensor) -> float:
        return (output[:, -1].argmax(-1) == y).float().mean().item()

    def solved(self, score: float) -> bool:
        return score >= self.threshold
