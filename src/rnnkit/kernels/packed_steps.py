r"""The step-by-step pieces both pure-PyTorch loops share (:mod:`rnnkit.kernels.loops`,
:mod:`rnnkit.kernels.layer_norm_loops`): walking packed rows, the recurrent product and its gradient, masks.

Packed rows as in ``torch``'s ``PackedSequence``: step ``t`` holds ``batch_sizes[t]`` active sequences in rows
``[o_t, o_t + batch_sizes[t])``, :math:`o_t` the sum of earlier batch sizes.

A zoneout mask holds each unit's keep weight :math:`d` in :math:`h_t = d \odot h_{t-1} + (1 - d) \odot \tilde h_t`:
``(T, H)``, 1 where a unit keeps its previous value and 0 where it takes the new one, in training; a 0-dim
:math:`p` at evaluation, the noise's expectation, the same for every unit and step.
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
    """The mask's rows for the step whose packed rows start at ``row``; a 0-dim mask is every step's."""
    return mask if mask is None or mask.dim() == 0 else mask[row : row + bs]


def zoneout(keep: Tensor | None, old: Tensor, new: Tensor) -> Tensor:
    r""":math:`d \odot h_{t-1} + (1 - d) \odot \tilde h_t`, with :math:`d` = ``keep``."""
    if keep is None:
        return new
    # lerp(new, old, d) is that blend, and it returns old or new exactly where d is 1 or 0 (a training mask)
    return torch.lerp(new, old, keep)


def split_grad(keep: Tensor | None, grad: Tensor) -> tuple[Tensor, Tensor | float]:
    r"""``(gradient to the new value, gradient passed straight to the old one)`` under zoneout:
    :math:`((1 - d) \odot g,\ d \odot g)`."""
    if keep is None:
        return grad, 0.0
    return grad * (1 - keep), grad * keep
