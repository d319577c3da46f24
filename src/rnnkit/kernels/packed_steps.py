r"""The step-by-step pieces both pure-PyTorch loops share (:mod:`rnnkit.kernels.loops`,
:mod:`rnnkit.kernels.layer_norm_loops`): walking packed rows, the recurrent product and its gradient, masks.

Packed rows as in ``torch``'s ``PackedSequence``: step ``t`` holds ``batch_sizes[t]`` active sequences in rows
``[o_t, o_t + batch_sizes[t])``, :math:`o_t` the sum of earlier batch sizes. A zoneout mask is 1 where a unit keeps
its previous value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def steps(batch_sizes: list[int]):
    """``(t, first packed row of step t, active rows)`` for every step."""
    row = 0
    for t, bs in enumerate(batch_sizes):
        yield t, row, bs
        row += bs


def previous_rows(batch_sizes: list[int]) -> list[int]:
    """First packed row of the step before each step (its first ``bs`` rows hold the previous states)."""
    return [row - batch_sizes[t - 1] if t else 0 for t, row, _ in steps(batch_sizes)]


def recurrent(h: Tensor, rmask: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    bs = h.shape[0]
    return F.linear(h if rmask is None else h * rmask[:bs], w_hh, b_hh)


def back_into(d_prev: Tensor, d_gh: Tensor, rmask: Tensor | None, w_hh: Tensor) -> Tensor:
    """``d_prev + (d_gh @ W_hh) * m``: the gradient reaching ``h_{t-1}``."""
    back = d_gh @ w_hh
    return d_prev + (back if rmask is None else back * rmask[: d_gh.shape[0]])


def mask_rows(mask: Tensor | None, row: int, bs: int) -> Tensor | None:
    return None if mask is None else mask[row : row + bs]


def zoneout(keep: Tensor | None, old: Tensor, new: Tensor) -> Tensor:
    return new if keep is None else torch.where(keep != 0, old, new)


def split_grad(keep: Tensor | None, grad: Tensor) -> tuple[Tensor, Tensor | float]:
    """``(gradient to the new value, gradient passed straight to the old one)`` under zoneout."""
    if keep is None:
        return grad, 0.0
    kept = keep != 0
    return grad.masked_fill(kept, 0), grad.masked_fill(~kept, 0)
