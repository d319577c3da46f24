"""Length-bucketed batch order for variable-length data (sentences, documents, utterances).

Padding costs work in proportion to the longest item of a batch, so items of similar length go together:
each epoch shuffles the items (seeded by ``seed`` and the epoch), sorts pools of 50 batches by length, cuts
them into batches and shuffles the batches. Without shuffling (evaluation), batches follow decreasing length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

POOL_BATCHES = 50  # batches sorted together: similar lengths within a batch, still a random order across them


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int, epoch: int
) -> list[list[int]]:
    """Indices of the items, grouped into batches of ``batch_size`` (the last may be smaller)."""
    if not shuffle:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = POOL_BATCHES * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
