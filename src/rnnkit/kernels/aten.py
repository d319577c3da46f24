"""PyTorch's fused recurrent loops (the ones behind ``torch.nn.LSTM``), fed with rnnkit's parameters.

They apply to the built-in cells without per-step extras (trace, recurrent dropout or zoneout in training);
variable lengths go through a packed batch, exactly as ``torch.nn`` does.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.unroll import map_state


def _function(cell):
    """The aten loop for a cell kind, or ``None``: exact types only, so subclasses keep their own math."""
    kind = type(cell)
    if kind is LSTMCell:
        return torch.lstm
    if kind is GRUCell:
        return torch.gru
    if kind is RNNCell:
        return torch.rnn_tanh if cell.nonlinearity == "tanh" else torch.rnn_relu
    return None


def applies(layer) -> bool:
    per_step_extras = layer.training and (layer.recurrent_dropout > 0 or layer.zoneout > 0)
    return not per_step_extras and _function(layer.cells[0]) is not None


def run(layer, x: Tensor, hx, lengths: Tensor | None):
    function = _function(layer.cells[0])
    if hx is None:
        # built-in cells start from zeros: make them directly, as torch.nn does
        zeros = [x.new_zeros(layer.num_layers * layer.num_directions, x.shape[1], size) for size in layer._state_sizes]
        hx = tuple(zeros) if len(zeros) > 1 else zeros[0]
    is_lstm = isinstance(hx, tuple)
    options = (layer.bias, layer.num_layers, layer.dropout, layer.training, layer.bidirectional)
    if lengths is None:
        result = function(x, hx, layer._flat_weights, *options, False)
        return (result[0], tuple(result[1:])) if is_lstm else (result[0], result[1])

    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    # the packed loop wants states in its sorted order; hand them back in the caller's order
    hx = map_state(lambda s: s.index_select(1, packed.sorted_indices), hx)
    result = function(packed.data, packed.batch_sizes, hx, layer._flat_weights, *options)
    output, _ = pad_packed_sequence(
        PackedSequence(result[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        total_length=x.shape[0],
    )
    h_n = tuple(result[1:]) if is_lstm else result[1]
    return output, map_state(lambda s: s.index_select(1, packed.unsorted_indices), h_n)
