"""unroll against a hand loop over the cell; lengths, reverse, trace, recurrent dropout and zoneout."""

import pytest
import torch
from torch.testing import assert_close

from rnnkit import GRUCell, LayerNormLSTMCell, LSTMCell, RNNCell, RnnkitError, unroll
from rnnkit.unroll import reverse_within_lengths

STEPS, BATCH, IN, HIDDEN = 6, 4, 5, 7
CELLS = {
    "rnn": lambda: RNNCell(IN, HIDDEN),
    "lstm": lambda: LSTMCell(IN, HIDDEN),
    "lstm-proj": lambda: LSTMCell(IN, HIDDEN, proj_size=3),
    "gru": lambda: GRUCell(IN, HIDDEN),
    "ln-lstm": lambda: LayerNormLSTMCell(IN, HIDDEN),
}


def parts(state):
    return (state,) if isinstance(state, torch.Tensor) else state


def hand_loop(cell, x, state=None):
    state = cell.init_state(x.shape[1]) if state is None else state
    outputs = []
    for x_t in x:
        state = cell(x_t, state)
        outputs.append(state if isinstance(state, torch.Tensor) else state[0])
    return torch.stack(outputs), state


@pytest.mark.parametrize("kind", CELLS)
def test_unroll_equals_hand_loop_over_the_cell(kind):
    cell = CELLS[kind]()
    x = torch.randn(STEPS, BATCH, IN)
    output, state = unroll(cell, x)
    expected_output, expected_state = hand_loop(cell, x)
    assert_close(output, expected_output)
    assert_close(state, expected_state)


@pytest.mark.parametrize("kind", CELLS)
def test_padded_steps_keep_the_state_and_emit_zeros(kind):
    cell = CELLS[kind]()
    x = torch.randn(STEPS, BATCH, IN)
    lengths = torch.tensor([6, 1, 4, 3])
    output, state = unroll(cell, x, lengths=lengths)
    for n, length in enumerate(lengths.tolist()):
        alone_output, alone_state = hand_loop(cell, x[:length, n : n + 1])
        assert_close(output[:length, n : n + 1], alone_output)
        assert torch.all(output[length:, n] == 0)
        for ours, alone in zip(parts(state), parts(alone_state), strict=True):
            assert_close(ours[n : n + 1], alone)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_reverse_runs_each_sequence_backwards_within_its_length(kind):
    cell = CELLS[kind]()
    x = torch.randn(STEPS, BATCH, IN)
    lengths = torch.tensor([3, 6, 1, 5])
    output, _ = unroll(cell, x, lengths=lengths, reverse=True)
    for n, length in enumerate(lengths.tolist()):
        alone_output, _ = hand_loop(cell, x[:length, n : n + 1].flip(0))
        assert_close(output[:length, n : n + 1], alone_output.flip(0))  # aligned with the input steps
        assert torch.all(output[length:, n] == 0)


def test_reverse_without_lengths_flips_time():
    cell = GRUCell(IN, HIDDEN)
    x = torch.randn(STEPS, BATCH, IN)
    output, state = unroll(cell, x, reverse=True)
    expected_output, expected_state = hand_loop(cell, x.flip(0))
    assert_close(output, expected_output.flip(0))
    assert_close(state, expected_state)


def test_reverse_within_lengths_is_an_involution():
    x = torch.arange(STEPS * BATCH).view(STEPS, BATCH, 1).float()
    lengths = torch.tensor([2, 6, 1, 4])
    flipped = reverse_within_lengths(x, lengths)
    assert flipped[:, 0, 0].tolist() == [4, 0, 8, 12, 16, 20]  # first two swapped, padding in place
    assert_close(reverse_within_lengths(flipped, lengths), x)


def test_trace_shows_states_and_gates_at_every_step():
    cell = LSTMCell(IN, HIDDEN)
    x = torch.randn(STEPS, BATCH, IN)
    output, (_h, c), trace = unroll(cell, x, trace=True)
    assert set(trace) == {"h", "c", "i", "f", "g", "o"}
    assert_close(trace["h"], output)
    assert_close(trace["c"][-1], c)
    # recompute step 2's forget gate from the traced state before it
    gates = cell.project(x[2]) + cell.recurrent(trace["h"][1])
    assert_close(trace["f"][2], torch.sigmoid(gates.chunk(4, -1)[1]))


def test_trace_of_a_gru_names_its_gates_and_zeroes_padding():
    x = torch.randn(STEPS, BATCH, IN)
    _, _, trace = unroll(GRUCell(IN, HIDDEN), x, lengths=[6, 2, 3, 1], trace=True)
    assert set(trace) == {"h", "r", "z", "n"}
    assert all(v.shape == (STEPS, BATCH, HIDDEN) for v in trace.values())
    assert torch.all(trace["z"][2:, 1] == 0) and torch.all(trace["z"][:2, 1] != 0)


class SpyCell(GRUCell):
    """Records the recurrent mask it receives at each step."""

    def __init__(self, *args):
        super().__init__(*args)
        self.masks = []

    def step(self, xp, state, *, recurrent_mask=None):
        self.masks.append(recurrent_mask)
        return super().step(xp, state, recurrent_mask=recurrent_mask)


def test_recurrent_dropout_uses_one_mask_per_sequence_at_every_step():
    cell = SpyCell(IN, HIDDEN)
    unroll(cell, torch.randn(STEPS, BATCH, IN), recurrent_dropout=0.5)
    assert len(cell.masks) == STEPS
    first = cell.masks[0]
    assert first.shape == (BATCH, HIDDEN)
    assert set(first.unique().tolist()) <= {0.0, 2.0}  # inverted dropout: kept units scaled by 1/(1-p)
    assert (first == 0).any() and (first != 0).any()
    assert all(m is first for m in cell.masks)
    # a new sequence (a new call) draws a new mask
    unroll(cell, torch.randn(STEPS, BATCH, IN), recurrent_dropout=0.5)
    assert not torch.equal(cell.masks[-1], first)


def test_recurrent_dropout_is_off_at_eval():
    cell = SpyCell(IN, HIDDEN).eval()
    unroll(cell, torch.randn(STEPS, BATCH, IN), recurrent_dropout=0.5)
    assert all(m is None for m in cell.masks)


@pytest.mark.parametrize("kind", CELLS)
def test_zoneout_at_eval_is_its_expectation(kind):
    """h_t = p h_{t-1} + (1 - p) h~_t (c alike), h~_t the cell's step from the blended state, as in the paper."""
    p = 0.3
    cell = CELLS[kind]().double().eval()
    x = torch.randn(STEPS, BATCH, IN, dtype=torch.float64)
    state, outputs = parts(cell.init_state(BATCH, dtype=torch.float64)), []
    for x_t in x:
        new = parts(cell(x_t, state if len(state) > 1 else state[0]))
        state = tuple(p * old + (1 - p) * fresh for old, fresh in zip(state, new, strict=True))
        outputs.append(state[0])
    output, final = unroll(cell, x, zoneout=p)
    assert_close(output, torch.stack(outputs), atol=1e-12, rtol=1e-12)
    assert_close(parts(final), state, atol=1e-12, rtol=1e-12)


def test_zoneout_in_training_keeps_each_unit_old_or_new():
    cell = GRUCell(IN, HIDDEN)
    x = torch.randn(STEPS, BATCH, IN)
    output, _ = unroll(cell, x, zoneout=0.5)
    previous = torch.zeros(BATCH, HIDDEN)
    kept = 0
    for t in range(STEPS):
        new = cell(x[t], previous)
        is_old, is_new = torch.isclose(output[t], previous), torch.isclose(output[t], new)
        assert torch.all(is_old | is_new)
        kept += int((is_old & ~is_new).sum())
        previous = output[t]
    assert 0 < kept < STEPS * BATCH * HIDDEN


def test_initial_state_is_used():
    cell = LSTMCell(IN, HIDDEN)
    x = torch.randn(STEPS, BATCH, IN)
    state = (torch.randn(BATCH, HIDDEN), torch.randn(BATCH, HIDDEN))
    assert_close(unroll(cell, x, state), hand_loop(cell, x, state))


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([7, 1, 1, 1], r"lengths must lie in \[1, 6\]"),
        ([0, 1, 1, 1], r"lengths must lie in \[1, 6\]"),
        ([1, 2, 3], r"lengths must have shape \(4,\)"),
        ([1.0, 2.0, 3.0, 4.0], "integers"),
    ],
)
def test_bad_lengths_are_refused(lengths, message):
    with pytest.raises(RnnkitError, match=message):
        unroll(GRUCell(IN, HIDDEN), torch.randn(STEPS, BATCH, IN), lengths=torch.tensor(lengths))


def test_lengths_on_another_device_are_refused():
    with pytest.raises(RnnkitError, match="lengths is on meta"):
        unroll(GRUCell(IN, HIDDEN), torch.randn(STEPS, BATCH, IN), lengths=torch.ones(BATCH, device="meta"))


def test_gradients_flow_through_unroll_in_float64():
    cell = LayerNormLSTMCell(3, 4).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: unroll(cell, x, lengths=[5, 3], reverse=True)[0], (x,))
