"""Layers, directions, variable lengths and training noise around :class:`rnnkit.kernels.recurrence.Recurrence`.

The same meaning as :meth:`rnnkit.layers.RecurrentLayer._unroll_layers`, organised for speed:

* variable lengths: the batch is sorted longest first once for the whole stack, so at step ``t`` the
  active sequences are a prefix of the rows and the loop shrinks its matrix products as sequences end
  (``batch_sizes[t]`` rows) instead of computing padded steps and masking them; the output and ``h_n`` are put
  back in the caller's order at the end. The reverse direction reverses each sequence within its own length
  (:func:`rnnkit.unroll.reverse_within_lengths`), so all sequences still start at step 0.
* training noise is drawn in exactly the order and the layout :func:`rnnkit.unroll` draws it (per layer and
  direction: the recurrent-dropout mask, then every step's zoneout masks, ``h`` before ``c``; dropout between
  layers over the whole ``(L, N, D*H)`` output), then permuted into the sorted order, so a seeded run gives
  the numbers of the reference path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels.recurrence import Recurrence, kind_of
from rnnkit.unroll import dropout_mask, reverse_within_lengths


def applies(layer) -> bool:
    """Every cell is a built-in kind the loops know (exact type)."""
    kinds = {kind_of(cell) for cell in layer.cells}
    return len(kinds) == 1 and None not in kinds


def run(layer, x: Tensor, hx, lengths: Tensor | None, loops):
    """``(output (L, N, D*H), h_n)`` for ``layer`` on time-first ``x``, with the given loops implementation."""
    kind = kind_of(layer.cells[0])
    num_steps, batch_size = x.shape[0], x.shape[1]
    if hx is None:
        hx = layer.initial_state(batch_size, device=x.device, dtype=x.dtype)
    hx = (hx,) if isinstance(hx, Tensor) else tuple(hx)

    order = None
    batch_sizes: list[int] = []
    if lengths is not None:
        lengths, order = lengths.sort(descending=True, stable=True)
        x = x.index_select(1, order)
        hx = tuple(s.index_select(1, order) for s in hx)
        # active rows per step: sequences longer than t
        steps = torch.arange(num_steps, device=lengths.device).unsqueeze(1)  # (L, 1)
        batch_sizes = (steps < lengths.unsqueeze(0)).sum(1).tolist()

    training = layer.training
    finals: list[tuple[Tensor, ...]] = []
    for layer_index in range(layer.num_layers):
        outputs = []
        for direction in range(layer.num_directions):
            index = layer_index * layer.num_directions + direction
            cell = layer.cells[index]
            state = tuple(s[index] for s in hx)
            rmask, zmask_h, zmask_c = _noise(layer, state, num_steps, training, order)
            x_dir = x if direction == 0 else _reverse(x, lengths)
            xp = cell.project(x_dir)  # (L, N, G*H), all steps in one product
            c0 = state[1] if kind == "lstm" else None
            out, *final = Recurrence.apply(loops, kind, batch_sizes, xp, state[0], c0, cell.weight_hh,
                                           cell.bias_hh, rmask, zmask_h, zmask_c)
            outputs.append(out if direction == 0 else _reverse(out, lengths))
            finals.append(tuple(final))
        x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # -> (L, N, D*H)
        if layer_index < layer.num_layers - 1 and layer.dropout > 0 and training:
            x = x * _permuted(_dropout_noise(x, layer.dropout), order, dim=1)

    h_n = tuple(torch.stack(parts) for parts in zip(*finals, strict=True))
    if order is not None:
        inverse = torch.argsort(order)
        x = x.index_select(1, inverse)
        h_n = tuple(s.index_select(1, inverse) for s in h_n)
    return x, (h_n if kind == "lstm" else h_n[0])


def _reverse(t: Tensor, lengths: Tensor | None) -> Tensor:
    return t.flip(0) if lengths is None else reverse_within_lengths(t, lengths)


def _permuted(t: Tensor | None, order: Tensor | None, dim: int) -> Tensor | None:
    """Rows drawn in the caller's order -> the sorted order."""
    return t if t is None or order is None else t.index_select(dim, order)


def _noise(layer, state: tuple[Tensor, ...], num_steps: int, training: bool, order: Tensor | None):
    """``(rmask (N, H), zoneout keep-masks (L, N, H) for h and c)``, drawn as :func:`rnnkit.unroll` draws them."""
    rmask = zmask_h = zmask_c = None
    h0 = state[0]
    if training and layer.recurrent_dropout > 0:
        rmask = _permuted(dropout_mask(h0, layer.recurrent_dropout), order, dim=0)
    if training and layer.zoneout > 0:
        # one draw per step and state part in unroll; a single (L, parts, N, H) draw yields the same numbers
        draws = torch.rand(num_steps, len(state), *h0.shape, device=h0.device, dtype=h0.dtype)
        keep = _permuted((draws < layer.zoneout).to(h0.dtype), order, dim=2)
        zmask_h = keep[:, 0]
        zmask_c = keep[:, 1] if len(state) > 1 else None
    return rmask, zmask_h, zmask_c


def _dropout_noise(x: Tensor, p: float) -> Tensor:
    """``F.dropout``'s own noise for ``x`` (Bernoulli keep, scaled by ``1/(1-p)``), drawn in the same order."""
    return torch.empty_like(x).bernoulli_(1 - p).div_(1 - p)

