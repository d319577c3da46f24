r"""How far back a loss reaches: the norm of :math:`\partial \ell / \partial h_t` against :math:`t`.

For a readout of the last state, :math:`\ell = w^\top h_L` (``w`` a fixed random unit vector), back-
propagation through time gives

.. math::
    \frac{\partial \ell}{\partial h_t} = \Big(\prod_{s=t+1}^{L} \frac{\partial h_s}{\partial h_{s-1}}\Big)^{\!\top} w

A plain tanh RNN multiplies by :math:`\mathrm{diag}(1 - h_s^2)\, W_{hh}` at every step, so the norm shrinks
geometrically when :math:`\|W_{hh}\| < 1` (Bengio et al. 1994; Pascanu et al. 2013). An LSTM's cell state
adds a path :math:`\partial c_s / \partial c_{s-1} = \mathrm{diag}(f_s)`: with the forget gate open
(:math:`f \approx 1`) the error flows back unchanged, Hochreiter's constant error carousel; with torch's
default initialisation :math:`f \approx \sigma(0) = 0.5` it halves at every step, like a plain RNN.
A GRU's update gate :math:`z` plays the same part (:math:`h' = (1 - z) n + z h`). :func:`open_gates` sets
those gate biases; :func:`compare_cells` shows both cases.

Norms are computed in float64, so a vanishing gradient shows its true size instead of underflowing to 0.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from rnnkit.cells import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, RecurrentCell, RNNCell
from rnnkit.errors import RnnkitError
from rnnkit.viz.figure import new_figure, save

if TYPE_CHECKING:  # matplotlib loads with the first figure (rnnkit.viz.figure)
    from matplotlib.figure import Figure

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def open_gates(cell: RecurrentCell, bias: float) -> RecurrentCell:
    """Set the bias of the gate that keeps memory: an LSTM's forget gate ``f``, a GRU's update gate ``z``.

    ``bias`` goes into the input bias (or the input LayerNorm's offset); the recurrent bias of that gate is
    zeroed, so the gate starts at about :math:`\\sigma(\\text{bias})` (Gers et al. 2000; Jozefowicz et al. 2015
    use 1). Returns the cell. Other cells are refused.
    """
    if not isinstance(cell, LSTMCell | LayerNormLSTMCell | GRUCell | LayerNormGRUCell):
        raise RnnkitError(f"{type(cell).__name__} has no forget or update gate to open; use an LSTM or GRU cell.")
    size = cell.hidden_size
    # gate order i|f|g|o (LSTM) and r|z|n (GRU): the keeping gate is the second block either way
    keep = slice(size, 2 * size)
    layer_norm = isinstance(cell, LayerNormLSTMCell | LayerNormGRUCell)
    bias_ih = cell.ln_ih.bias if layer_norm else cell.bias_ih
    bias_hh = cell.ln_hh.bias if layer_norm else cell.bias_hh
    if bias_ih is None:
        raise RnnkitError("this cell was built with bias=False, so its gates have no bias to set.")
    with torch.no_grad():
        bias_ih[keep] = bias
        bias_hh[keep] = 0.0
    return cell


def gradient_norms(cell: RecurrentCell, x: Tensor, *, seed: int = 0) -> np.ndarray:
    r""":math:`\|\partial \ell / \partial h_t\|` for :math:`t = 1 \dots L`, averaged over the batch.

    Runs the reference loop of :func:`rnnkit.unroll` (``project`` once, then ``step``) on a float64 copy of
    ``cell`` in eval mode, keeping every :math:`h_t`'s gradient. :math:`\ell = w^\top h_L`, ``w`` a random
    unit vector drawn from ``seed``.

    Shapes: x ``(L, N, H_in)`` -> ``(L,)``.
    """
    if x.dim() != 3 or x.shape[-1] != cell.input_size:
        raise RnnkitError(f"x must have shape (time, batch, {cell.input_size}) for this cell, got {tuple(x.shape)}.")
    cell = copy.deepcopy(cell).double().eval()
    x = x.detach().double()
    xp = cell.project(x)  # (L, N, G*H)
    state = cell.init_state(x.shape[1], device=x.device, dtype=x.dtype)
    hidden = []
    for t in range(x.shape[0]):
        h, state = cell.step(xp[t], state)
        h.retain_grad()  # dl/dh_t: every path from h_t to the loss, through all later steps
        hidden.append(h)
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(cell.output_size, generator=generator, dtype=x.dtype)
    loss = (hidden[-1] @ (w / w.norm()).to(x.device)).sum()
    loss.backward()
    return np.array([h.grad.norm(dim=-1).mean().item() for h in hidden])


def compare_cells(
    x: Tensor, hidden_size: int, *, gate_bias: float | None = 3.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """Gradient norms of untrained RNN, LSTM and GRU cells (torch's initialisation, seeded) on the same input;
    with ``gate_bias`` also an LSTM and a GRU whose forget / update gates start open (:func:`open_gates`).

    Shapes: x ``(L, N, H_in)``; each value ``(L,)``.
    """
    norms = {}
    for name, cell_class in CELLS.items():
        torch.manual_seed(seed)
        norms[name] = gradient_norms(cell_class(x.shape[-1], hidden_size), x, seed=seed)
    if gate_bias is not None:
        for name, label in (("lstm", "forget"), ("gru", "update")):
            torch.manual_seed(seed)
            cell = open_gates(CELLS[name](x.shape[-1], hidden_size), gate_bias)
            norms[f"{name}, {label} bias {gate_bias:g}"] = gradient_norms(cell, x, seed=seed)
    return norms


def decay(norms: np.ndarray, span: int) -> float:
    """How much of the gradient at the last step is left ``span`` steps earlier: ``norms[-1-span] / norms[-1]``."""
    if span >= len(norms):
        raise RnnkitError(f"span {span} needs at least {span + 1} steps, got {len(norms)}.")
    return float(norms[-1 - span] / norms[-1])


def gradient_flow_plot(norms: dict[str, np.ndarray], out: Path | str, *, title: str = "") -> Figure:
    r"""Each curve's :math:`\|\partial \ell / \partial h_t\|` relative to its value at the last step, log scale."""
    figure, axis = new_figure(7, 4.2)
    styles = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "trained": "black"}
    for name, values in norms.items():
        kind = name.split(",")[0].split(" ")[0]
        relative = np.maximum(np.asarray(values) / values[-1], 1e-300)  # log scale: keep exact zeros drawable
        axis.semilogy(
            np.arange(1, len(values) + 1),
            relative,
            label=name,
            color=styles.get(kind),
            linestyle="--" if "bias" in name else "-",
        )
    axis.set_xlabel("time step t (the loss reads the last step)")
    axis.set_ylabel("‖∂loss/∂h_t‖ relative to the last step")
    axis.set_title(title or "gradient flow back through time")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return save(figure, out)
