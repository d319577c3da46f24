"""What the layers run while ``torch.jit.trace`` records a graph of them.

The tracer records PyTorch operations; rnnkit's native loops are C++ calls it cannot see, and its loops'
autograd Functions carry the call's sizes in Python objects, so a traced graph of them replays the example's
batch and length on any input: other sizes gave wrong numbers. PyTorch's aten loops (``torch.lstm``,
``torch.gru``, ``torch.rnn_tanh``) are single operations whose loop runs as long as the input, as in a traced
``torch.nn.LSTM``. Where they do not apply (layer norm, zoneout, user cells, recurrent dropout in training) the
cells unroll in PyTorch, which the tracer records step by step, so the graph keeps the example's length and
:func:`run` warns as the tracer does of its other fixed shapes.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from rnnkit.kernels import aten


def active() -> bool:
    """Whether ``torch.jit.trace`` (or the TorchScript ONNX exporter, which traces) records this call."""
    return torch._C._is_tracing()


def run(layer, x: Tensor, hx, lengths: Tensor | None):
    """``(output, h_n)`` from aten's loop where it applies, else ``None`` (the cells unroll), with a warning."""
    if aten.applies(layer) and x.shape[0] > 0 and x.shape[1] > 0:
        return aten.run(layer, x, hx, lengths)
    warnings.warn(
        f"rnnkit: the trace records {type(layer.cells[0]).__name__}'s {x.shape[0]} steps one by one, so the "
        "traced module fits sequences of that length only; trace with the length you will run, or use a cell "
        "torch's loops have (RNN, LSTM, GRU without layer_norm, zoneout or recurrent_dropout in training).",
        torch.jit.TracerWarning,
        stacklevel=2,
    )
    return None
