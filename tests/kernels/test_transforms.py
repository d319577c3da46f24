"""torch.func through the layers: grad, vjp and jacrev through the fused kernels; vmap, jvp and second derivatives
through the cells; the same numbers as torch.autograd and torch.nn."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

import rnnkit
from rnnkit import RnnkitError
from rnnkit.kernels import gemm, loops, native, stack, transforms

NATIVE = native.load()
IMPLEMENTATIONS = [
    pytest.param(NATIVE, id="native", marks=pytest.mark.skipif(NATIVE is None, reason="no build")),
    pytest.param(loops, id="python"),
]
KINDS = {
    "rnn": (rnnkit.RNN, nn.RNN),
    "gru": (rnnkit.GRU, nn.GRU),
    "lstm": (rnnkit.LSTM, nn.LSTM),
}
TIGHT = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture
def fused_calls(monkeypatch):
    """The kernels' Functions called, by name: proves a result went through the fused path."""
    calls = []
    original = transforms.apply

    def spy(function, *inputs):
        calls.append(function.__name__)
        return original(function, *inputs)

    monkeypatch.setattr(transforms, "apply", spy)
    return calls


class _Fused(nn.Module):
    """A layer's fused path with a chosen loops implementation (the layer picks the native one where built)."""

    def __init__(self, layer, implementation):
        super().__init__()
        self.layer, self.implementation = layer, implementation

    def forward(self, x):
        return stack.run(self.layer, x, None, None, self.implementation)


def _loss(output: torch.Tensor) -> torch.Tensor:
    return (output.pow(2) * torch.linspace(-1, 1, output.shape[-1], dtype=output.dtype)).sum()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", [*KINDS, "layer_norm_lstm"])
def test_func_grad_through_the_fused_kernels_equals_autograd_grad(kind, implementation, fused_calls):
    torch.manual_seed(0)
    make = (lambda **kw: rnnkit.LSTM(5, 6, layer_norm=True, **kw)) if kind == "layer_norm_lstm" else KINDS[kind][0]
    layer = make(**({} if kind == "layer_norm_lstm" else {"input_size": 5, "hidden_size": 6}), num_layers=2,
                 bidirectional=True, dtype=torch.float64)  # fmt: skip
    module = _Fused(layer, implementation)
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    params = {name: p.detach() for name, p in module.named_parameters()}

    def loss(params, x):
        return _loss(functional_call(module, params, (x,))[0])

    by_func = torch.func.grad(loss, argnums=(0, 1))(params, x)
    assert fused_calls  # through the kernels, not around them
    x_leaf = x.clone().requires_grad_()
    by_autograd = torch.autograd.grad(loss(dict(module.named_parameters()), x_leaf), [*module.parameters(), x_leaf])
    assert_close([*by_func[0].values(), by_func[1]], list(by_autograd), **TIGHT)
    reference = torch.autograd.grad(_loss(layer._unroll_layers(x_leaf, None, None, False)[0]), [*layer.parameters()])
    assert_close(list(by_func[0].values()), list(reference), **TIGHT)


@pytest.mark.parametrize("kind", KINDS)
def test_func_grad_of_a_layer_equals_torch_nns(kind, fused_calls):
    """Meta-learning's pattern, functional_call + grad, on the layer as it dispatches, against torch.nn's."""
    torch.manual_seed(0)
    ours_class, torch_class = KINDS[kind]
    reference = torch_class(5, 6, num_layers=2, dtype=torch.float64)
    layer = ours_class.from_torch(reference)
    x = torch.randn(7, 3, 5, dtype=torch.float64)

    def loss(module, params):
        output, _ = functional_call(module, params, (x,))
        return _loss(output)

    ours = torch.func.grad(loss, argnums=1)(layer, {n: p.detach() for n, p in layer.named_parameters()})
    assert fused_calls
    theirs = torch.func.grad(loss, argnums=1)(reference, {n: p.detach() for n, p in reference.named_parameters()})
    by_autograd = torch.autograd.grad(loss(layer, dict(layer.named_parameters())), list(layer.parameters()))
    assert_close(list(ours.values()), list(theirs.values()), **TIGHT)
    assert_close(list(ours.values()), list(by_autograd), **TIGHT)


@pytest.mark.parametrize("kind", KINDS)
def test_vjp_and_jacrev_through_the_fused_kernels_equal_the_reference_jacobian(kind, fused_calls):
    torch.manual_seed(0)
    layer = KINDS[kind][0](3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    jacobian = torch.func.jacrev(lambda x: layer(x)[0])(x)  # vmaps the backward over the output's 40 elements
    assert fused_calls
    expected = torch.autograd.functional.jacobian(lambda x: layer._unroll_layers(x, None, None, False)[0], x)
    assert_close(jacobian, expected, **TIGHT)
    cotangent = torch.randn(5, 2, 4, dtype=torch.float64)
    (by_vjp,) = torch.func.vjp(lambda x: layer(x)[0], x)[1](cotangent)
    assert_close(by_vjp, torch.einsum("abc,abcxyz->xyz", cotangent, expected), **TIGHT)


def test_is_grads_batched_is_refused_with_a_pointer_to_torch_func():
    layer = rnnkit.GRU(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    output = layer(x)[0]
    rows = torch.eye(output.numel(), dtype=torch.float64).view(-1, *output.shape)[:6]
    with pytest.raises(RnnkitError, match=r"is_grads_batched=True .* torch.func.jacrev"):
        torch.autograd.grad(output, x, rows, is_grads_batched=True)


@pytest.mark.parametrize("kind", KINDS)
def test_vmap_jvp_and_second_derivatives_unroll_the_cells(kind, fused_calls):
    torch.manual_seed(0)
    ours_class, torch_class = KINDS[kind]
    reference = torch_class(3, 4, dtype=torch.float64)
    layer = ours_class.from_torch(reference)
    xs = torch.randn(2, 5, 2, 3, dtype=torch.float64)
    assert_close(torch.func.vmap(lambda x: layer(x)[0])(xs), torch.stack([reference(x)[0] for x in xs]), **TIGHT)
    x = xs[0]
    assert_close(torch.func.jacfwd(lambda x: layer(x)[0])(x), torch.func.jacfwd(lambda x: reference(x)[0])(x))
    hessian = torch.func.hessian(lambda x: layer(x)[0].pow(3).sum())(x[:2, :1])
    assert_close(hessian, torch.func.hessian(lambda x: reference(x)[0].pow(3).sum())(x[:2, :1]), **TIGHT)
    assert not fused_calls  # none of these can run the native loops


def test_a_step_under_vmap_runs_the_cells():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, num_layers=2).eval()
    xs = torch.randn(2, 5, 3)
    h, (h_n, c_n) = torch.func.vmap(lambda x: layer.step(x))(xs)
    for index, x in enumerate(xs):
        expected = layer.step(x)
        assert_close((h[index], h_n[index], c_n[index]), (expected[0], *expected[1]))


def test_create_graph_gives_exact_gradients_and_refuses_only_a_second_derivative():
    torch.manual_seed(0)
    reference = nn.LSTM(3, 4, dtype=torch.float64)
    layer = rnnkit.LSTM.from_torch(reference)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    (expected,) = torch.autograd.grad(reference(x)[0].sum(), x)
    assert_close(gradient, expected, **TIGHT)
    with pytest.raises(RnnkitError, match="differentiable once; for second derivatives"):
        gradient.pow(2).sum().backward()
    layer.requires_grad_(False)  # a penalty on the input's gradient alone: still no silent zero
    (gradient,) = torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    with pytest.raises(RnnkitError, match="differentiable once"):
        torch.autograd.grad(gradient.pow(2).sum(), x)


def test_func_grad_through_the_onednn_linear(monkeypatch):
    """gemm's Function (large fp32 products, where oneDNN pays) under torch.func.grad, on F.linear's numbers."""
    monkeypatch.setattr(gemm, "_operator", lambda: lambda x, w, b, *_: torch.nn.functional.linear(x, w, b))
    monkeypatch.setattr(gemm, "SMALL_PRODUCT", 0)
    torch.manual_seed(0)
    x, weight, bias = torch.randn(6, 4, 9), torch.randn(12, 9), torch.randn(12)

    def loss(function, x, weight, bias):
        return function(x, weight, bias).pow(2).sum()

    ours = torch.func.grad(lambda *a: loss(gemm.linear, *a), argnums=(0, 1, 2))(x, weight, bias)
    theirs = torch.func.grad(lambda *a: loss(torch.nn.functional.linear, *a), argnums=(0, 1, 2))(x, weight, bias)
    assert_close(ours, theirs)
