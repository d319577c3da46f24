r"""Time unfolding: run any cell over a sequence.

:func:`unroll` is the reference meaning of every recurrent layer in rnnkit; the fast kernels in
:mod:`rnnkit.kernels` are tested to give its numbers. Without lengths, reverse, dropout or trace it is
equivalent to the following::

    xp = cell.project(x)                     # (L, N, H_in) -> (L, N, G*H): one matrix product
    state = cell.init_state(N) if state is None else state
    outputs = []
    for t in range(L):
        h, state = cell.step(xp[t], state)   # the recurrent part only
        outputs.append(h)
    return torch.stack(outputs), state

Shape legend: N batch, L time, H_in input features, H_out size of the emitted ``h``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells import RecurrentCell, State, map_state
from rnnkit.errors import RnnkitError

Trace = dict[str, Tensor]


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """Flip each sequence of ``x`` ``(L, N, ...)`` within its own length; padding stays where it is.

    Step ``t < lengths[n]`` of sequence ``n`` moves to ``lengths[n] - 1 - t``. Applying it twice is the
    identity, so the same call un-reverses the outputs.
    """
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (L, 1)
    lengths = lengths.to(x.device).unsqueeze(0)  # (1, N)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (L, N)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def dropout_mask(like: Tensor, p: float) -> Tensor:
    """A Bernoulli keep-mask scaled by ``1/(1-p)`` (inverted dropout), shaped like ``like``."""
    return torch.empty_like(like).bernoulli_(1 - p) / (1 - p)


def apply_zoneout(old: State, new: State, p: float, training: bool) -> State:
    r"""Zoneout from the state before a step (``old``) and the step's own new state (``new``), each part alike.

    In training each unit keeps its previous value with probability ``p``, a fresh mask per call (i.e. per
    step): :math:`h_t = d \odot h_{t-1} + (1 - d) \odot \tilde h_t`, :math:`d \sim \mathrm{Bernoulli}(p)`. At
    evaluation the mask's expectation, as the paper has it: :math:`h_t = p\, h_{t-1} + (1 - p)\, \tilde h_t`.
    """
    if training:
        return map_state(lambda o, n: torch.where(torch.rand_like(n) < p, o, n), old, new)
    return map_state(lambda o, n: p * o + (1 - p) * n, old, new)


def check_lengths(lengths: Tensor | list[int], num_steps: int, batch_size: int, device: torch.device) -> Tensor:
    """Validate ``lengths`` and return it as an int64 tensor on ``device``."""
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.device.type != "cpu" and lengths.device != device:
        raise RnnkitError(
            f"lengths is on {lengths.device} but the input is on {device}; keep lengths on the CPU or "
            "on the input's device."
        )
    if lengths.dim() != 1 or lengths.shape[0] != batch_size:
        raise RnnkitError(f"lengths must have shape ({batch_size},), one per sequence, got {tuple(lengths.shape)}.")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise RnnkitError(f"lengths must hold integers, got dtype {lengths.dtype}.")
    if batch_size and (int(lengths.min()) < 1 or int(lengths.max()) > num_steps):
        raise RnnkitError(
            f"lengths must lie in [1, {num_steps}] (the sequence length), got min {int(lengths.min())} "
            f"and max {int(lengths.max())}."
        )
    return lengths.to(device=device, dtype=torch.long)


def unroll(
    cell: RecurrentCell,
    x: Tensor,
    state: State | None = None,
    lengths: Tensor | list[int] | None = None,
    reverse: bool = False,
    trace: bool = False,
    *,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
) -> tuple[Tensor, State] | tuple[Tensor, State, Trace]:
    r"""Run ``cell`` over ``x`` one step at a time.

    Args:
        cell: anything with ``project``, ``step`` / ``equations`` and ``init_state`` (see
            :class:`rnnkit.cells.RecurrentCell`).
        x: ``(L, N, H_in)``, time first.
        state: initial state (``(N, H_out)``, or a tuple such as LSTM's ``(h, c)``); zeros when ``None``.
        lengths: ``(N,)`` valid steps per sequence, in ``[1, L]``. Padded steps keep the state and emit zeros.
        reverse: run each sequence backwards within its own length; outputs stay aligned with ``x``.
        trace: also return every step's state and gate activations.
        recurrent_dropout: in training, drop units of ``h`` before the recurrent product with one mask per
            sequence, reused at every step (Gal & Ghahramani 2016).
        zoneout: the probability :math:`p` that a unit keeps its previous value at a step (Krueger et al. 2017;
            ``h`` and an LSTM's ``c`` alike): in training :math:`h_t = d \odot h_{t-1} + (1 - d) \odot \tilde h_t`
            with a fresh mask :math:`d \sim \mathrm{Bernoulli}(p)` per step; at eval its expectation, as in the
            paper, :math:`h_t = p\, h_{t-1} + (1 - p)\, \tilde h_t` (see :func:`apply_zoneout`).

    Returns:
        ``(outputs (L, N, H_out), final_state)``, plus with ``trace=True`` a dict of ``(L, N, ·)`` tensors:
        each state component by name (``h``, and ``c`` for an LSTM) and each gate (``i f g o`` for an LSTM,
        ``r z n`` for a GRU), zero at padded steps.
    """
    num_steps, batch_size = x.shape[0], x.shape[1]
    if lengths is not None:
        lengths = check_lengths(lengths, num_steps, batch_size, x.device)
        if reverse:
            x = reverse_within_lengths(x, lengths)
    elif reverse:
        x = x.flip(0)

    xp = cell.project(x)  # (L, N, G*H), all steps in one product
    if state is None:
        state = cell.init_state(batch_size, device=xp.device, dtype=xp.dtype)

    training = cell.training
    h0 = state if isinstance(state, Tensor) else state[0]
    mask = dropout_mask(h0, recurrent_dropout) if training and recurrent_dropout > 0 else None
    # (L, N, 1) validity of each step, only needed for variable lengths
    valid = None
    if lengths is not None:
        valid = (torch.arange(num_steps, device=x.device).unsqueeze(1) < lengths).unsqueeze(-1)

    outputs, records = [], []
    for t in range(num_steps):
        if trace:
            h, new_state, gates = _equations(cell, xp[t], state, mask)
        else:
            h, new_state = cell.step(xp[t], state, recurrent_mask=mask)
        if zoneout > 0:
            new_state = apply_zoneout(state, new_state, zoneout, training)
            h = new_state if isinstance(new_state, Tensor) else new_state[0]
        if valid is not None:
            # padded steps: the state stays, the output is zero
            new_state = map_state(lambda old, new, v=valid[t]: torch.where(v, new, old), state, new_state)
            h = h * valid[t]
        state = new_state
        outputs.append(h)
        if trace:
            records.append((state, gates))

    output = torch.stack(outputs) if outputs else xp.new_zeros(0, batch_size, h0.shape[-1])
    if trace and not records:  # no step: the names and widths from one step that is not kept, no rows
        _, probe_state, probe_gates = _equations(cell, xp.new_zeros(batch_size, xp.shape[-1]), state, mask)
        result_trace = {
            name: value[:0] for name, value in _stack_trace(cell, [(probe_state, probe_gates)], None).items()
        }
    else:
        result_trace = _stack_trace(cell, records, valid) if trace else None
    if reverse:
        flip = (lambda t: reverse_within_lengths(t, lengths)) if lengths is not None else (lambda t: t.flip(0))
        output = flip(output)
        if result_trace is not None:
            result_trace = {name: flip(value) for name, value in result_trace.items()}
    return (output, state, result_trace) if trace else (output, state)


def _equations(cell: RecurrentCell, xp: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State, dict]:
    """One step with its gates; a cell that has only ``step`` (not a :class:`RecurrentCell`) traces no gates."""
    if hasattr(cell, "equations"):
        return cell.equations(xp, state, mask)
    h, state = cell.step(xp, state, recurrent_mask=mask)
    return h, state, {}


def _stack_trace(cell: RecurrentCell, records: list, valid: Tensor | None) -> Trace:
    """Stack per-step states and gates into ``(L, N, ·)`` tensors, zeroed at padded steps."""
    names = getattr(cell, "state_names", ("h",))
    trace: Trace = {}
    for name_index, name in enumerate(names):
        trace[name] = torch.stack([s if isinstance(s, Tensor) else s[name_index] for s, _ in records])
    for gate in records[0][1] if records else ():
        trace[gate] = torch.stack([g[gate] for _, g in records])
    if valid is not None:
        trace = {name: value * valid for name, value in trace.items()}
    return trace
