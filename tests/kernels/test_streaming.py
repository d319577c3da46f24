"""layer.step through rnnkit.kernels.streaming: the native whole-stack step gives the cells' numbers."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.kernels import native, streaming

LAYERS = {
    "rnn_tanh": lambda **kw: rnnkit.RNN(5, 6, **kw),
    "rnn_relu": lambda **kw: rnnkit.RNN(5, 6, nonlinearity="relu", **kw),
    "gru": lambda **kw: rnnkit.GRU(5, 6, **kw),
    "lstm": lambda **kw: rnnkit.LSTM(5, 6, **kw),
}


@pytest.mark.skipif(native.load() is None, reason="native loops not built")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", LAYERS)
def test_native_step_matches_cells(kind, bias):
    layer = LAYERS[kind](num_layers=2, bias=bias).eval()
    x_t = torch.randn(3, 5)
    state = layer.initial_state(3)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    with torch.no_grad():
        assert streaming._native_for(layer, x_t, state) is not None
        expected = streaming._step_cells(layer, x_t, state)
        actual = layer.step(x_t, state)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(native.load() is None, reason="native loops not built")
@pytest.mark.parametrize("kind", LAYERS)
def test_native_step_with_saturated_gates_matches_cells(kind):
    layer = LAYERS[kind]().eval()
    x_t = 1e4 * torch.randn(2, 5)  # pre-activations past exp's fp32 range
    state = layer.initial_state(2)
    with torch.no_grad():
        expected = streaming._step_cells(layer, x_t, state)
        actual = layer.step(x_t, state)
    torch.testing.assert_close(actual, expected)


@pytest.mark.skipif(native.load() is None, reason="native loops not built")
@pytest.mark.parametrize("kind", LAYERS)
def test_native_step_with_zoneout_at_eval_is_the_expectation(kind):
    p = 0.3
    layer = LAYERS[kind](num_layers=2, zoneout=p).eval()
    x_t = torch.randn(3, 5)
    state = layer.initial_state(3)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    parts = (state,) if isinstance(state, torch.Tensor) else state
    with torch.no_grad():
        assert streaming._native_for(layer, x_t, state) is not None
        y, new_state = layer.step(x_t, state)
        # each layer: the cell's step h~ from the layer below's blended h, then h = p h_prev + (1 - p) h~ (c alike)
        expected, below = [], x_t
        for index, cell in enumerate(layer.cells):
            old = tuple(s[index] for s in parts)
            fresh = cell(below, old if len(old) > 1 else old[0])
            fresh = (fresh,) if isinstance(fresh, torch.Tensor) else fresh
            expected.append(tuple(p * o + (1 - p) * f for o, f in zip(old, fresh, strict=True)))
            below = expected[-1][0]
    expected_state = tuple(torch.stack(part) for part in zip(*expected, strict=True))
    torch.testing.assert_close(y, below, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(new_state, expected_state if len(parts) > 1 else expected_state[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("zoneout", [0.0, 0.3])
@pytest.mark.parametrize("kind", LAYERS)
def test_steps_continue_a_forward_and_reproduce_it(kind, zoneout):
    layer = LAYERS[kind](num_layers=2, zoneout=zoneout).eval()
    x = torch.randn(4, 2, 5)
    with torch.no_grad():
        output, _ = layer(x)
        _, state = layer(x[:2])
        steps = [layer.step(x_t, state) for x_t in x[2:]]
        y3, state = layer.step(x[2], state)
        y4, _ = layer.step(x[3], state)
    torch.testing.assert_close(torch.stack([y3, y4]), output[2:], atol=1e-6, rtol=1e-5)
    assert len(steps) == 2


def test_step_reads_replaced_weights_and_cells():
    """The step plan kept on the layer must follow what the layer holds now, not what it held."""
    layer = rnnkit.GRU(5, 6, num_layers=2).eval()
    x_t, state = torch.randn(3, 5), torch.randn(2, 3, 6)
    with torch.no_grad():
        layer.step(x_t, state)
        layer.cells[0].weight_hh = torch.nn.Parameter(torch.randn(18, 6))
        layer.cells[1] = rnnkit.GRU(6, 6).cells[0]
        expected = streaming._step_cells(layer, x_t, state)
        actual = layer.step(x_t, state)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)


def test_step_with_autograd_or_noise_uses_the_cells():
    layer = rnnkit.LSTM(5, 6, num_layers=2, dropout=0.5, zoneout=0.2)
    x_t = torch.randn(3, 5)
    assert streaming._native_for(layer, x_t, layer.initial_state(3)) is None  # training noise
    layer.eval()
    assert streaming._native_for(layer, x_t, layer.initial_state(3)) is None  # parameters need gradients
    y, _ = layer.step(x_t)
    y.sum().backward()
    assert layer.cells[0].weight_ih.grad is not None


def test_layer_norm_step_uses_the_cells():
    layer = rnnkit.LSTM(5, 6, layer_norm=True).eval()
    x_t = torch.randn(3, 5)
    with torch.no_grad():
        assert streaming._native_for(layer, x_t, layer.initial_state(3)) is None
        y, (h, c) = layer.step(x_t)
    assert y.shape == (3, 6) and h.shape == c.shape == (1, 3, 6)
