"""Truncated BPTT helpers: carried state gives the full-sequence values; detach cuts the gradient."""

from collections import namedtuple

import pytest
import torch
from torch.testing import assert_close

from rnnkit import LSTM, RnnkitError, detach_state, tbptt_windows


def test_windows_with_carried_state_reproduce_the_full_sequence():
    layer = LSTM(3, 4, num_layers=2)
    x = torch.randn(10, 2, 3)
    full_output, full_state = layer(x)
    state, outputs = None, []
    for (window,) in tbptt_windows(x, window=4):
        state = detach_state(state)
        output, state = layer(window, state)
        outputs.append(output)
    assert [o.shape[0] for o in outputs] == [4, 4, 2]
    assert_close(torch.cat(outputs), full_output)
    assert_close(state, full_state)


def test_detach_state_cuts_the_graph_at_the_window_edge():
    layer = LSTM(3, 4)
    x = torch.randn(6, 2, 3, requires_grad=True)
    _, state = layer(x[:3])
    output, _ = layer(x[3:], detach_state(state))
    output.sum().backward()
    assert torch.all(x.grad[:3] == 0) and torch.any(x.grad[3:] != 0)
    assert detach_state(None) is None


def test_windows_are_aligned_across_streams_and_time_dims():
    x, y = torch.arange(20).view(2, 10), torch.arange(10).view(1, 10)
    pairs = list(tbptt_windows(x, y, window=3, time_dim=1))
    assert [p[0].shape for p in pairs] == [(2, 3), (2, 3), (2, 3), (2, 1)]
    assert torch.equal(torch.cat([p[1] for p in pairs], dim=1), y)


def test_bad_window_and_misaligned_streams_are_refused():
    with pytest.raises(RnnkitError, match="window must be at least 1"):
        list(tbptt_windows(torch.zeros(5), window=0))
    with pytest.raises(RnnkitError, match="same length"):
        list(tbptt_windows(torch.zeros(5), torch.zeros(6), window=2))
    with pytest.raises(RnnkitError, match="no streams to cut"):
        list(tbptt_windows(window=4))


def test_detach_state_keeps_named_tuples():
    State = namedtuple("State", "h c")
    state = State(torch.ones(2, requires_grad=True) * 2, torch.ones(2, requires_grad=True) * 3)
    detached = detach_state([state, None])
    assert type(detached[0]) is State and detached[1] is None
    assert not detached[0].h.requires_grad and torch.equal(detached[0].c, state.c)
