"""Gradient flow: the numbers are BPTT's (checked against autograd's Jacobian), a plain RNN's vanish over 100
steps while an LSTM whose forget gate is open keeps them, and the plot is drawn from them."""

import numpy as np
import pytest
import torch

from rnnkit.cells import GRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from rnnkit.errors import RnnkitError
from rnnkit.viz.gradient_flow import compare_cells, decay, gradient_flow_plot, gradient_norms, open_gates


def test_last_step_gradient_is_the_unit_readout_and_one_step_back_is_its_jacobian():
    torch.manual_seed(0)
    cell = RNNCell(3, 5).double()
    x = torch.randn(4, 1, 3, dtype=torch.float64)
    norms = gradient_norms(cell, x, seed=7)
    w = torch.randn(5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    w = w / w.norm()
    assert norms[-1] == pytest.approx(1.0)  # dl/dh_L = w, a unit vector
    # one step back: dl/dh_{L-1} = J^T w, J the Jacobian of h_L = tanh(W_ih x_L + b + W_hh h_{L-1} + b)
    h = torch.zeros(1, 5, dtype=torch.float64)
    for t in range(3):
        h = cell(x[t], h)
    jacobian = torch.autograd.functional.jacobian(lambda state: cell(x[3], state), h)[0, :, 0, :]  # (5, 5)
    assert norms[-2] == pytest.approx((jacobian.T @ w).norm().item(), rel=1e-9)


def test_plain_rnn_gradient_vanishes_over_100_steps_where_an_open_lstm_keeps_it():
    torch.manual_seed(0)
    x = torch.randn(120, 8, 4)
    norms = compare_cells(x, 32, gate_bias=3.0)
    rnn, lstm_open = decay(norms["rnn"], 100), decay(norms["lstm, forget bias 3"], 100)
    assert rnn < 1e-10  # ten orders of magnitude and more
    assert lstm_open > 1e-2  # less than two
    assert lstm_open / rnn > 1e8
    # at torch's default start (forget gate ~ sigma(0) = 0.5) the LSTM loses it too: the gate is what matters
    assert decay(norms["lstm"], 100) < 1e-10
    assert decay(norms["gru, update bias 3"], 100) > 1e-2


def test_open_gates_sets_forget_and_update_biases_and_refuses_a_plain_rnn():
    lstm = open_gates(LSTMCell(2, 3), 2.0)
    assert torch.equal(lstm.bias_ih[3:6], torch.full((3,), 2.0)) and torch.equal(lstm.bias_hh[3:6], torch.zeros(3))
    gru = open_gates(GRUCell(2, 3), 1.5)
    assert torch.equal(gru.bias_ih[3:6], torch.full((3,), 1.5))
    layer_norm = open_gates(LayerNormLSTMCell(2, 3), 1.0)
    assert torch.equal(layer_norm.ln_ih.bias[3:6], torch.ones(3))
    with pytest.raises(RnnkitError, match="no forget or update gate"):
        open_gates(RNNCell(2, 3), 1.0)


def test_gradient_norms_refuses_a_misshapen_input():
    with pytest.raises(RnnkitError, match=r"shape \(time, batch, 3\)"):
        gradient_norms(RNNCell(3, 4), torch.randn(5, 2))


def test_gradient_flow_plot_is_log_scaled_and_labelled(tmp_path):
    norms = {"rnn": np.logspace(-20, 0, 30), "lstm": np.linspace(0.5, 1, 30)}
    figure = gradient_flow_plot(norms, tmp_path / "flow.png")
    axis = figure.axes[0]
    assert axis.get_yscale() == "log" and "time step" in axis.get_xlabel() and "∂loss/∂h_t" in axis.get_ylabel()
    assert [line.get_label() for line in axis.get_lines()] == ["rnn", "lstm"]
    assert (tmp_path / "flow.png").stat().st_size > 5000
