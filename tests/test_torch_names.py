"""torch.nn's flat parameter names on rnnkit's layers: functional_call, assignment, parametrized state_dicts, and
parametrizations (on the cells' names), against torch.nn's layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm
from torch.testing import assert_close

import rnnkit
from rnnkit import RnnkitError
from rnnkit.kernels import transforms

KINDS = {"rnn": (rnnkit.RNN, nn.RNN), "gru": (rnnkit.GRU, nn.GRU), "lstm": (rnnkit.LSTM, nn.LSTM)}
TIGHT = {"rtol": 1e-6, "atol": 1e-6}


def _pair(kind: str, bidirectional: bool = True):
    """torch.nn's layer and rnnkit's twin, fp64, two layers."""
    torch.manual_seed(0)
    ours_class, torch_class = KINDS[kind]
    reference = torch_class(3, 4, num_layers=2, bidirectional=bidirectional, dtype=torch.float64)
    return reference, ours_class.from_torch(reference)


def _grads_by_torch_name(module: nn.Module) -> dict[str, torch.Tensor]:
    """Each parameter's gradient under its state_dict key (torch.nn's name on both)."""
    return {k: v.grad for k, v in module.state_dict(keep_vars=True).items() if isinstance(v, nn.Parameter)}


def _intact(layer, reference) -> None:
    """The layer computes with its own parameters again: nothing stands in for them."""
    assert not layer._stand_ins and all(isinstance(p, nn.Parameter) for p in layer.parameters())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    assert_close(layer(x), reference(x), **TIGHT)


@pytest.mark.parametrize("kind", KINDS)
def test_functional_call_with_torch_nns_names_gives_torch_nns_outputs_and_gradients(kind):
    reference, layer = _pair(kind)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    params = {name: torch.randn_like(p) for name, p in reference.named_parameters()}

    def loss(module, params):
        output, _ = functional_call(module, params, (x,))
        return output.pow(2).sum()

    assert_close(functional_call(layer, params, (x,)), functional_call(reference, params, (x,)), **TIGHT)
    ours = torch.func.grad(loss, argnums=1)(layer, params)
    assert_close(ours, torch.func.grad(loss, argnums=1)(reference, params), **TIGHT)
    _intact(layer, reference)


def test_functional_call_takes_either_name_and_flat_names_below_a_parent():
    reference, layer = _pair("lstm")
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    weight = torch.randn(16, 4, dtype=torch.float64)
    expected = functional_call(reference, {"weight_hh_l1_reverse": weight}, (x,))
    assert_close(functional_call(layer, {"cells.3.weight_hh": weight}, (x,)), expected, **TIGHT)
    model = nn.Sequential(layer)
    assert_close(functional_call(model, {"0.weight_hh_l1_reverse": weight}, (x,)), expected, **TIGHT)
    _intact(layer, reference)


@pytest.mark.parametrize("flat_first", [True, False], ids=["flat_name_first", "cell_name_first"])
def test_both_names_of_one_weight_are_refused_and_leave_the_layer_intact(flat_first):
    reference, layer = _pair("gru")
    weight = torch.randn(12, 4, dtype=torch.float64)
    names = ["weight_hh_l0", "cells.0.weight_hh"]
    params = {name: weight for name in (names if flat_first else reversed(names))}
    with pytest.raises(RnnkitError, match=r"weight_hh_l0 and cells\.0\.weight_hh name the same weight"):
        functional_call(layer, params, (torch.randn(5, 2, 3, dtype=torch.float64),))
    _intact(layer, reference)


def test_named_parameters_keep_the_cells_names_in_torch_nns_order():
    """Optimizers and checkpoints of optimizer state go by this order; DDP and the trainer by these names."""
    reference, layer = _pair("lstm")
    assert list(dict(layer.named_parameters()))[:2] == ["cells.0.weight_ih", "cells.0.weight_hh"]
    pairs = zip(reference.named_parameters(), layer.parameters(), strict=True)
    assert all(getattr(layer, name) is ours for (name, _), ours in pairs)


def test_load_state_dict_reports_missing_keys_by_torch_nns_names():
    """As the state_dict names them and torch.nn reports them, below a parent too (strict=True's message alike)."""
    reference, layer = _pair("lstm")
    state = reference.state_dict()
    del state["weight_hh_l0_reverse"]
    assert layer.load_state_dict(state, strict=False).missing_keys == ["weight_hh_l0_reverse"]
    parent = nn.Sequential(layer)
    state = {f"0.{key}": value for key, value in state.items() if key != "bias_ih_l0"}
    assert parent.load_state_dict(state, strict=False).missing_keys == ["0.bias_ih_l0", "0.weight_hh_l0_reverse"]
    with pytest.raises(RuntimeError, match=r'Missing key.*"0\.bias_ih_l0", "0\.weight_hh_l0_reverse"'):
        parent.load_state_dict(state)


def test_assigning_a_flat_name_stands_in_or_replaces_as_torch_nn_does():
    reference, layer = _pair("rnn", bidirectional=False)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    layer.eval()
    weight = torch.randn(4, 4, dtype=torch.float64)
    layer.weight_hh_l0 = weight  # a plain tensor: used in place of the cell's parameter, which stays
    assert layer.weight_hh_l0 is weight and isinstance(layer.cells[0].weight_hh, nn.Parameter)
    with torch.no_grad():
        reference.weight_hh_l0.copy_(weight)
    assert_close(layer(x), reference(x), **TIGHT)
    assert_close(layer.step(x[0])[0], reference(x[:1])[0][0], **TIGHT)
    replacement = nn.Parameter(weight.clone())
    layer.weight_hh_l0 = replacement  # a Parameter: the cell's, as torch.nn registers its own
    assert layer.cells[0].weight_hh is replacement and not layer._stand_ins
    del layer.weight_hh_l0
    assert "weight_hh" not in dict(layer.cells[0].named_parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_weight_norm_on_the_cells_name_gives_torch_nns_weight_norm_on_the_flat_name(kind, monkeypatch):
    reference, layer = _pair(kind)
    weight_norm(reference, "weight_hh_l0")
    weight_norm(reference, "weight_ih_l1_reverse")
    weight_norm(layer.cells[0], "weight_hh")  # cells[layer * directions + direction]
    weight_norm(layer.cells[3], "weight_ih")
    assert list(layer.state_dict()) == list(reference.state_dict())
    fused = []
    original = transforms.apply
    monkeypatch.setattr(transforms, "apply", lambda function, *inputs: fused.append(1) or original(function, *inputs))
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    output, reference_output = layer(x)[0], reference(x)[0]
    assert fused  # the kernels read the parametrized weights
    assert_close(output, reference_output, **TIGHT)
    output.pow(2).sum().backward()
    reference_output.pow(2).sum().backward()
    assert_close(_grads_by_torch_name(layer), _grads_by_torch_name(reference), **TIGHT)
    # and the parametrized state_dicts load both ways
    fresh = KINDS[kind][0](3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    weight_norm(fresh.cells[0], "weight_hh")
    weight_norm(fresh.cells[3], "weight_ih")
    fresh.load_state_dict(reference.state_dict())
    reference.load_state_dict(layer.state_dict())
    assert_close(fresh(x), reference(x), **TIGHT)


def test_spectral_norm_on_the_cells_name_gives_torch_nns():
    """With the parametrization cached per forward: uncached, torch.nn.LSTM reads each flat weight four times a
    forward, and spectral_norm's power iteration runs at every read in training."""
    reference, layer = _pair("lstm")
    spectral_norm(reference, "weight_hh_l1")
    spectral_norm(layer.cells[2], "weight_hh")
    layer.load_state_dict(reference.state_dict())  # its power iteration's vectors
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    for _ in range(3):
        with parametrize.cached():
            assert_close(layer(x), reference(x), **TIGHT)


def test_parametrizing_a_flat_name_is_torchs_error_and_the_cells_name_works():
    """register_parametrization takes only a module's own parameters; a layer's are its cells' (documented)."""
    _, layer = _pair("lstm")
    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a parametrized element with name"):
        weight_norm(layer, "weight_hh_l0")
    weight_norm(layer.cells[0], "weight_hh")
    assert "parametrizations.weight_hh_l0.original0" in layer.state_dict()


def test_functional_call_on_a_parametrized_flat_name_points_to_its_originals():
    _, layer = _pair("lstm")
    weight_norm(layer.cells[0], "weight_hh")
    with pytest.raises(RnnkitError, match=r"cells\.0\.parametrizations\.weight_hh\.original"):
        functional_call(layer, {"weight_hh_l0": torch.randn(16, 4, dtype=torch.float64)}, (torch.randn(5, 2, 3),))
    assert not layer._stand_ins
