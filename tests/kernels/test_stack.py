"""rnnkit's fused loops (native and pure-PyTorch) give the numbers of the reference unroll path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.kernels import gemm, loops, native, packed_steps, recurrence, stack

NATIVE = native.load()
IMPLEMENTATIONS = [
    pytest.param(NATIVE, id="native", marks=pytest.mark.skipif(NATIVE is None, reason="no build")),
    pytest.param(loops, id="python"),
]
KINDS = {
    "rnn_tanh": lambda **kw: rnnkit.RNN(5, 6, **kw),
    "rnn_relu": lambda **kw: rnnkit.RNN(5, 6, nonlinearity="relu", **kw),
    "gru": lambda **kw: rnnkit.GRU(5, 6, **kw),
    "lstm": lambda **kw: rnnkit.LSTM(5, 6, **kw),
    "layer_norm_lstm": lambda **kw: rnnkit.LSTM(5, 6, layer_norm=True, **kw),
}
CONFIGS = {
    "plain": ({}, False, False),
    "no_bias": ({"bias": False}, False, True),
    "lengths_bidirectional_stacked": ({"num_layers": 2, "bidirectional": True}, True, True),
    "training_noise": (
        {"num_layers": 2, "bidirectional": True, "dropout": 0.3, "recurrent_dropout": 0.4, "zoneout": 0.3},
        True,
        True,
    ),
}


def _inputs(layer, dtype, with_lengths, with_state):
    x = torch.randn(7, 3, 5, dtype=dtype, requires_grad=True)
    hx = None
    if with_state:
        shape = (layer.num_layers * layer.num_directions, 3, 6)
        hx = torch.randn(shape, dtype=dtype, requires_grad=True)
        if isinstance(layer, rnnkit.LSTM):
            hx = (hx, torch.randn(shape, dtype=dtype, requires_grad=True))
    lengths = torch.tensor([4, 7, 1]) if with_lengths else None
    return x, hx, lengths


def _run_and_grad(run, layer, x, hx):
    torch.manual_seed(1)  # the same training noise on both paths
    output, h_n = run()
    h_n = (h_n,) if isinstance(h_n, torch.Tensor) else h_n
    # weight the final states unevenly so a wrong state gradient shows
    loss = output.pow(2).sum() + sum((s * torch.linspace(-1, 1, s.shape[-1], dtype=s.dtype)).sum() for s in h_n)
    states = [] if hx is None else ([hx] if isinstance(hx, torch.Tensor) else list(hx))
    return output, h_n, torch.autograd.grad(loss, [x, *layer.parameters(), *states])


def _tolerance(kind: str, dtype: torch.dtype) -> dict:
    if dtype == torch.float64:
        return {"atol": 1e-10, "rtol": 1e-10}
    # LayerNorm's backward scales rounding by 1/std of tiny rows: here the fp32 unroll itself is 1e-4 away from
    # the fp64 result, so fp32 can only agree to that; the fp64 case holds the equations to 1e-10
    return {"atol": 1e-4, "rtol": 1e-4} if kind == "layer_norm_lstm" else {"atol": 1e-5, "rtol": 1e-5}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_matches_unroll_in_values_and_gradients(kind, config, implementation, dtype):
    options, with_lengths, with_state = CONFIGS[config]
    layer = KINDS[kind](**options, dtype=dtype)
    x, hx, lengths = _inputs(layer, dtype, with_lengths, with_state)
    expected = _run_and_grad(lambda: layer._unroll_layers(x, hx, lengths, False)[:2], layer, x, hx)
    actual = _run_and_grad(lambda: stack.run(layer, x, hx, lengths, implementation), layer, x, hx)
    torch.testing.assert_close(actual, expected, **_tolerance(kind, dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_zoneout_at_eval_matches_unroll_in_values_and_gradients(kind, implementation, dtype):
    # zoneout's expectation, h = p h_prev + (1 - p) h~: one 0-dim keep weight through the loops, whose backward
    # gives p g to the old state and (1 - p) g to the new one
    layer = KINDS[kind](num_layers=2, bidirectional=True, zoneout=0.3, dtype=dtype).eval()
    x, hx, lengths = _inputs(layer, dtype, True, True)
    expected = _run_and_grad(lambda: layer._unroll_layers(x, hx, lengths, False)[:2], layer, x, hx)
    actual = _run_and_grad(lambda: stack.run(layer, x, hx, lengths, implementation), layer, x, hx)
    torch.testing.assert_close(actual, expected, **_tolerance(kind, dtype))


def test_binary_keep_weights_select_exactly_in_values_and_gradients():
    # the PyTorch loops blend d old + (1 - d) new; a training mask's 0 and 1 must give the select's numbers
    torch.manual_seed(0)
    old, new = 1e3 * torch.randn(4, 33), 1e-3 * torch.randn(4, 33)
    keep = (torch.rand(4, 33) < 0.5).to(old.dtype)
    kept = keep != 0
    assert torch.equal(packed_steps.zoneout(keep, old, new), torch.where(kept, old, new))
    grad = torch.randn(4, 33)
    to_new, to_old = packed_steps.split_grad(keep, grad)
    assert torch.equal(to_new, grad.masked_fill(kept, 0)) and torch.equal(to_old, grad.masked_fill(~kept, 0))


def _native_fp32_matches_unroll(kind: str, config: str) -> None:
    options, with_lengths, with_state = CONFIGS[config]
    layer = KINDS[kind](**options)
    x, hx, lengths = _inputs(layer, torch.float32, with_lengths, with_state)
    expected = _run_and_grad(lambda: layer._unroll_layers(x, hx, lengths, False)[:2], layer, x, hx)
    actual = _run_and_grad(lambda: stack.run(layer, x, hx, lengths, NATIVE), layer, x, hx)
    torch.testing.assert_close(actual, expected, **_tolerance(kind, torch.float32))


@pytest.mark.skipif(NATIVE is None or gemm.onednn_linear() is None, reason="no native build or no oneDNN")
@pytest.mark.parametrize("config", ["plain", "lengths_bidirectional_stacked"])
@pytest.mark.parametrize("kind", KINDS)
def test_fused_matches_unroll_with_the_large_product_paths(kind, config, monkeypatch):
    # rnnkit.kernels.gemm's size rules lowered to zero: these small products take the paths of large ones (oneDNN's
    # linear, and its matmul for the weight gradients, a transposed view, where oneDNN has the wider vectors)
    monkeypatch.setattr(gemm, "SMALL_PRODUCT", 0)
    monkeypatch.setattr(gemm, "LARGE_WEIGHT_GRADIENT", 0)
    _native_fp32_matches_unroll(kind, config)


@pytest.mark.skipif(NATIVE is None, reason="no native build")
@pytest.mark.parametrize("in_steps", [True, False], ids=["input_product_in_steps", "input_product_apart"])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm"])
def test_fused_matches_unroll_with_one_joint_weight_gradient(kind, config, in_steps, monkeypatch):
    # taken on every machine here, not only where oneDNN has the wider vectors: [dW_ih dW_hh] = dXP^T [X H_prev];
    # an LSTM's input product inside its steps or apart (an RNN's is always apart)
    monkeypatch.setattr(recurrence, "joint_weight_gradient", lambda loops, kind, x, cell: True)
    monkeypatch.setattr(recurrence, "INPUT_WEIGHT_IN_STEPS", 1 << 30 if in_steps else -1)
    _native_fp32_matches_unroll(kind, config)


def test_input_product_runs_in_the_steps_for_an_lstm_with_a_small_input_weight():
    small = torch.zeros(4 * 128, 64)
    assert recurrence.input_product_in_steps("lstm", small, 2)
    assert not recurrence.input_product_in_steps("rnn_tanh", small, 2)  # the RNN loop has no such form
    assert not recurrence.input_product_in_steps("lstm", torch.zeros(4 * 650, 650), 2)  # 6.8 MB: read at every step
    assert not recurrence.input_product_in_steps("lstm", small, 1)  # one row would read all of W_ih at every step


@pytest.mark.skipif(NATIVE is None, reason="no native build")
def test_native_lstm_loops_with_the_input_product_in_their_steps_equal_the_product_apart():
    torch.manual_seed(0)
    steps, batch, inputs, hidden = 5, 4, 7, 9
    x, w_ih = torch.randn(steps * batch, inputs), torch.randn(4 * hidden, inputs)
    w_hh, bias = torch.randn(4 * hidden, hidden), torch.randn(4 * hidden)
    h0, c0 = torch.randn(batch, hidden), torch.randn(batch, hidden)
    sizes = [batch, batch, 3, 2, 1]  # shrinking batch (packed lengths)
    x = x[: sum(sizes)]
    apart = NATIVE.lstm_forward(x @ w_ih.t(), h0, c0, w_hh, bias, sizes, None, None, None)
    in_steps = NATIVE.lstm_forward(x.new_empty(0), h0, c0, w_hh, bias, sizes, None, None, None, x=x, w_ih=w_ih)
    twin = loops.lstm_forward(x.new_empty(0), h0, c0, w_hh, bias, sizes, None, None, None, x=x, w_ih=w_ih)
    for a, b, c in zip(apart, in_steps, twin, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-5)
    _, _, _, act, cs = apart
    grads = (torch.randn(sum(sizes), hidden), torch.randn(batch, hidden), torch.randn(batch, hidden))
    dxp, dh0, dc0 = NATIVE.lstm_backward(*grads, c0, cs, act, w_hh, sizes, None, None, None)
    expected = (dxp, dh0, dc0, dxp @ w_ih)  # and the input gradient, formed step by step
    in_steps = NATIVE.lstm_backward(*grads, c0, cs, act, w_hh, sizes, None, None, None, w_ih=w_ih)
    twin = loops.lstm_backward(*grads, c0, cs, act, w_hh, sizes, None, None, None, w_ih=w_ih)
    for a, b, c in zip(expected, in_steps, twin, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(NATIVE is None, reason="no native build")
@pytest.mark.parametrize("frozen", ["weight_ih", "weight_hh"])
def test_joint_weight_gradient_with_one_weight_frozen(frozen, monkeypatch):
    monkeypatch.setattr(recurrence, "joint_weight_gradient", lambda loops, kind, x, cell: True)
    layer = KINDS["lstm"]()
    getattr(layer.cells[0], frozen).requires_grad_(False)
    x, hx, _ = _inputs(layer, torch.float32, False, True)
    trained = [x, *(p for p in layer.parameters() if p.requires_grad), *hx]

    def grads(run):
        output, (h_n, c_n) = run()
        return torch.autograd.grad(output.pow(2).sum() + h_n.sum() + 2 * c_n.sum(), trained)

    expected = grads(lambda: layer._unroll_layers(x, hx, None, False)[:2])
    torch.testing.assert_close(grads(lambda: stack.run(layer, x, hx, None, NATIVE)), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(NATIVE is None, reason="no native build")
def test_joint_weight_gradient_is_taken_where_onednn_has_the_wider_vectors(monkeypatch):
    lstm, gru = rnnkit.LSTM(5, 6).cells[0], rnnkit.GRU(5, 6).cells[0]
    x = torch.randn(21, 5)
    assert not recurrence.joint_weight_gradient(NATIVE, "lstm", x, lstm)  # too small: oneDNN's call costs more
    monkeypatch.setattr(recurrence, "JOINT_PRODUCT", 21 * 11 * 24)
    wider = NATIVE.onednn_vectors_wider() and gemm.applies(x)
    assert recurrence.joint_weight_gradient(NATIVE, "lstm", x, lstm) == wider
    assert not recurrence.joint_weight_gradient(NATIVE, "rnn_tanh", x, rnnkit.RNN(5, 6).cells[0])  # no gain there
    assert not recurrence.joint_weight_gradient(NATIVE, "gru", x, gru)  # its dGH is not its dXP
    assert not recurrence.joint_weight_gradient(loops, "lstm", x, lstm)  # the PyTorch twin has no oneDNN matmul
    assert not recurrence.joint_weight_gradient(NATIVE, "lstm", x.double(), lstm.double())
    monkeypatch.setattr(gemm, "LARGE_WEIGHT_GRADIENT", 0)  # products this large stay apart
    assert not recurrence.joint_weight_gradient(NATIVE, "lstm", x, lstm)


class _Fused(nn.Module):
    """The fused path as a module, so gradcheck can pass every weight through functional_call."""

    def __init__(self, layer, implementation):
        super().__init__()
        self.layer, self.implementation = layer, implementation

    def forward(self, x, hx, lengths):
        output, h_n = stack.run(self.layer, x, hx, lengths, self.implementation)
        return (output, *((h_n,) if isinstance(h_n, torch.Tensor) else h_n))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_backward_passes_gradcheck(kind, implementation):
    _gradcheck(kind, implementation)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_fused_backward_at_eval_passes_gradcheck(kind, implementation):
    _gradcheck(kind, implementation, training=False)  # zoneout's expectation, no noise


@pytest.mark.skipif(NATIVE is None, reason="no native build")
@pytest.mark.parametrize("in_steps", [True, False], ids=["input_product_in_steps", "input_product_apart"])
def test_joint_weight_gradient_passes_gradcheck(in_steps, monkeypatch):
    monkeypatch.setattr(recurrence, "joint_weight_gradient", lambda loops, kind, x, cell: True)
    monkeypatch.setattr(recurrence, "INPUT_WEIGHT_IN_STEPS", 1 << 30 if in_steps else -1)
    _gradcheck("lstm", NATIVE)


def _gradcheck(kind, implementation, training=True):
    layer = KINDS[kind](bidirectional=True, zoneout=0.3, recurrent_dropout=0.3, dtype=torch.float64)
    layer.train(training)
    x, hx, lengths = _inputs(layer, torch.float64, True, True)
    x, lengths = x[:5, :2].detach().requires_grad_(), torch.tensor([3, 5])  # smaller: gradcheck is O(inputs)
    hx = tuple(s[:, :2].detach().requires_grad_() for s in ((hx,) if isinstance(hx, torch.Tensor) else hx))
    hx = hx[0] if len(hx) == 1 else hx
    module = _Fused(layer, implementation)
    names = [name for name, _ in module.named_parameters()]
    weights = [w.detach().requires_grad_() for w in module.parameters()]
    states = [hx] if isinstance(hx, torch.Tensor) else list(hx)

    def run(x, *tensors):
        torch.manual_seed(2)  # the same noise at every evaluation
        params = dict(zip(names, tensors[: len(names)], strict=True))
        state = tensors[len(names)] if len(states) == 1 else tuple(tensors[len(names) :])
        return torch.func.functional_call(module, params, (x, state, lengths))

    assert torch.autograd.gradcheck(run, (x, *weights, *states), fast_mode=True)


def test_padded_steps_output_zero_and_final_state_is_last_valid_step():
    layer = rnnkit.GRU(5, 6, bidirectional=True).eval()
    x, _, lengths = _inputs(layer, torch.float32, True, False)
    output, h_n = stack.run(layer, x, None, lengths, loops)
    assert output[4:, 0].abs().sum() == 0 and output[1:, 2].abs().sum() == 0
    torch.testing.assert_close(h_n[0, 0], output[3, 0, :6])  # forward: state at step lengths-1
    torch.testing.assert_close(h_n[1, 0], output[0, 0, 6:])  # reverse: its last step is step 0
