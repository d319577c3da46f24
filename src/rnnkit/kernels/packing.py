"""Where each step of each sequence lives when the loops skip padding: a packed, length-sorted layout.

As in ``torch``'s ``PackedSequence``: the batch is sorted longest first, step ``t`` holds the
``batch_sizes[t]`` sequences still running, and the ``T = sum(lengths)`` rows are stored step after step.
The matrix products then only ever see real steps (the loop's per-step products shrink with the batch, and
the all-steps products of the projection and the weight gradients have ``T`` rows, not ``L*N``). Without
lengths the packed rows are the ``(L, N, ·)`` tensor flattened, and every method is a view or a flip.

Shape legend: L steps, N batch, T packed rows, F features.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Packing:
    """Maps between the caller's padded ``(L, N, ·)`` layout and packed rows, and reverses within lengths."""

    def __init__(self, lengths: Tensor | None, num_steps: int, batch_size: int) -> None:
        self.num_steps, self.batch_size = num_steps, batch_size
        self.order = self.inverse = None
        self.batch_sizes = [batch_size] * num_steps
        if lengths is None:
            return
        lengths = lengths.cpu()
        sorted_lengths, order = lengths.sort(descending=True, stable=True)
        # (L, N): is step t of the k-th longest sequence a real step?
        valid = torch.arange(num_steps).unsqueeze(1) < sorted_lengths.unsqueeze(0)
        self.batch_sizes = valid.sum(1).tolist()
        step, rank = valid.nonzero(as_tuple=True)  # row-major: the packed order
        offsets = torch.tensor([0, *self.batch_sizes]).cumsum(0)  # first packed row of each step
        device = lengths.device if lengths.device.type != "cpu" else None
        self.order, self.inverse = order, torch.argsort(order)
        # packed row -> the caller's flattened (L*N) row
        self.index = step * batch_size + order[rank]
        # packed row of step t -> packed row of step len-1-t of the same sequence (an involution)
        self.reverse_index = offsets[sorted_lengths[rank] - 1 - step] + rank
        # packed row -> row of cat([h0 (N rows), packed outputs]) holding the state that step read
        self.previous_index = torch.where(step == 0, rank, batch_size + offsets[(step - 1).clamp(min=0)] + rank)
        self.rank = rank  # packed row -> its sequence's row in the sorted batch
        if device is not None:
            for name in ("order", "inverse", "index", "reverse_index", "previous_index", "rank"):
                setattr(self, name, getattr(self, name).to(device))

    def _to(self, t: Tensor, name: str) -> Tensor:
        index = getattr(self, name)
        return index if index.device == t.device else index.to(t.device)

    def pack(self, x: Tensor) -> Tensor:
        """``(L, N, F)`` in the caller's order -> ``(T, F)``."""
        rows = x.reshape(self.num_steps * self.batch_size, x.shape[-1])
        return rows if self.order is None else rows.index_select(0, self._to(x, "index"))

    def unpack(self, y: Tensor) -> Tensor:
        """``(T, F)`` -> ``(L, N, F)`` in the caller's order, zeros at padded steps."""
        shape = (self.num_steps, self.batch_size, y.shape[-1])
        if self.order is None:
            return y.view(shape)
        return y.new_zeros(shape[0] * shape[1], shape[2]).index_copy(0, self._to(y, "index"), y).view(shape)

    def reverse(self, y: Tensor) -> Tensor:
        """Reverse every sequence within its own length (:func:`rnnkit.unroll.reverse_within_lengths`)."""
        if self.order is None:
            return y.view(self.num_steps, self.batch_size, -1).flip(0).reshape(y.shape)
        return y.index_select(0, self._to(y, "reverse_index"))

    def sort(self, t: Tensor, dim: int) -> Tensor:
        """Per-sequence tensor in the caller's order -> sorted longest first."""
        return t if self.order is None else t.index_select(dim, self._to(t, "order"))

    def unsort(self, t: Tensor, dim: int) -> Tensor:
        return t if self.order is None else t.index_select(dim, self._to(t, "inverse"))

    def per_row(self, t: Tensor) -> Tensor:
        """Per-sequence ``(N, F)`` (sorted) -> ``(T, F)``, one copy per packed row."""
        if self.order is None:
            return t.repeat(self.num_steps, 1)
        return t.index_select(0, self._to(t, "rank"))

    def previous_states(self, h0: Tensor, out: Tensor) -> Tensor:
        """``(T, H)``: for each packed row, the state its step read (``h0`` rows at step 0)."""
        if self.order is None:
            return torch.cat([h0, out[: out.shape[0] - self.batch_size]])
        return torch.cat([h0, out]).index_select(0, self._to(out, "previous_index"))
