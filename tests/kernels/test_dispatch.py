"""kernels.run_fused picks a kernel by cell kind, device, dtype and options; every choice keeps the numbers."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit import kernels
from rnnkit.kernels import aten, gemm, native, stack


@pytest.fixture
def calls(monkeypatch):
    """Record which kernel ran."""
    seen = []
    for module, name in ((stack, "run"), (aten, "run")):
        original = getattr(module, name)
        label = module.__name__.rsplit(".", 1)[-1]

        def spy(*args, original=original, label=label):
            seen.append((label, getattr(args[-1], "__name__", "native") if label == "stack" else None))
            return original(*args)

        monkeypatch.setattr(module, name, spy)
    return seen


NATIVE = native.load() is not None


@pytest.mark.skipif(not NATIVE, reason="native loops not built")
def test_gru_and_rnn_use_rnnkit_loops_and_plain_lstm_uses_aten_for_large_steps(calls, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the bench machine's, whatever this one has
    x = torch.randn(4, kernels.FEW_ROWS + 1, 5)
    # a step of batch x 4H x H multiply-adds at the threshold goes to aten, with fewer rows than 16 a thread
    hidden = 64
    wide = torch.randn(4, kernels.SMALL_STEP // (4 * hidden * hidden), 5)
    assert wide.shape[1] < kernels.LSTM_ROWS_PER_THREAD * 2
    rnnkit.GRU(5, 6)(x)
    rnnkit.RNN(5, 6)(x)
    rnnkit.LSTM(5, hidden)(wide)
    rnnkit.LSTM(5, hidden)(wide, lengths=[4] * wide.shape[1])
    rnnkit.LSTM(5, hidden)(wide[:, : kernels.FEW_ROWS])  # matrix-vector steps: the native loops win
    rnnkit.LSTM(5, hidden)(wide[:, :-1])  # one row fewer: below the threshold, oneDNN's overhead dominates
    rnnkit.LSTM(5, 6)(x)
    assert [label for label, _ in calls] == ["stack", "stack", "aten", "stack", "stack", "stack", "stack"]


@pytest.mark.skipif(not NATIVE, reason="native loops not built")
def test_plain_lstm_trains_on_the_native_loops_from_16_rows_a_thread_or_large_steps_and_infers_on_aten(
    calls, monkeypatch
):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    layer = rnnkit.LSTM(5, 64)
    rows = kernels.LSTM_ROWS_PER_THREAD * 2
    layer(torch.randn(3, rows, 5))  # training: the native loops' backward wins
    layer(torch.randn(3, rows - 1, 5))  # fewer rows a thread, a small step: oneDNN's
    with torch.no_grad():
        layer(torch.randn(3, rows, 5))  # inference: oneDNN's forward is the faster
    layer.requires_grad_(False)
    layer(torch.randn(3, rows, 5))  # nothing to differentiate: inference too
    layer(torch.randn(3, rows, 5, requires_grad=True))  # the input's gradient: training
    hidden = 1024  # batch 4 x 4H x H = 2^24: a step large enough at any batch
    assert 4 * 4 * hidden * hidden == kernels.LSTM_LARGE_STEP
    big = rnnkit.LSTM(2, hidden)
    big(torch.randn(2, 4, 2))
    big(torch.randn(2, 3, 2))
    # only where oneDNN has the wider vectors (AMD with AVX-512): elsewhere oneDNN's LSTM won, and keeps them all
    ours = "stack" if native.load().onednn_vectors_wider() else "aten"
    assert [label for label, _ in calls] == [ours, "aten", "aten", "aten", ours, ours, "aten"]


@pytest.mark.skipif(not NATIVE, reason="native loops not built")
def test_plain_lstm_keeps_onednns_loop_where_onednn_has_no_wider_vectors(calls, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    compiled = native.load()

    class NarrowerOneDNN:  # the loops as on an Intel or AVX2 CPU
        def __getattr__(self, name):
            return getattr(compiled, name)

        def onednn_vectors_wider(self):
            return False

    monkeypatch.setattr(kernels, "native_loops", lambda x: NarrowerOneDNN())
    assert kernels.prefers_aten(rnnkit.LSTM(5, 64), torch.randn(3, 32, 5), None)
    assert not kernels.prefers_aten(rnnkit.LSTM(5, 64), torch.randn(3, 2, 5), None)  # a batch of two: still ours


@pytest.mark.skipif(not NATIVE, reason="native loops not built")
def test_matrix_bound_plain_steps_go_to_aten_without_onednn_but_lengths_stay_on_the_loops(calls, monkeypatch):
    wide = rnnkit.GRU(3, 1024)  # batch x hidden = 32 x 1024 >= kernels.MATRIX_BOUND_STEP
    x = torch.randn(2, 32, 3)
    expected = ["stack" if gemm.applies(x) else "aten", "aten", "stack"]
    wide(x)  # oneDNN products: the loops win at every size
    monkeypatch.setattr(gemm, "_operator", lambda: None)
    wide(x)
    wide(x, lengths=torch.full((32,), 2))
    assert [label for label, _ in calls] == expected


def test_without_native_loops_aten_serves_standard_cells_and_python_loops_the_rest(calls, monkeypatch):
    monkeypatch.setenv("RNNKIT_NO_NATIVE", "1")
    assert native.load() is None
    x = torch.randn(4, 2, 5)
    rnnkit.GRU(5, 6)(x)
    rnnkit.LSTM(5, 6, layer_norm=True)(x)
    rnnkit.GRU(5, 6, zoneout=0.1)(x)
    assert calls == [("aten", None), ("stack", "rnnkit.kernels.loops"), ("stack", "rnnkit.kernels.loops")]


def test_zoneout_at_eval_keeps_a_layer_off_torchs_loops(calls, monkeypatch):
    # its expectation blends every step with the state before it, which torch's fused loops cannot
    monkeypatch.setenv("RNNKIT_NO_NATIVE", "1")
    x = torch.randn(4, 2, 5)
    with torch.no_grad():
        rnnkit.LSTM(5, 6).eval()(x)
        rnnkit.LSTM(5, 6, zoneout=0.1).eval()(x)
        rnnkit.GRU(5, 6, zoneout=0.1).eval()(x)
        rnnkit.RNN(5, 6, recurrent_dropout=0.1).eval()(x)  # off at eval: nothing per step
    loops = ("stack", "rnnkit.kernels.loops")
    assert calls == [("aten", None), loops, loops, ("aten", None)]


@pytest.mark.skipif(not NATIVE, reason="native loops not built")
def test_an_lstm_with_zoneout_infers_on_the_native_loops(calls, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    x = torch.randn(3, kernels.LSTM_ROWS_PER_THREAD * 2, 5)
    with torch.no_grad():
        rnnkit.LSTM(5, 64).eval()(x)  # inference: oneDNN's forward
        rnnkit.LSTM(5, 64, zoneout=0.1).eval()(x)
    assert [label for label, _ in calls] == ["aten", "stack"] and calls[1][1] != "rnnkit.kernels.loops"


def test_bfloat16_runs_without_native_loops(calls):
    layer = rnnkit.GRU(5, 6, dtype=torch.bfloat16)
    output, h_n = layer(torch.randn(4, 2, 5, dtype=torch.bfloat16))
    assert output.dtype == torch.bfloat16 and h_n.shape == (1, 2, 6)
    assert calls[0][0] == "aten"


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.GRU(5, 6, batch_first=True, num_layers=2, bidirectional=True),
        lambda: rnnkit.LSTM(5, 6, batch_first=True, layer_norm=True, bidirectional=True),
    ],
)
def test_layer_forward_matches_reference_path_with_batch_first_and_lengths(make):
    layer = make()
    x = torch.randn(3, 7, 5, requires_grad=True)  # batch first: the layer hands kernels a transposed view
    lengths = torch.tensor([7, 2, 5])
    output, h_n = layer(x, lengths=lengths)
    expected, expected_h, _ = layer._unroll_layers(x.transpose(0, 1), None, lengths, False)
    torch.testing.assert_close(output, expected.transpose(0, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_n, expected_h, atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad(output.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_empty_sequence_falls_back_to_unroll():
    assert kernels.run_fused(rnnkit.GRU(5, 6), torch.randn(0, 2, 5), None, None) is None
    output, h_n = rnnkit.GRU(5, 6)(torch.randn(0, 2, 5))
    assert output.shape == (0, 2, 6) and h_n.shape == (1, 2, 6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(5, 8, num_layers=3, proj_size=4, dropout=0.4, bidirectional=True),  # aten, native or not
        lambda: rnnkit.GRU(5, 6, num_layers=2, dropout=0.4),
        lambda: rnnkit.RNN(5, 6, num_layers=2, dropout=0.4, bidirectional=True),
    ],
)
@pytest.mark.parametrize("no_native", [False, True])
def test_aten_with_lengths_draws_dropout_between_layers_as_the_reference_path(make, no_native, calls, monkeypatch):
    # the packed loop drew its own masks over the packed rows: a seeded run differed from the reference by up to 1.8
    if no_native:
        monkeypatch.setenv("RNNKIT_NO_NATIVE", "1")
    layer = make()
    x = torch.randn(9, 4, 5, requires_grad=True)
    lengths = torch.tensor([9, 3, 7, 1])
    torch.manual_seed(3)
    output, h_n = layer(x, lengths=lengths)
    torch.manual_seed(3)
    expected, expected_h, _ = layer(x, lengths=lengths, return_trace=True)
    if no_native or layer.proj_size:
        assert calls[0][0] == "aten"
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_n, expected_h, atol=1e-5, rtol=1e-5)
    grad_output = torch.randn_like(output)
    (grad,) = torch.autograd.grad(output, x, grad_output)
    (expected_grad,) = torch.autograd.grad(expected, x, grad_output)
    torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)
