"""Layers, directions, variable lengths and training noise around :class:`rnnkit.kernels.recurrence.Recurrence`.

The same meaning as :meth:`rnnkit.layers.RecurrentLayer._unroll_layers`, organised for speed:

* variable lengths: the batch is sorted longest first and packed once for the whole stack
  (:class:`rnnkit.kernels.packing.Packing`), so the loops shrink their products as sequences end instead of
  computing padded steps and masking them; the output goes back to the caller's padded layout (zeros at
  padded steps) and order at the end. The reverse direction reverses each sequence within its own length, so
  all sequences still start at step 0 and ``h_n`` is the state at each sequence's own last step.
* cells: RNN, GRU, LSTM and layer-norm LSTM (:func:`rnnkit.kernels.recurrence.kind_of`).
* training noise is drawn in exactly the order and layout :func:`rnnkit.unroll` draws it (per layer and
  direction: the recurrent-dropout mask, then every step's zoneout masks, ``h`` before ``c``; then dropout
  between layers over the whole ``(L, N, D*H)`` output), then packed, so a seeded run gives the numbers of the
  reference path. At evaluation zoneout is its expectation: one 0-dim keep weight ``p`` for every unit and step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import recurrence
from rnnkit.kernels.packing import Packing
from rnnkit.kernels.recurrence import kind_of
from rnnkit.unroll import dropout_mask


def applies(layer, x: Tensor) -> bool:
    """Every cell is a built-in kind the loops know (exact type), and there is at least one step."""
    kinds = {kind_of(cell) for cell in layer.cells}
    return len(kinds) == 1 and None not in kinds and x.shape[0] > 0 and x.shape[1] > 0


def run(layer, x: Tensor, hx, lengths: Tensor | None, loops):
    """``(output (L, N, D*H), h_n)`` for ``layer`` on time-first ``x``, with the given loops implementation."""
    kind = kind_of(layer.cells[0])
    num_steps, batch_size = x.shape[0], x.shape[1]
    zero_start = hx is None
    if zero_start:
        hx = layer.initial_state(batch_size, device=x.device, dtype=x.dtype)
    packing = Packing(lengths, num_steps, batch_size)
    hx = tuple(packing.sort(s, 1) for s in ((hx,) if isinstance(hx, Tensor) else hx))
    x = packing.pack(x)  # -> (T, H_in)

    training = layer.training
    finals: list[tuple[Tensor, ...]] = []
    for layer_index in range(layer.num_layers):
        outputs = []
        for direction in range(layer.num_directions):
            index = layer_index * layer.num_directions + direction
            cell = layer.cells[index]
            state = tuple(s[index] for s in hx)
            rmask, zmask_h, zmask_c = _noise(layer, state, packing, training)
            x_dir = x if direction == 0 else packing.reverse(x)
            out, *final = recurrence.apply(
                loops, kind, packing, x_dir, state, cell, rmask, zmask_h, zmask_c, zero_start
            )
            outputs.append(out if direction == 0 else packing.reverse(out))
            finals.append(tuple(final))
        x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # -> (T, D*H)
        if layer_index < layer.num_layers - 1 and layer.dropout > 0 and training:
            # F.dropout's own noise, drawn over the padded output as the reference path draws it
            shape = (num_steps, batch_size, x.shape[-1])
            noise = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(1 - layer.dropout)
            x = x * packing.pack(noise.div_(1 - layer.dropout))

    # one layer and direction: a view, not a stack (a copy, and one more node in the backward)
    h_n = tuple(
        packing.unsort(parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts), 1)
        for parts in zip(*finals, strict=True)
    )
    return packing.unpack(x), (h_n if len(h_n) > 1 else h_n[0])


def _noise(layer, state: tuple[Tensor, ...], packing: Packing, training: bool):
    """``(rmask (N, H), zoneout keep-masks (T, H) for h and c)``, drawn as :func:`rnnkit.unroll` draws them; at
    evaluation the zoneout masks are their expectation, the 0-dim ``p`` (:mod:`rnnkit.kernels.packed_steps`)."""
    rmask = zmask_h = zmask_c = None
    h0 = state[0]
    if training and layer.recurrent_dropout > 0:
        # drawn for the caller's order (h0 is sorted, but only its shape matters)
        rmask = packing.sort(dropout_mask(h0, layer.recurrent_dropout), 0)
    if training and layer.zoneout > 0:
        # one draw per step and state part in unroll; a single (L, parts, N, H) draw yields the same numbers
        draws = torch.rand(packing.num_steps, len(state), *h0.shape, device=h0.device, dtype=h0.dtype)
        keep = (draws < layer.zoneout).to(h0.dtype)
        zmask_h = packing.pack(keep[:, 0])
        zmask_c = packing.pack(keep[:, 1]) if len(state) > 1 else None
    elif layer.zoneout > 0:
        zmask_h = h0.new_tensor(layer.zoneout)  # the same weight for every unit and step: no (T, H) tensor of p
        zmask_c = zmask_h if len(state) > 1 else None
    return rmask, zmask_h, zmask_c
