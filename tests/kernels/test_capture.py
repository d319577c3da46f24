"""Under torch.jit.trace and torch.compile the layers run what those can record: the native loops are C++ calls
they cannot see (rnnkit.kernels.capture)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import rnnkit

TWINS = [(nn.RNN, rnnkit.RNN), (nn.LSTM, rnnkit.LSTM), (nn.GRU, rnnkit.GRU)]


def _twins(make_torch, make_ours, **options):
    torch.manual_seed(0)
    theirs = make_torch(5, 6, **options)
    ours = make_ours(5, 6, **options)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


@pytest.mark.parametrize(("make_torch", "make_ours"), TWINS)
def test_a_traced_layer_gives_torchs_numbers_at_other_batch_and_sequence_sizes(make_torch, make_ours):
    theirs, ours = _twins(make_torch, make_ours, num_layers=2, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(ours, (torch.randn(4, 3, 5),))
    x = torch.randn(7, 2, 5)
    torch.testing.assert_close(traced(x), theirs(x))


class _Step(nn.Module):
    def __init__(self, layer: rnnkit.RNN) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x_t: torch.Tensor, state: torch.Tensor):
        return self.layer.step(x_t, state)


def test_a_traced_step_reads_its_inputs():
    # without autograd a step is one native call, which a trace would record as constants
    layer = rnnkit.GRU(5, 6, num_layers=2).eval().requires_grad_(False)
    traced = torch.jit.trace(_Step(layer), (torch.randn(3, 5), torch.zeros(2, 3, 6)))
    x_t, state = torch.randn(3, 5), torch.randn(2, 3, 6)
    torch.testing.assert_close(traced(x_t, state), layer.step(x_t, state))


def test_tracing_a_cell_torch_has_no_loop_for_warns_that_the_length_is_fixed():
    layer = rnnkit.LSTM(5, 6, layer_norm=True)
    with pytest.warns(torch.jit.TracerWarning, match="sequences of that length only"):
        traced = torch.jit.trace(layer, (torch.randn(4, 3, 5),))
    x = torch.randn(4, 2, 5)
    torch.testing.assert_close(traced(x), layer(x))


@pytest.mark.parametrize(("make_torch", "make_ours"), TWINS)
def test_a_compiled_layer_gives_torchs_outputs_and_gradients_at_two_sizes(make_torch, make_ours):
    theirs, ours = _twins(make_torch, make_ours, num_layers=2)
    compiled = torch.compile(ours)
    for shape in ((6, 3, 5), (9, 4, 5)):
        x = torch.randn(shape, requires_grad=True)
        results = []
        for layer in (compiled, theirs):
            layer.zero_grad()
            output, _ = layer(x)
            output.pow(2).sum().backward()
            results.append((output, x.grad.clone(), [p.grad for p in layer.parameters()]))
            x.grad = None
        torch.testing.assert_close(*results)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), theirs(x))
