"""PyTorch's fused recurrent loops (the ones behind ``torch.nn.LSTM``), fed with rnnkit's parameters.

They apply to the built-in cells without per-step extras (trace, recurrent dropout in training, zoneout: its
masks in training, its expectation at evaluation);
variable lengths go through a packed batch, exactly as ``torch.nn`` does. With variable lengths and dropout
between layers in training, the layers run one call each and the dropout is drawn between them over the padded
``(L, N, D*H)`` output, as the reference path draws it: the packed loop would draw its own masks over the
packed rows (the same distribution, but not the reference's numbers under a seed).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.kernels.recurrence import cell_type
from rnnkit.unroll import map_state


def _function(cell):
    """The aten loop for a cell kind, or ``None``: exact types only, so subclasses keep their own math."""
    kind = cell_type(cell)
    if kind is LSTMCell:
        return torch.lstm
    if kind is GRUCell:
        return torch.gru
    if kind is RNNCell:
        return torch.rnn_tanh if cell.nonlinearity == "tanh" else torch.rnn_relu
    return None


def applies(layer) -> bool:
    # torch's loops have no place for zoneout's blend with the previous state, which evaluation keeps too
    per_step_extras = layer.zoneout > 0 or (layer.training and layer.recurrent_dropout > 0)
    return not per_step_extras and _function(layer.cells[0]) is not None


def _needs_fp32(x: Tensor) -> bool:
    """True where oneDNN's bf16 LSTM would be asked for on a CPU that has none (no AVX512-BF16 or AMX)."""
    if x.device.type != "cpu":
        return False
    wants_bf16 = x.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )
    return wants_bf16 and not native_bf16()


def native_bf16() -> bool:
    """Whether this CPU runs bf16 natively (oneDNN's bf16 kernels exist only there)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def run(layer, x: Tensor, hx, lengths: Tensor | None):
    if _needs_fp32(x):
        # oneDNN has no bf16 LSTM primitive for such CPUs (it fails to build one): run this loop in fp32
        # and hand back bf16, as the loop would; under autocast the matrix products around it stay in bf16
        dtype = torch.bfloat16
        with torch.autocast("cpu", enabled=False):
            hx = None if hx is None else map_state(lambda s: s.float(), hx)
            output, h_n = _run(layer, x.float(), hx, lengths, fp32_weights=True)
        return output.to(dtype), map_state(lambda s: s.to(dtype), h_n)
    return _run(layer, x, hx, lengths)


def _run(layer, x: Tensor, hx, lengths: Tensor | None, fp32_weights: bool = False):
    function = _function(layer.cells[0])
    weights = [w.float() for w in layer._flat_weights] if fp32_weights else layer._flat_weights
    if hx is None:
        # built-in cells start from zeros: make them directly, as torch.nn does
        zeros = [x.new_zeros(layer.num_layers * layer.num_directions, x.shape[1], size) for size in layer._state_sizes]
        hx = tuple(zeros) if len(zeros) > 1 else zeros[0]
    is_lstm = isinstance(hx, tuple)
    options = (layer.bias, layer.num_layers, layer.dropout, layer.training, layer.bidirectional)
    if lengths is None:
        result = function(x, hx, weights, *options, False)
        return (result[0], tuple(result[1:])) if is_lstm else (result[0], result[1])

    if layer.training and layer.dropout > 0 and layer.num_layers > 1:
        return _layer_by_layer(layer, function, weights, x, hx, lengths, is_lstm)
    return _run_packed(function, weights, x, hx, lengths, is_lstm, options)


def _layer_by_layer(layer, function, weights, x: Tensor, hx, lengths: Tensor, is_lstm: bool):
    """Variable lengths with dropout between layers in training: one packed call per layer, and the dropout of
    the reference path (:meth:`rnnkit.layers.RecurrentLayer._unroll_layers`) on the padded output between."""
    per_layer = len(weights) // layer.num_layers
    directions = layer.num_directions
    finals = []
    for index in range(layer.num_layers):
        layer_weights = weights[index * per_layer : (index + 1) * per_layer]
        layer_hx = map_state(lambda s, i=index: s[i * directions : (i + 1) * directions], hx)
        options = (layer.bias, 1, 0.0, layer.training, layer.bidirectional)
        x, h_n = _run_packed(function, layer_weights, x, layer_hx, lengths, is_lstm, options)
        finals.append(h_n)
        if index < layer.num_layers - 1:
            x = torch.nn.functional.dropout(x, layer.dropout, training=True)
    return x, map_state(lambda *parts: torch.cat(parts), *finals)


def _run_packed(function, weights, x: Tensor, hx, lengths: Tensor, is_lstm: bool, options):
    """Torch's packed loop on the padded ``x`` ``(L, N, H_in)``: ``(output (L, N, ·) zero-padded, h_n)``."""
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    # the packed loop wants states in its sorted order; hand them back in the caller's order
    hx = map_state(lambda s: s.index_select(1, packed.sorted_indices), hx)
    result = function(packed.data, packed.batch_sizes, hx, weights, *options)
    output, _ = pad_packed_sequence(
        PackedSequence(result[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        total_length=x.shape[0],
    )
    h_n = tuple(result[1:]) if is_lstm else result[1]
    return output, map_state(lambda s: s.index_select(1, packed.unsorted_indices), h_n)
