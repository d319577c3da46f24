"""Layers against torch.nn over random configurations; state_dicts, PackedSequence, step API, extras."""

import random

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit
from rnnkit import GRU, LSTM, RNN, RnnkitError, unroll

TORCH_CLASS = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def random_config(seed: int) -> dict:
    rng = random.Random(seed)
    kind = rng.choice(list(TORCH_CLASS))
    config = {
        "kind": kind,
        "num_layers": rng.randint(1, 3),
        "bidirectional": rng.random() < 0.5,
        "batch_first": rng.random() < 0.5,
        "bias": rng.random() < 0.8,
        "proj_size": rng.choice([0, 2]) if kind == "lstm" else 0,
        "lengths": rng.random() < 0.5,
        "hx": rng.random() < 0.5,
        "batch": rng.randint(1, 4),
        "steps": rng.randint(1, 6),
        "input_size": rng.randint(1, 5),
        "hidden_size": rng.randint(3, 6),
    }
    return config


def build_pair(config):
    kwargs = dict(
        num_layers=config["num_layers"],
        bias=config["bias"],
        batch_first=config["batch_first"],
        bidirectional=config["bidirectional"],
    )
    if config["kind"] == "lstm":
        kwargs["proj_size"] = config["proj_size"]
    if config["kind"].startswith("rnn"):
        kwargs["nonlinearity"] = config["kind"][4:]
    ref = TORCH_CLASS[config["kind"]](config["input_size"], config["hidden_size"], **kwargs)
    ours = {"lstm": LSTM, "gru": GRU}.get(config["kind"], RNN)(config["input_size"], config["hidden_size"], **kwargs)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def run_reference(ref, x, hx, lengths, batch_first):
    if lengths is None:
        return ref(x, hx)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    output, h_n = ref(packed, hx)
    output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    return output, h_n


def parts(state):
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


@pytest.mark.parametrize("path", ["auto", "unroll"])
@pytest.mark.parametrize("seed", range(64))
def test_matches_torch_nn_in_outputs_states_and_all_gradients(seed, path):
    config = random_config(seed)
    ours, ref = build_pair(config)
    batch, steps = config["batch"], config["steps"]
    shape = (batch, steps, config["input_size"]) if config["batch_first"] else (steps, batch, config["input_size"])
    x = torch.randn(shape)
    lengths = torch.randint(1, steps + 1, (batch,)) if config["lengths"] else None
    hx = None
    if config["hx"]:
        hx = tuple(torch.randn_like(s) for s in parts(ours.initial_state(batch)))
        hx = hx if config["kind"] == "lstm" else hx[0]

    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    # return_trace forces the explicit cells; "auto" lets the layer pick its fastest kernel
    result = ours(x_ours, hx, lengths=lengths, return_trace=path == "unroll")
    out_ours, h_ours = result[0], result[1]
    out_ref, h_ref = run_reference(ref, x_ref, hx, lengths, config["batch_first"])

    tight = {"atol": 1e-5, "rtol": 1e-5}
    assert_close(out_ours, out_ref, **tight)
    for a, b in zip(parts(h_ours), parts(h_ref), strict=True):
        assert_close(a, b, **tight)
    weights = [torch.randn_like(t) for t in (out_ref, *parts(h_ref))]
    loss = lambda out, h: sum((w * t).sum() for w, t in zip(weights, (out, *parts(h)), strict=True))  # noqa: E731
    loss(out_ours, h_ours).backward()
    loss(out_ref, h_ref).backward()
    assert_close(x_ours.grad, x_ref.grad, **tight)
    for name, param in ref.named_parameters():
        assert_close(getattr(ours, name).grad, param.grad, **tight, msg=f"gradient of {name}")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_state_dict_keys_equal_torch_and_load_both_ways(kind):
    ours_class, ref_class = {"rnn": (RNN, nn.RNN), "lstm": (LSTM, nn.LSTM), "gru": (GRU, nn.GRU)}[kind]
    extra = {"proj_size": 2} if kind == "lstm" else {}
    ours = ours_class(4, 5, num_layers=2, bidirectional=True, **extra)
    ref = ref_class(4, 5, num_layers=2, bidirectional=True, **extra)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(ours.state_dict())  # rnnkit -> torch
    x = torch.randn(3, 2, 4)
    assert_close(ours(x), ref(x))
    fresh = ours_class(4, 5, num_layers=2, bidirectional=True, **extra)
    fresh.load_state_dict(ref.state_dict())  # torch -> rnnkit
    assert_close(fresh(x), ref(x))


def test_from_torch_copies_configuration_and_weights():
    ref = nn.LSTM(4, 6, num_layers=2, batch_first=True, proj_size=3).double().eval()
    ours = rnnkit.LSTM.from_torch(ref)
    assert isinstance(ours, LSTM) and ours.batch_first and ours.proj_size == 3 and not ours.training
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    assert_close(ours(x), ref(x))


def test_torch_parameter_names_are_attributes():
    ours = GRU(3, 4, num_layers=2, bidirectional=True)
    assert ours.weight_hh_l1_reverse is ours.cells[3].weight_hh
    assert [p.shape for p in ours._flat_weights[:4]] == [(12, 3), (12, 4), (12,), (12,)]


def test_packed_sequence_in_gives_torchs_packed_sequence_out():
    ref = nn.GRU(3, 4, bidirectional=True)
    ours = GRU.from_torch(ref)
    x, lengths = torch.randn(5, 3, 3), torch.tensor([2, 5, 3])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    (out_ours, h_ours), (out_ref, h_ref) = ours(packed), ref(packed)
    assert_close(out_ours.data, out_ref.data)
    assert torch.equal(out_ours.batch_sizes, out_ref.batch_sizes)
    assert torch.equal(out_ours.unsorted_indices, out_ref.unsorted_indices)
    assert_close(h_ours, h_ref)


@pytest.mark.parametrize("kind", [RNN, LSTM, GRU])
def test_unbatched_input_as_torch(kind):
    ours = kind(3, 4, num_layers=2)
    x = torch.randn(5, 3)
    output, state = ours(x)
    assert output.shape == (5, 4)
    assert_close(output, ours(x.unsqueeze(1))[0].squeeze(1))
    assert all(s.shape[1:] == (4,) for s in parts(state))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RNN(3, 5, num_layers=2, nonlinearity="relu"),
        lambda: LSTM(3, 5, num_layers=3),
        lambda: LSTM(3, 5, num_layers=2, proj_size=2),
        lambda: GRU(3, 5, num_layers=2),
        lambda: LSTM(3, 5, num_layers=2, layer_norm=True),
        lambda: GRU(3, 5, layer_norm=True),
        # zoneout's expectation at eval, step by step as over the sequence
        lambda: RNN(3, 5, num_layers=2, zoneout=0.3),
        lambda: LSTM(3, 5, num_layers=2, zoneout=0.3),
        lambda: GRU(3, 5, num_layers=2, zoneout=0.3),
        lambda: LSTM(3, 5, num_layers=2, layer_norm=True, zoneout=0.3),
    ],
)
def test_step_api_equals_full_sequence(make):
    layer = make().eval()
    x = torch.randn(7, 2, 3)
    expected_output, expected_state = layer(x)
    state, outputs = None, []
    for x_t in x:
        y_t, state = layer.step(x_t, state)
        outputs.append(y_t)
    assert_close(torch.stack(outputs), expected_output)
    assert_close(state, expected_state)


def test_step_continues_from_forward():
    layer = LSTM(3, 5, num_layers=2)
    x = torch.randn(6, 2, 3)
    _, state = layer(x[:4])
    y, state = layer.step(x[4], state)
    y, state = layer.step(x[5], state)
    full_output, full_state = layer(x)
    assert_close(y, full_output[-1])
    assert_close(state, full_state)


def test_layer_norm_layer_is_its_cells_unrolled():
    layer = LSTM(3, 5, num_layers=2, bidirectional=True, layer_norm=True)
    x, lengths = torch.randn(6, 2, 3), torch.tensor([6, 3])
    output, _ = layer(x, lengths=lengths)
    forward, _ = unroll(layer.cells[0], x, lengths=lengths)
    backward, _ = unroll(layer.cells[1], x, lengths=lengths, reverse=True)
    second_f, _ = unroll(layer.cells[2], torch.cat([forward, backward], -1), lengths=lengths)
    assert_close(output[..., :5], second_f)
    assert "ln_ih_weight_l0" in layer.state_dict() and "ln_c_bias_l1_reverse" in layer.state_dict()


class MinimalGatedCell(rnnkit.RecurrentCell):
    """A user cell: h' = (1 - f) * h + f * tanh(W x + U (f * h)) — minimal gated unit (Zhou et al. 2016)."""

    num_gates = 2

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.reset_parameters()

    def equations(self, xp, state, recurrent_mask=None):
        h = state if recurrent_mask is None else state * recurrent_mask
        x_f, x_n = xp.chunk(2, -1)
        w_f, w_n = self.weight_hh.chunk(2, 0)
        b_f, b_n = self.bias_hh.chunk(2, 0)
        f = torch.sigmoid(x_f + h @ w_f.T + b_f)
        n = torch.tanh(x_n + (f * h) @ w_n.T + b_n)
        h = (1 - f) * state + f * n
        return h, h, {"f": f}


def test_user_cell_becomes_a_stacked_bidirectional_layer():
    layer = GRU(3, 4, num_layers=2, bidirectional=True, cell=MinimalGatedCell)
    x, lengths = torch.randn(5, 2, 3), [5, 2]
    output, h_n, trace = layer(x, lengths=lengths, return_trace=True)
    assert output.shape == (5, 2, 8) and h_n.shape == (4, 2, 4)
    assert set(trace) == {"l0", "l0_reverse", "l1", "l1_reverse"} and "f" in trace["l1"]
    first, _ = unroll(layer.cells[0], x, lengths=lengths)
    assert_close(trace["l0"]["h"], first)
    assert "weight_hh_l1_reverse" in layer.state_dict()
    output.sum().backward()
    assert layer.weight_ih_l0.grad is not None


class ContractOnlyCell(nn.Module):
    """A user cell that is no RecurrentCell: only the documented project / step / init_state."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.linear, self.hidden_size = nn.Linear(input_size, 2 * hidden_size), hidden_size

    def project(self, x):
        return self.linear(x)

    def step(self, xp, state, *, recurrent_mask=None):
        z, n = xp.chunk(2, -1)
        h = torch.lerp(state, torch.tanh(n), torch.sigmoid(z))
        return h, h

    def init_state(self, batch_size, *, device=None, dtype=None):
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)


def test_a_cell_with_only_project_step_and_init_state_becomes_a_layer_and_traces():
    layer = RNN(3, 4, num_layers=2, bidirectional=True, cell=ContractOnlyCell)
    x, lengths = torch.randn(5, 2, 3), [5, 2]
    output, h_n, trace = layer(x, lengths=lengths, return_trace=True)
    assert output.shape == (5, 2, 8) and h_n.shape == (4, 2, 4) and layer.output_size == 4
    assert_close(trace["l1"]["h"], output[..., :4])
    assert_close(layer(x, lengths=lengths)[0], output)
    empty, _, empty_trace = unroll(layer.cells[0], x[:0], trace=True)
    assert empty.shape == (0, 2, 4) and empty_trace["h"].shape == (0, 2, 4)


def test_trace_covers_every_layer_and_direction():
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 5, 3)
    output, (_h_n, c_n), trace = layer(x, return_trace=True)
    assert set(trace) == {"l0", "l0_reverse", "l1", "l1_reverse"}
    assert trace["l1"]["h"].shape == (5, 2, 4)  # time first
    assert_close(trace["l1"]["h"].transpose(0, 1), output[..., :4])
    assert_close(trace["l1_reverse"]["c"][0], c_n[3])


def test_recurrent_dropout_is_identity_at_eval():
    plain = LSTM(3, 4, num_layers=2)
    extras = LSTM(3, 4, num_layers=2, recurrent_dropout=0.3)
    extras.load_state_dict(plain.state_dict())
    x = torch.randn(6, 2, 3)
    assert_close(extras.eval()(x), plain.eval()(x))
    assert not torch.allclose(extras.train()(x)[0], plain(x)[0])


# --- zoneout at eval: the expectation of its noise, on every path -------------------------------------------

ZONEOUT = 0.3
ZONEOUT_LAYERS = {
    "rnn_tanh": lambda **kw: RNN(3, 4, **kw),
    "rnn_relu": lambda **kw: RNN(3, 4, nonlinearity="relu", **kw),
    "gru": lambda **kw: GRU(3, 4, **kw),
    "lstm": lambda **kw: LSTM(3, 4, **kw),
    "layer_norm_lstm": lambda **kw: LSTM(3, 4, layer_norm=True, **kw),
    "layer_norm_gru": lambda **kw: GRU(3, 4, layer_norm=True, **kw),
    "lstm_proj": lambda **kw: LSTM(3, 4, proj_size=2, **kw),
}
ZONEOUT_CONFIGS = {
    "plain": ({}, None),
    "stacked_bidirectional_lengths": ({"num_layers": 2, "bidirectional": True}, [5, 2, 4]),
}


def zoneout_expectation(layer, x, lengths, p):
    r"""The layer at eval written from the paper's equation, one sequence at a time: per layer and direction,
    :math:`h_t = p\, h_{t-1} + (1 - p)\, \tilde h_t` with :math:`\tilde h_t` the cell's step (``c`` alike); a
    sequence runs its own length (backwards for the reverse direction), padded steps emit zeros, and ``h_n`` is
    the state after its last step."""
    num_steps, batch = x.shape[:2]
    lengths = [num_steps] * batch if lengths is None else lengths
    finals = []
    for layer_index in range(layer.num_layers):
        outputs = []
        for direction in range(layer.num_directions):
            cell = layer.cells[layer_index * layer.num_directions + direction]
            rows, sequence_finals = [], []
            for n, length in enumerate(lengths):
                state = parts(cell.init_state(1, dtype=x.dtype))
                h_steps = [None] * num_steps
                for t in reversed(range(length)) if direction else range(length):
                    new = parts(cell(x[t, n : n + 1], state if len(state) > 1 else state[0]))
                    state = tuple(p * old + (1 - p) * fresh for old, fresh in zip(state, new, strict=True))
                    h_steps[t] = state[0][0]
                zeros = x.new_zeros(state[0].shape[-1])
                rows.append(torch.stack([zeros if h is None else h for h in h_steps]))  # (L, H_out)
                sequence_finals.append(state)
            outputs.append(torch.stack(rows, dim=1))  # -> (L, N, H_out)
            finals.append(tuple(torch.cat(part) for part in zip(*sequence_finals, strict=True)))
        x = torch.cat(outputs, dim=-1)  # -> (L, N, D*H_out)
    h_n = tuple(torch.stack(part) for part in zip(*finals, strict=True))
    return x, h_n if len(h_n) > 1 else h_n[0]


def run_path(layer, x, lengths, path, monkeypatch):
    """The layer's forward on one path: its own choice, the pure-PyTorch loops instead of native ones, or the
    reference unroll of its cells (a trace forces that)."""
    if path == "python_loops":
        monkeypatch.setenv("RNNKIT_NO_NATIVE", "1")
    result = layer(x, lengths=lengths, return_trace=path == "unroll")
    monkeypatch.delenv("RNNKIT_NO_NATIVE", raising=False)
    return result[0], result[1]


@pytest.mark.parametrize("path", ["auto", "python_loops", "unroll"])
@pytest.mark.parametrize("config", ZONEOUT_CONFIGS)
@pytest.mark.parametrize("kind", ZONEOUT_LAYERS)
def test_zoneout_at_eval_is_the_expectation_in_values_and_gradients(kind, config, path, monkeypatch):
    options, lengths = ZONEOUT_CONFIGS[config]
    torch.manual_seed(0)
    layer = ZONEOUT_LAYERS[kind](zoneout=ZONEOUT, dtype=torch.float64, **options).eval()
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    output, h_n = run_path(layer, x, None if lengths is None else torch.tensor(lengths), path, monkeypatch)
    expected_output, expected_h_n = zoneout_expectation(layer, x, lengths, ZONEOUT)
    tight = {"atol": 1e-12, "rtol": 1e-12}
    assert_close(output, expected_output, **tight)
    assert_close(h_n, expected_h_n, **tight)
    # gradients at eval: autograd through the equation, uneven weights so a wrong state gradient shows
    weights = [torch.randn_like(t) for t in (output, *parts(h_n))]

    def grads(out, h):
        loss = sum((w * t).sum() for w, t in zip(weights, (out, *parts(h)), strict=True))
        return torch.autograd.grad(loss, [x, *layer.parameters()])

    assert_close(grads(output, h_n), grads(expected_output, expected_h_n), **tight)


def test_zoneout_changes_eval_outputs_by_the_expectation_and_training_draws_a_mask():
    plain = GRU(3, 4)
    zoned = GRU(3, 4, zoneout=0.5)
    zoned.load_state_dict(plain.state_dict())
    x = torch.randn(6, 2, 3)
    with torch.no_grad():
        h_tilde = plain.eval()(x[:1])[0][0]  # the first step from a zero state: h~_1
        assert_close(zoned.eval()(x[:1])[0][0], 0.5 * h_tilde)  # p * 0 + (1 - p) * h~_1
        trained = zoned.train()(x[:1])[0][0]
    assert torch.all((trained == 0) | (trained == h_tilde))  # each unit old (0) or new, as before


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("kind", [RNN, LSTM, GRU])
def test_layers_follow_the_dtype(kind, dtype):
    layer = kind(3, 4, num_layers=2, dtype=dtype)
    x = torch.randn(5, 2, 3, dtype=dtype)
    output, state = layer(x, lengths=[5, 3])
    assert output.dtype == dtype and all(s.dtype == dtype for s in parts(state))
    output_traced = layer(x, lengths=[5, 3], return_trace=True)[0]
    tolerance = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {}
    assert_close(output, output_traced, **tolerance)


# --- bad input: one clear RnnkitError each ------------------------------------------------------------------


def test_wrong_rank_is_refused_naming_the_layers_own_layout():
    with pytest.raises(RnnkitError, match=r"input must be 3-D \(time, batch, features\) .* got 4-D"):
        LSTM(3, 4)(torch.randn(2, 5, 3, 1))
    with pytest.raises(RnnkitError, match=r"input must be 3-D \(batch, time, features\) .* got 1-D"):
        LSTM(3, 4, batch_first=True)(torch.randn(3))


def test_wrong_feature_size_is_refused():
    with pytest.raises(RnnkitError, match="input has 7 features but the layer expects input_size=3"):
        GRU(3, 4)(torch.randn(5, 2, 7))


def test_state_batch_mismatch_is_refused():
    with pytest.raises(RnnkitError, match="hx has batch size 3 but the input has batch size 2"):
        GRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 3, 4))


def test_state_shape_mismatch_is_refused():
    with pytest.raises(RnnkitError, match=r"hx must have shape \(2, 2, 4\)"):
        GRU(3, 4, num_layers=2)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


@pytest.mark.parametrize("make", [RNN, LSTM, GRU])
def test_a_state_of_another_dtype_or_device_than_the_input_is_one_clear_error(make):
    layer, x = make(3, 4), torch.randn(5, 2, 3)
    for state, message in ((torch.zeros(1, 2, 4, dtype=torch.float64), "hx has dtype torch.float64 but the input has"),
                           (torch.zeros(1, 2, 4, device="meta"), "hx is on meta but the input is on cpu")):  # fmt: skip
        hx = (state, state) if make is LSTM else state
        with pytest.raises(RnnkitError, match=message):
            layer(x, hx)
        with pytest.raises(RnnkitError, match=message):
            layer.step(x[0], hx)


def test_lstm_state_must_be_a_pair():
    with pytest.raises(RnnkitError, match="hx must be a tuple of 2 tensors"):
        LSTM(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


def test_lengths_longer_than_the_sequence_are_refused():
    with pytest.raises(RnnkitError, match=r"lengths must lie in \[1, 5\].*max 9"):
        LSTM(3, 4)(torch.randn(5, 2, 3), lengths=[9, 2])


def test_lengths_below_one_are_refused():
    with pytest.raises(RnnkitError, match=r"lengths must lie in \[1, 5\].*min 0"):
        LSTM(3, 4)(torch.randn(5, 2, 3), lengths=[0, 2])


def test_lengths_on_the_wrong_device_are_refused():
    with pytest.raises(RnnkitError, match="lengths is on meta but the input is on cpu"):
        LSTM(3, 4)(torch.randn(5, 2, 3), lengths=torch.ones(2, dtype=torch.long, device="meta"))


def test_packed_sequence_with_lengths_is_refused():
    packed = pack_padded_sequence(torch.randn(5, 2, 3), [5, 2])
    with pytest.raises(RnnkitError, match="either a PackedSequence or lengths"):
        LSTM(3, 4)(packed, lengths=[5, 2])


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout", "zoneout"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_probabilities_outside_unit_interval_are_refused(name, value):
    with pytest.raises(RnnkitError, match=f"{name} must be a probability in \\[0, 1\\), got {value}"):
        LSTM(3, 4, num_layers=2, **{name: value})


def test_proj_size_not_below_hidden_size_is_refused():
    with pytest.raises(RnnkitError, match=r"proj_size must be in \[0, hidden_size\) = \[0, 4\), got 4"):
        LSTM(3, 4, proj_size=4)


def test_bad_sizes_are_refused():
    with pytest.raises(RnnkitError, match="num_layers must be at least 1"):
        GRU(3, 4, num_layers=0)
    with pytest.raises(RnnkitError, match="must be positive"):
        GRU(3, 0)
    with pytest.raises(RnnkitError, match="hidden_size must be positive, got 0"):
        LSTM(3, 0)  # not a complaint about proj_size, which LSTM checks first


def test_bad_nonlinearity_is_refused():
    with pytest.raises(RnnkitError, match="Unknown nonlinearity 'gelu'"):
        RNN(3, 4, nonlinearity="gelu")


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="does nothing with num_layers=1"):
        GRU(3, 4, dropout=0.5)


def test_step_on_bidirectional_layer_is_refused():
    with pytest.raises(RnnkitError, match="unidirectional"):
        GRU(3, 4, bidirectional=True).step(torch.randn(2, 3))


def test_step_with_wrong_input_shape_is_refused():
    with pytest.raises(RnnkitError, match=r"x_t must have shape \(batch, 3\)"):
        GRU(3, 4).step(torch.randn(2, 5))


def test_an_lstm_state_given_as_a_list_returns_h_and_c_as_torch_does():
    torch.manual_seed(0)
    lstm = rnnkit.LSTM(4, 64, num_layers=2).eval()  # no_grad, 32 rows: the path that hands torch its own loop
    reference = nn.LSTM(4, 64, num_layers=2).eval()
    reference.load_state_dict(lstm.state_dict())
    x, h, c = torch.randn(5, 32, 4), torch.randn(2, 32, 64), torch.randn(2, 32, 64)
    with torch.no_grad():
        _, state = lstm(x, [h, c])
        _, expected = reference(x, [h, c])
    assert isinstance(state, tuple) and len(state) == 2
    torch.testing.assert_close(state, expected, rtol=1e-5, atol=1e-5)


def test_an_input_of_another_dtype_than_the_weights_is_one_clear_error():
    with pytest.raises(RnnkitError, match=r"input dtype torch.float64 does not match the layer's torch.float32"):
        rnnkit.GRU(4, 6)(torch.randn(5, 3, 4, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts for the products: allowed, as in torch.nn
        assert rnnkit.LSTM(4, 6)(torch.randn(5, 3, 4).bfloat16())[0].shape == (5, 3, 6)


def test_a_trace_of_no_steps_has_every_name_and_no_rows():
    output, _, trace = rnnkit.LSTM(4, 6, bidirectional=True)(torch.randn(0, 2, 4), return_trace=True)
    assert output.shape == (0, 2, 12) and set(trace) == {"l0", "l0_reverse"}
    assert {name: tuple(value.shape) for name, value in trace["l0"].items()} == dict.fromkeys("hcifgo", (0, 2, 6))


def test_second_derivatives_are_refused_by_the_fused_kernels_and_exact_with_the_trace():
    """A gradient penalty: the fused backward records no graph, so create_graph=True must not pass silently."""
    torch.manual_seed(0)
    reference = nn.LSTM(4, 6)
    lstm = rnnkit.LSTM.from_torch(reference)
    x = torch.randn(5, 2, 4, requires_grad=True)

    def penalty(module, **extra):
        (gradient,) = torch.autograd.grad(module(x, **extra)[0].sum(), x, create_graph=True)
        module.zero_grad()
        (gradient**2).sum().backward()
        return [p.grad for p in module.parameters()]

    with pytest.raises(RnnkitError, match="differentiable once; for second derivatives"):
        penalty(lstm)
    torch.testing.assert_close(penalty(lstm, return_trace=True), penalty(reference), rtol=1e-5, atol=1e-6)


def test_layers_carry_torch_nns_mode_and_proj_size():
    pairs = [
        (rnnkit.RNN(3, 4, nonlinearity="relu"), nn.RNN(3, 4, nonlinearity="relu")),
        (rnnkit.GRU(3, 4), nn.GRU(3, 4)),
        (rnnkit.LSTM(3, 4, proj_size=2), nn.LSTM(3, 4, proj_size=2)),
    ]
    for layer, reference in pairs:
        assert (layer.mode, layer.proj_size) == (reference.mode, reference.proj_size)


def test_repr_shows_the_settings_that_are_not_defaults():
    # torch.nn's line where torch has one, then rnnkit's extras; defaults are left out, as torch does
    assert LSTM(3, 4, proj_size=2).extra_repr() == nn.LSTM(3, 4, proj_size=2).extra_repr() == "3, 4, proj_size=2"
    assert GRU(3, 4, 2, batch_first=True).extra_repr() == nn.GRU(3, 4, 2, batch_first=True).extra_repr()
    layer = LSTM(3, 4, proj_size=2, layer_norm=True, zoneout=0.1)
    assert layer.extra_repr() == "3, 4, proj_size=2, layer_norm=True, zoneout=0.1"
    assert "LayerNormLSTMCell(\n      3, 4, bias=True, proj_size=2" in repr(layer)
    assert GRU(3, 4, layer_norm=True).extra_repr() == "3, 4, layer_norm=True"
    assert RNN(3, 4, nonlinearity="relu").extra_repr() == "3, 4, nonlinearity='relu'"
    assert RNN(3, 4).extra_repr() == "3, 4"


@pytest.mark.parametrize("kind", [RNN, GRU, LSTM])
def test_saturated_gates_reach_one_and_pass_no_gradient_as_in_torch(kind):
    """Inputs of scale 1e6 saturate every gate: torch's reach exactly 1 and pass no gradient back (a gate that
    stopped at 1 - 2^-24 passed gradients of 2-6 to the weights here)."""
    torch.manual_seed(0)
    reference = getattr(nn, kind.__name__)(16, 32)
    layer = kind.from_torch(reference)
    x = 1e6 * torch.randn(6, 4, 16)
    for module in (reference, layer):
        output, _ = module(x)
        output.sum().backward()
    assert reference.weight_ih_l0.grad.abs().max() == 0
    assert layer.weight_ih_l0.grad.abs().max() < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("kind", "options"),
    [(RNN, {}), (RNN, {"nonlinearity": "relu"}), (GRU, {}), (GRU, {"layer_norm": True}), (LSTM, {}),
     (LSTM, {"layer_norm": True})],
)  # fmt: skip
def test_a_nan_in_the_input_reaches_outputs_states_and_gradients_as_in_torch(kind, options, dtype):
    """A NaN must not come out as a finite number: under -ffinite-math-only the loops' clamps dropped it, so a
    diverged model ran on with finite outputs."""
    torch.manual_seed(0)
    layer = kind(5, 6, num_layers=2, **options).to(dtype)
    x = torch.randn(4, 3, 5, dtype=dtype)
    x[1, 0, 2] = float("nan")
    x.requires_grad_()
    output, state = layer(x)
    output.sum().backward()
    # sequence 0 from step 1 on, through both layers; the other sequences stay finite
    assert output[1:, 0].isnan().all() and not output[:1].isnan().any() and not output[:, 1:].isnan().any()
    assert all(part[:, 0].isnan().all() for part in ((state,) if isinstance(state, torch.Tensor) else state))
    assert layer.weight_hh_l0.grad.isnan().any()
    with torch.no_grad():
        assert layer(x)[0][1:, 0].isnan().all()
    step_state = None
    for x_t in x.detach():
        y_t, step_state = layer.eval().step(x_t, step_state)
    assert y_t[0].isnan().all() and not y_t[1:].isnan().any()
