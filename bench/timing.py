"""Timing helpers shared by the benchmarks: interleaved repeats of two callables, medians and ratios.

Interleaving (reference, ours, ours, reference, ...) keeps a noisy shared machine's drift out of the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(reference: Callable[[], object], ours: Callable[[], object], *, repeats: int = 7, warmup: int = 2) -> dict:
    """Median seconds of each and ``ratio`` = reference time / our time (above 1: we are faster)."""
    for _ in range(warmup):
        reference()
        ours()
    ref_times, our_times = [], []
    for repeat in range(repeats):
        # alternate who goes first (ABBA), so a warm cache or allocator favours neither side
        if repeat % 2:
            our_times.append(seconds(ours))
            ref_times.append(seconds(reference))
        else:
            ref_times.append(seconds(reference))
            our_times.append(seconds(ours))
    ref_median, our_median = statistics.median(ref_times), statistics.median(our_times)
    return {
        "reference_ms": round(ref_median * 1e3, 3),
        "rnnkit_ms": round(our_median * 1e3, 3),
        "ratio": round(ref_median / our_median, 3),
    }


def forward_backward(module, x: torch.Tensor, **kwargs) -> Callable[[], None]:
    """A closure running one forward and backward pass of ``module`` on ``x`` (grads cleared first)."""

    def run() -> None:
        module.zero_grad(set_to_none=True)
        output, _ = module(x, **kwargs)
        output.sum().backward()

    return run
