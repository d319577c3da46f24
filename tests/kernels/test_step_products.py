"""Every way the native loops form a step's product (csrc/common.h) gives the unroll's numbers.

A step's ``h @ W_hh^T`` (and the backward's ``dgh @ W_hh``) is formed by dot products for up to 8 rows (split
between the threads once ``W_hh`` is large), BLAS on raw pointers above that, or oneDNN for wide steps (a large
LSTM's above 16 rows too); where oneDNN has wider vectors than MKL (AMD with AVX-512), its micro-kernel takes fp32
steps of two rows and more, B in column panels and in chunks of its depth. With lengths the active batch shrinks, so
one call crosses from one way to the next.
"""

from __future__ import annotations

import os

import pytest
import torch

import rnnkit
from rnnkit.kernels import native, stack

NATIVE = native.load()
pytestmark = pytest.mark.skipif(NATIVE is None, reason="no native build")

LAYERS = {"rnn": rnnkit.RNN, "gru": rnnkit.GRU, "lstm": rnnkit.LSTM}
# (batch, hidden, lengths): threaded dot products; BLAS shrinking to dot products; wide steps, through oneDNN for
# the LSTM in fp32 (else BLAS), shrinking to 6 rows; deep and wide steps whose micro-kernel products (where they
# apply) split their column panels between the threads, end in a partial panel and take B in two chunks of depth
SHAPES = {
    "threaded_dots": (1, 160, None),
    "blas_then_dots": (12, 16, [6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1]),
    "wide": (20, 256, [6] * 6 + [2] * 4 + [1] * 10),
    "deep_panels": (12, 600, [6] * 4 + [4] * 4 + [2] * 2 + [1] * 2),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", LAYERS)
def test_each_product_path_matches_unroll(kind, shape, dtype):
    batch, hidden, lengths = SHAPES[shape]
    torch.manual_seed(0)
    layer = LAYERS[kind](8, hidden, dtype=dtype)
    x = torch.randn(6, batch, 8, dtype=dtype, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)

    def run_and_grad(run):
        output, h_n = run()
        h_n = (h_n,) if isinstance(h_n, torch.Tensor) else h_n
        loss = output.pow(2).sum() + sum((s * torch.linspace(-1, 1, hidden, dtype=dtype)).sum() for s in h_n)
        return output, h_n, torch.autograd.grad(loss, [x, *layer.parameters()])

    expected = run_and_grad(lambda: layer._unroll_layers(x, None, lengths, False)[:2])
    actual = run_and_grad(lambda: stack.run(layer, x, None, lengths, NATIVE))
    tolerance = {"atol": 1e-10, "rtol": 1e-10} if dtype == torch.float64 else {"atol": 2e-5, "rtol": 2e-5}
    torch.testing.assert_close(actual, expected, **tolerance)


def _amd_with_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            words = set(f.read().split())
    except OSError:
        return False
    return "AuthenticAMD" in words and "avx512f" in words


def test_micro_kernel_takes_the_steps_only_where_onednn_has_wider_vectors():
    if not _amd_with_avx512():
        assert not NATIVE.steps_through_brgemm()  # MKL has the widest vectors, or there is no AVX-512
    elif os.environ.get("RNNKIT_NO_ONEDNN", "0") == "0" and torch.__version__.startswith("2.13."):
        assert NATIVE.steps_through_brgemm()  # the pinned torch exports oneDNN's fp32 micro-kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("kind", LAYERS)
def test_saturated_gates_stay_finite(kind, dtype):
    # pre-activations of +-1e4: past exp's range in either precision, where a fast-math exp gives NaN
    torch.manual_seed(0)
    layer = LAYERS[kind](8, 16, dtype=dtype)
    x = 1e4 * torch.randn(5, 1, 8, dtype=dtype)
    expected, _ = layer._unroll_layers(x, None, None, False)[:2]
    actual, _ = stack.run(layer, x, None, None, NATIVE)
    torch.testing.assert_close(actual, expected)


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


# each thread's block of rows runs the whole time loop (csrc/common.h, for_row_blocks) from 32 rows on 2 threads:
# plain; with lengths, the blocks' active rows shrinking at different steps down to a few; with training noise
BLOCK_CASES = {
    "plain": ({}, None),
    "lengths": ({}, [9] * 6 + [7] * 10 + [5] * 10 + [2] * 8 + [1] * 6),
    "noise": ({"recurrent_dropout": 0.3, "zoneout": 0.2}, None),
}


# (dtype, hidden): each block's steps through BLAS; in fp32 and wide, through oneDNN on one thread a block where
# the CPU has wider vectors than MKL uses (AMD with AVX-512; elsewhere BLAS again)
BLOCK_WIDTHS = {"fp64_narrow": (torch.float64, 24), "fp32_wide": (torch.float32, 384)}


@pytest.mark.parametrize("width", BLOCK_WIDTHS)
@pytest.mark.parametrize("case", BLOCK_CASES)
@pytest.mark.parametrize("kind", LAYERS)
def test_row_blocks_on_their_own_threads_match_unroll(kind, case, width, two_threads):
    options, lengths = BLOCK_CASES[case]
    dtype, hidden = BLOCK_WIDTHS[width]
    torch.manual_seed(0)
    layer = LAYERS[kind](8, hidden, dtype=dtype, **options)
    x = torch.randn(9, 40, 8, dtype=dtype, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)

    def run_and_grad(run):
        torch.manual_seed(1)  # the same training noise on both paths
        output, h_n = run()
        h_n = (h_n,) if isinstance(h_n, torch.Tensor) else h_n
        loss = output.pow(2).sum() + sum((s * torch.linspace(-1, 1, hidden, dtype=s.dtype)).sum() for s in h_n)
        return output, h_n, torch.autograd.grad(loss, [x, *layer.parameters()])

    expected = run_and_grad(lambda: layer._unroll_layers(x, None, lengths, False)[:2])
    actual = run_and_grad(lambda: stack.run(layer, x, None, lengths, NATIVE))
    tolerance = 1e-10 if dtype == torch.float64 else 2e-5
    # a weight's gradient sums 360 steps' products in another order on each path: in fp32 an element near zero
    # may differ by the sum's rounding, so the absolute bound scales with the tensor's largest entry
    leaves = torch.utils._pytree.tree_leaves
    for got, want in zip(leaves(actual), leaves(expected), strict=True):
        scale = max(1.0, want.abs().max().item())
        torch.testing.assert_close(got, want, atol=tolerance * scale, rtol=tolerance)


# an LSTM splits its batch into row blocks from 8 rows a thread where oneDNN's micro-kernel takes its steps (16
# elsewhere, where this runs one block): 20 rows, shrinking to a few in each block
@pytest.mark.parametrize("lengths", [None, [9] * 4 + [6] * 6 + [3] * 6 + [1] * 4], ids=["plain", "lengths"])
def test_lstm_row_blocks_from_eight_rows_a_thread_match_unroll(lengths, two_threads):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(8, 384)
    x = torch.randn(9, 20, 8, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)

    def run_and_grad(run):
        output, (h_n, c_n) = run()
        loss = output.pow(2).sum() + (h_n * torch.linspace(-1, 1, 384)).sum() + c_n.sum()
        return output, h_n, c_n, torch.autograd.grad(loss, [x, *layer.parameters()])

    expected = run_and_grad(lambda: layer._unroll_layers(x, None, lengths, False)[:2])
    actual = run_and_grad(lambda: stack.run(layer, x, None, lengths, NATIVE))
    torch.testing.assert_close(actual, expected, atol=2e-5, rtol=2e-5)


# the layer-norm LSTM's loops split the batch into row blocks as the LSTM's do. fp64 holds the equations to 1e-10;
# in fp32 LayerNorm's backward scales rounding by 1/std of the rows, and here the fp32 unroll's own weight gradients
# are 3.3e-4 from the fp64 result (the fused loops' 4.0e-4), so fp32 is held to 2e-3
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("case", BLOCK_CASES)
def test_layer_norm_lstm_row_blocks_match_unroll(case, dtype, two_threads):
    options, lengths = BLOCK_CASES[case]
    torch.manual_seed(0)
    layer = rnnkit.LSTM(8, 96, layer_norm=True, dtype=dtype, **options)
    x = torch.randn(9, 40, 8, dtype=dtype, requires_grad=True)
    lengths = None if lengths is None else torch.tensor(lengths)

    def run_and_grad(run):
        torch.manual_seed(1)  # the same training noise on both paths
        output, (h_n, c_n) = run()
        loss = output.pow(2).sum() + (h_n * torch.linspace(-1, 1, 96, dtype=dtype)).sum() + c_n.sum()
        return output, h_n, c_n, torch.autograd.grad(loss, [x, *layer.parameters()])

    expected = run_and_grad(lambda: layer._unroll_layers(x, None, lengths, False)[:2])
    actual = run_and_grad(lambda: stack.run(layer, x, None, lengths, NATIVE))
    tolerance = 1e-10 if dtype == torch.float64 else 2e-3
    torch.testing.assert_close(actual, expected, atol=tolerance, rtol=tolerance)
