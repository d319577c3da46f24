r"""The recurrence as ONNX has it, used while ``torch.onnx.export`` traces a layer (:mod:`rnnkit.export`).

rnnkit's fused loops are C++ the exporter cannot see, and an explicit step loop would be traced into a graph
of fixed length. PyTorch's aten loops (``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh``) become ONNX's own
LSTM / GRU / RNN nodes, whose loop runs as long as the input: so each layer and direction runs here as one
such call (ONNX's gate order is different; the exporter reorders the weights). Variable lengths are tensor
operations around them, which keep the numbers of :func:`rnnkit.unroll`: the reverse direction reads each
sequence flipped within its own length, padded outputs are zeros, and ``h_n`` is each sequence's output at
its last step. With lengths an LSTM's final cell state is not computed (ONNX's node would need ``lengths``
in its own form); it comes back as NaN, so a model that reads it fails loudly (none of rnnkit's tasks does).

Zoneout's expectation at evaluation, :math:`h_t = p\, h_{t-1} + (1 - p)\, \tilde h_t` (``c`` alike), blends every
step with the state before it, which ONNX's nodes have no place for: a layer with zoneout runs its node one step
at a time inside an ONNX ``Loop`` (a scripted loop, which the exporter keeps as one, as long as the input).
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from rnnkit.errors import RnnkitError
from rnnkit.kernels import aten
from rnnkit.kernels.recurrence import kind_of
from rnnkit.unroll import reverse_within_lengths


def run(layer, x: Tensor, hx, lengths: Tensor | None):
    """``(output (L, N, D*H), h_n)`` of ``layer`` over ``x`` ``(L, N, H_in)``, one aten call per layer and
    direction (no dropout: export is for inference)."""
    function = aten._function(layer.cells[0])
    if function is None or getattr(layer, "proj_size", 0):
        raise RnnkitError(
            f"ONNX export covers rnnkit's RNN, LSTM and GRU cells without projections, not "
            f"{type(layer.cells[0]).__name__}; export a model built from those."
        )
    is_lstm = len(layer._state_sizes) == 2
    per_cell = len(layer._flat_weights) // len(layer.cells)
    num_directions = layer.num_directions
    if lengths is not None:
        steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (L, 1)
        valid = (steps < lengths.unsqueeze(0)).unsqueeze(-1).to(x.dtype)  # (L, N, 1)
        last = (lengths - 1).view(1, -1, 1)  # (1, N, 1): each sequence's last step
    finals = []
    for layer_index in range(layer.num_layers):
        outputs = []
        for direction in range(num_directions):
            index = layer_index * num_directions + direction
            weights = layer._flat_weights[index * per_cell : (index + 1) * per_cell]
            if hx is None:
                state = tuple(x.new_zeros(1, x.shape[1], size) for size in layer._state_sizes)
            else:
                state = tuple(s[index : index + 1] for s in hx) if is_lstm else (hx[index : index + 1],)
            reverse = direction == 1
            inputs = _flip(x, lengths) if reverse else x
            if layer.zoneout > 0:  # evaluation's expectation, a blend at every step
                kind = kind_of(layer.cells[index])
                result = _zoneout_steps()(kind, inputs, state[0], state[-1], weights, layer.bias, layer.zoneout)
                result = result if is_lstm else result[:2]
            else:
                hidden = state if is_lstm else state[0]
                result = function(inputs, hidden, weights, layer.bias, 1, 0.0, False, False, False)
            output = _flip(result[0], lengths) if reverse else result[0]  # -> (L, N, H), the input's order
            if lengths is None:
                final = tuple(result[1:]) if is_lstm else result[1]
            else:
                # the state after each sequence's own last step: forward at step length - 1, reverse at 0
                h = output[:1] if reverse else output.gather(0, last.expand(1, -1, output.shape[-1]))
                final = (h, torch.full_like(h, float("nan"))) if is_lstm else h
            outputs.append(output)
            finals.append(final)
        x = torch.cat(outputs, dim=-1) if num_directions > 1 else outputs[0]  # -> (L, N, D*H)
        if lengths is not None:
            x = x * valid  # padded steps output zeros, as the layers' contract says
    if is_lstm:
        return x, (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals]))
    return x, torch.cat(finals)


def _flip(x: Tensor, lengths: Tensor | None) -> Tensor:
    return x.flip(0) if lengths is None else reverse_within_lengths(x, lengths)


def _zoneout_step_loop(kind: str, x: Tensor, h: Tensor, c: Tensor, weights: list[Tensor], has_biases: bool, p: float):
    r"""``(output (L, N, H), h_n, c_n)``: torch's loop for ``kind`` one step at a time, each step's state
    blended with the one before it, :math:`h_t = p\, h_{t-1} + (1 - p)\, \tilde h_t` (``c`` alike, an LSTM's;
    ``c`` passes through otherwise). Scripted by :func:`_zoneout_steps`; ``kind`` is a constant of the trace,
    so each exported loop holds the one branch it takes."""
    outputs: list[Tensor] = []
    for t in range(x.size(0)):
        x_t = x[t : t + 1]  # (1, N, H_in): a one-step call, ONNX's node with a sequence of one
        if kind == "lstm":
            _, h_new, c_new = torch.lstm(x_t, [h, c], weights, has_biases, 1, 0.0, False, False, False)
            c = p * c + (1 - p) * c_new
        elif kind == "gru":
            h_new = torch.gru(x_t, h, weights, has_biases, 1, 0.0, False, False, False)[1]
        elif kind == "rnn_tanh":
            h_new = torch.rnn_tanh(x_t, h, weights, has_biases, 1, 0.0, False, False, False)[1]
        else:
            h_new = torch.rnn_relu(x_t, h, weights, has_biases, 1, 0.0, False, False, False)[1]
        h = p * h + (1 - p) * h_new
        outputs.append(h)
    return torch.cat(outputs), h, c  # -> (L, N, H)


@functools.cache
def _zoneout_steps():
    """:func:`_zoneout_step_loop` scripted, on first use: the exporter keeps a scripted loop as an ONNX ``Loop``,
    where a traced one would be unrolled to the example's length. The state is two tensors, not a list, as
    ONNX's LSTM node is built from a hidden state the trace constructs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's, as the exporter rnnkit uses is
        return torch.jit.script(_zoneout_step_loop)
