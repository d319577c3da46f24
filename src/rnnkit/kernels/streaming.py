"""One time step of a whole layer (:meth:`rnnkit.layers.RecurrentLayer.step`), for streaming and generation.

At batch 1 a step is a handful of tiny products, so dispatching one PyTorch op per equation costs more than
the arithmetic. Without autograd and without per-step noise the native ``stack_step`` (``csrc/step.cpp``)
runs every layer's two products and gate math in one call (and zoneout's expectation, a blend with the previous
state); otherwise the cells run one after the other exactly as :func:`rnnkit.unroll` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.kernels import capture, native, transforms
from rnnkit.kernels.recurrence import kind_of
from rnnkit.unroll import apply_zoneout, map_state

NATIVE_KINDS = ("rnn_tanh", "rnn_relu", "gru", "lstm")
_NO_BIAS = torch.empty(0)  # the native step's marker for bias=False


def step(layer, x_t: Tensor, state) -> tuple[Tensor, object]:
    """``(y_t (N, H_out), new state)`` of a unidirectional ``layer`` from ``x_t`` ``(N, H_in)`` and a full state."""
    compiled = _native_for(layer, x_t, state)
    if compiled is None:
        return _step_cells(layer, x_t, state)
    kind, cells = _plan(layer)
    params = []
    for weights in cells:
        # straight from the parameter dicts: Module.__getattr__ costs a microsecond each at this scale
        params += [weights["weight_ih"], weights["weight_hh"], _bias(weights["bias_ih"]), _bias(weights["bias_hh"])]
    # no training noise gets here (_native_for): zoneout, if any, is its expectation
    if kind == "lstm":
        h, c = compiled.stack_step(kind, x_t, state[0], state[1], params, layer.zoneout)
        return h[-1], (h, c)
    (h,) = compiled.stack_step(kind, x_t, state, None, params, layer.zoneout)
    return h[-1], h


def _plan(layer) -> tuple[str | None, list[dict]]:
    """The layer's cell kind and its cells' parameter dicts, kept on the layer: at batch 1 a step's native
    call takes about 20 us, and finding these again through ``nn.Module`` each time took as long. The dicts
    are the cells' own, so a replaced weight is read fresh; a replaced cell rebuilds the plan."""
    cells = list(layer.cells._modules.values())
    cached = layer.__dict__.get("_step_plan")
    if cached is not None and cached[0] == cells:  # modules compare by identity
        return cached[1]
    # parametrized weights are not in the dicts: the cells compute them
    parametrized = any("parametrizations" in cell._modules for cell in cells)
    plan = (None if parametrized else kind_of(cells[0]), [cell._parameters for cell in cells])
    layer.__dict__["_step_plan"] = (cells, plan)
    return plan


def _bias(bias: Tensor | None) -> Tensor:
    return _NO_BIAS if bias is None else bias


def _native_for(layer, x_t: Tensor, state):
    """The native module when it gives the cells' numbers: no autograd, no noise, a built-in cell, fp32/64 CPU,
    no torch.func transform (it takes plain tensors and records no gradient), no trace (it cannot see the call)."""
    if x_t.device.type != "cpu" or x_t.dtype not in (torch.float32, torch.float64) or transforms.active():
        return None
    if capture.active():
        return None
    noisy = layer.training and (layer.zoneout > 0 or (layer.dropout > 0 and layer.num_layers > 1))
    if noisy or _plan(layer)[0] not in NATIVE_KINDS:
        return None
    if torch.is_grad_enabled():
        parts = (state,) if isinstance(state, Tensor) else state
        if x_t.requires_grad or any(p.requires_grad for p in (*parts, *layer.parameters())):
            return None
    return native.load()


def _step_cells(layer, x_t: Tensor, state):
    """The reference: each cell's ``project`` and ``step``, with zoneout and dropout as :func:`rnnkit.unroll` and the
    layer have them (in training their noise; at evaluation zoneout's expectation)."""
    new_states = []
    for index, cell in enumerate(layer.cells):
        cell_state = map_state(lambda s, i=index: s[i], state)
        h, cell_state = cell.step(cell.project(x_t), cell_state)
        if layer.zoneout > 0:
            old_state = map_state(lambda s, i=index: s[i], state)
            cell_state = apply_zoneout(old_state, cell_state, layer.zoneout, layer.training)
            h = cell_state if isinstance(cell_state, Tensor) else cell_state[0]
        new_states.append(cell_state)
        x_t = h
        if index < layer.num_layers - 1 and layer.dropout > 0 and layer.training:
            x_t = F.dropout(x_t, layer.dropout, training=True)
    return x_t, map_state(lambda *parts: torch.stack(parts), *new_states)
