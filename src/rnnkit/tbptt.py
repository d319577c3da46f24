"""Truncated backpropagation through time: carry the state across windows, cut the gradient at their edges.

A long stream is cut into windows of ``window`` steps; the state at the end of one window starts the next,
so the network sees the whole past, but gradients stop at the window edge, so memory and time stay bounded::

    state = None
    for x, y in tbptt_windows(stream_x, stream_y, window=35):  # each (35, N, ·), time first
        state = detach_state(state)          # detach so BPTT stops at the window edge
        output, state = lstm(x, state)
        loss = criterion(head(output), y)
        loss.backward(); optimizer.step(); optimizer.zero_grad()
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from rnnkit.cells import State
from rnnkit.errors import RnnkitError


def detach_state(state: State | None) -> State | None:
    """The same state values, cut from the graph that produced them.

    Works on any nesting of tuples (named ones too) and lists of tensors (one state per layer, say); ``None``
    stays ``None``.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return rebuild_like(state, (detach_state(s) for s in state))


def rebuild_like(sequence: tuple | list, items) -> tuple | list:
    """A tuple, named tuple or list of the same type as ``sequence`` holding ``items``."""
    if hasattr(sequence, "_fields"):  # a named tuple takes its fields as arguments, not one iterable
        return type(sequence)(*items)
    return type(sequence)(items)


def tbptt_windows(*streams: Tensor, window: int, time_dim: int = 0) -> Iterator[tuple[Tensor, ...]]:
    """Yield aligned consecutive windows of ``window`` steps from each stream (the last may be shorter)."""
    if window < 1:
        raise RnnkitError(f"window must be at least 1 step, got {window}.")
    if not streams:
        raise RnnkitError("no streams to cut into windows; pass one or more tensors: tbptt_windows(x, y, window=35).")
    length = streams[0].shape[time_dim]
    if any(s.shape[time_dim] != length for s in streams):
        raise RnnkitError(
            f"all streams must have the same length along dim {time_dim}, got {[s.shape[time_dim] for s in streams]}."
        )
    for start in range(0, length, window):
        yield tuple(s.narrow(time_dim, start, min(window, length - start)) for s in streams)
