"""Cells against torch.nn's cells and hand-written equations; gradcheck in float64."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

import rnnkit
from rnnkit import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, RNNCell, RnnkitError

BATCH, IN, HIDDEN = 3, 5, 6

TORCH_TWINS = [
    (lambda: RNNCell(IN, HIDDEN), lambda: nn.RNNCell(IN, HIDDEN)),
    (lambda: RNNCell(IN, HIDDEN, nonlinearity="relu"), lambda: nn.RNNCell(IN, HIDDEN, nonlinearity="relu")),
    (lambda: RNNCell(IN, HIDDEN, bias=False), lambda: nn.RNNCell(IN, HIDDEN, bias=False)),
    (lambda: LSTMCell(IN, HIDDEN), lambda: nn.LSTMCell(IN, HIDDEN)),
    (lambda: LSTMCell(IN, HIDDEN, bias=False), lambda: nn.LSTMCell(IN, HIDDEN, bias=False)),
    (lambda: GRUCell(IN, HIDDEN), lambda: nn.GRUCell(IN, HIDDEN)),
    (lambda: GRUCell(IN, HIDDEN, bias=False), lambda: nn.GRUCell(IN, HIDDEN, bias=False)),
]


@pytest.mark.parametrize(("make_ours", "make_torch"), TORCH_TWINS)
def test_cell_matches_torch_cell_in_values_and_gradients(make_ours, make_torch):
    ours, ref = make_ours(), make_torch()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(BATCH, IN, requires_grad=True)
    state = ours.init_state(BATCH)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    out_ours, out_ref = ours(x, state), ref(x, state)
    assert_close(out_ours, out_ref)
    flat = lambda o: torch.cat([t.flatten() for t in (o if isinstance(o, tuple) else (o,))])  # noqa: E731
    (grad_ours,) = torch.autograd.grad(flat(out_ours).sum(), x)
    (grad_ref,) = torch.autograd.grad(flat(out_ref).sum(), x)
    assert_close(grad_ours, grad_ref)


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: RNNCell(IN, HIDDEN),
        lambda: RNNCell(IN, HIDDEN, nonlinearity="relu"),
        lambda: LSTMCell(IN, HIDDEN),
        lambda: LSTMCell(IN, HIDDEN, proj_size=2),
        lambda: GRUCell(IN, HIDDEN),
        lambda: LayerNormLSTMCell(IN, HIDDEN),
        lambda: LayerNormLSTMCell(IN, HIDDEN, proj_size=3),
        lambda: LayerNormGRUCell(IN, HIDDEN),
    ],
    ids=["rnn-tanh", "rnn-relu", "lstm", "lstm-proj", "gru", "ln-lstm", "ln-lstm-proj", "ln-gru"],
)
def test_gradcheck_in_float64(make_cell):
    cell = make_cell().double()
    if isinstance(cell, LayerNormLSTMCell | LayerNormGRUCell):
        # move the LayerNorm parameters off their 1/0 start so their gradients are exercised
        for p in cell.parameters():
            p.data.uniform_(-0.5, 1.5)
    x = torch.randn(BATCH, IN, dtype=torch.float64, requires_grad=True)
    state = cell.init_state(BATCH)
    parts = state if isinstance(state, tuple) else (state,)
    parts = tuple(torch.randn_like(s).requires_grad_() for s in parts)
    params = tuple(cell.parameters())

    def one_step(x, *rest):
        state = rest[: len(parts)]
        state = state if len(state) > 1 else state[0]
        h, new_state = cell.step(cell.project(x), state)
        return (h, *new_state) if isinstance(new_state, tuple) else (h, new_state)

    assert torch.autograd.gradcheck(one_step, (x, *parts))
    # weights: gradcheck through functional_call so every parameter is an input
    names = [n for n, _ in cell.named_parameters()]

    def by_weights(*weights):
        return torch.func.functional_call(cell, dict(zip(names, weights, strict=True)), (x.detach(), state))

    assert torch.autograd.gradcheck(by_weights, tuple(p.detach().requires_grad_() for p in params))


def test_layer_norm_lstm_follows_ba_et_al_equations():
    cell = LayerNormLSTMCell(IN, HIDDEN)
    for p in cell.parameters():
        p.data.uniform_(-1, 1)
    x, h, c = torch.randn(BATCH, IN), torch.randn(BATCH, HIDDEN), torch.randn(BATCH, HIDDEN)
    ln = lambda v, m: F.layer_norm(v, v.shape[-1:], m.weight, m.bias)  # noqa: E731
    gates = ln(x @ cell.weight_ih.T, cell.ln_ih) + ln(h @ cell.weight_hh.T, cell.ln_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(ln(c_ref, cell.ln_c))
    h_new, c_new = cell(x, (h, c))
    assert_close(h_new, h_ref)
    assert_close(c_new, c_ref)


def test_layer_norm_gru_follows_its_equations():
    cell = LayerNormGRUCell(IN, HIDDEN)
    for p in cell.parameters():
        p.data.uniform_(-1, 1)
    x, h = torch.randn(BATCH, IN), torch.randn(BATCH, HIDDEN)
    ln = lambda v, m: F.layer_norm(v, v.shape[-1:], m.weight, m.bias)  # noqa: E731
    x_r, x_z, x_n = ln(x @ cell.weight_ih.T, cell.ln_ih).chunk(3, -1)
    h_r, h_z, h_n = ln(h @ cell.weight_hh.T, cell.ln_hh).chunk(3, -1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    assert_close(cell(x, h), (1 - z) * n + z * h)


def test_gru_reset_gate_scales_the_hidden_product_as_its_docstring_says():
    # torch.nn's form, r * (W_hn h + b_hn), not Cho et al.'s W_hn (r * h): the docstring once said "inside"
    cell = GRUCell(IN, HIDDEN).double()
    x, h = torch.randn(BATCH, IN, dtype=torch.float64), torch.randn(BATCH, HIDDEN, dtype=torch.float64)
    w_r, w_z, w_n = cell.weight_hh.chunk(3)
    b_r, b_z, b_n = cell.bias_hh.chunk(3)
    x_r, x_z, x_n = cell.project(x).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h @ w_r.T + b_r), torch.sigmoid(x_z + h @ w_z.T + b_z)
    after = (1 - z) * torch.tanh(x_n + r * (h @ w_n.T + b_n)) + z * h
    inside = (1 - z) * torch.tanh(x_n + (r * h) @ w_n.T + b_n) + z * h
    assert_close(cell(x, h), after, rtol=0, atol=1e-12)
    assert (cell(x, h) - inside).abs().max() > 1e-3
    doc = " ".join(GRUCell.__doc__.split())
    assert "inside the product)" not in doc
    assert r"r \odot (W_{hn} h + b_{hn})" in doc and "after the product" in doc


@pytest.mark.parametrize("cls", [LayerNormLSTMCell, LayerNormGRUCell])
def test_layer_norm_cells_document_their_bias_handling_on_the_cells_page(cls):
    # docs/cells.md renders these classes' own docstrings (not _LayerNormCell's), so each must say that
    # bias_ih/bias_hh are absent and the LayerNorm offsets are the biases, as they are
    with_bias, without = cls(IN, HIDDEN), cls(IN, HIDDEN, bias=False)
    assert with_bias.bias_ih is None and with_bias.bias_hh is None
    offsets = [n for n, _ in with_bias.named_parameters() if n.endswith(".bias")]
    assert offsets and not any(n.endswith(".bias") for n, _ in without.named_parameters())
    doc = " ".join(cls.__doc__.split())
    assert "no ``bias_ih``/``bias_hh``" in doc and "``bias=False`` drops them" in doc
    assert all(f"``{n}``" in doc for n in offsets)


def test_initialisation_is_uniform_within_torch_bound():
    cell = LSTMCell(IN, 100)
    bound = 1 / math.sqrt(100)
    for p in cell.parameters():
        assert p.abs().max() <= bound
        assert p.abs().max() > 0.9 * bound  # spread over the whole interval, not a narrow init


def test_project_is_one_product_over_all_steps():
    cell = GRUCell(IN, HIDDEN)
    x = torch.randn(7, BATCH, IN)
    assert_close(cell.project(x), torch.stack([cell.project(x_t) for x_t in x]))


def test_projected_lstm_state_shapes():
    cell = LSTMCell(IN, HIDDEN, proj_size=2)
    h, c = cell.init_state(BATCH)
    assert h.shape == (BATCH, 2) and c.shape == (BATCH, HIDDEN)
    assert cell.output_size == 2 and cell.weight_hr.shape == (2, HIDDEN)


@pytest.mark.parametrize("proj_size", [-1, HIDDEN, HIDDEN + 3])
def test_bad_proj_size_is_refused(proj_size):
    with pytest.raises(RnnkitError, match="proj_size"):
        LSTMCell(IN, HIDDEN, proj_size=proj_size)


def test_unknown_nonlinearity_is_refused():
    with pytest.raises(RnnkitError, match="nonlinearity 'sigmoid'"):
        RNNCell(IN, HIDDEN, nonlinearity="sigmoid")


def test_cell_without_equations_or_step_says_so():
    class Empty(rnnkit.RecurrentCell):
        pass

    with pytest.raises(NotImplementedError, match="equations"):
        Empty(IN, HIDDEN).step(torch.randn(BATCH, HIDDEN), torch.zeros(BATCH, HIDDEN))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_cells_follow_dtype(dtype):
    cell = GRUCell(IN, HIDDEN, dtype=dtype)
    h = cell(torch.randn(BATCH, IN, dtype=dtype))
    assert h.dtype == dtype


@pytest.mark.parametrize(("make_ours", "make_torch"), TORCH_TWINS)
def test_unbatched_step_matches_torch_cell(make_ours, make_torch):
    ours, ref = make_ours(), make_torch()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(IN)
    assert_close(ours(x), ref(x))  # zero state: one (H,) state, not IN broadcast copies
    state = ref(torch.randn(IN))
    assert_close(ours(x, state), ref(x, state))


def test_a_sequence_given_to_a_cell_is_refused():
    with pytest.raises(RnnkitError, match=r"rnnkit\.unroll"):
        GRUCell(IN, HIDDEN)(torch.randn(4, BATCH, IN))
