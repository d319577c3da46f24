"""oneDNN products: the same numbers as torch.mm / F.linear in values and gradients, and the fallback."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from rnnkit.kernels import gemm, native

# both product paths, whichever this CPU picks: oneDNN (where torch has it) and torch.mm / F.linear
PATHS = ["onednn", "torch"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    if request.param == "onednn" and gemm.onednn_linear() is None:
        pytest.skip("this torch build has no oneDNN linear")
    monkeypatch.setattr(gemm, "_operator", gemm.onednn_linear if request.param == "onednn" else lambda: None)
    monkeypatch.setattr(gemm, "SMALL_PRODUCT", 0)  # the tests' small products take the path under test
    monkeypatch.setattr(gemm, "LARGE_WEIGHT_GRADIENT", 0)  # and so do its transposed-left ones
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("m", "k", "n"), [(7, 5, 3), (64, 33, 128), (300, 40, 17)])
def test_mm_matches_torch_for_plain_and_transposed_operands(dtype, m, k, n, path):
    generator = torch.Generator().manual_seed(m)
    a, b = torch.randn(m, k, generator=generator, dtype=dtype), torch.randn(k, n, generator=generator, dtype=dtype)
    assert_close(gemm.mm(a, b), a @ b, rtol=1e-5, atol=1e-5)
    left = torch.randn(k, m, generator=generator, dtype=dtype).t()  # a weight gradient's dY^T: a transposed view
    assert_close(gemm.mm(left, b), left @ b, rtol=1e-5, atol=1e-5)
    assert gemm.mm(left, b).is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_onednn_matmul_reads_a_transposed_view_and_gives_torch_mm(dtype):
    compiled = native.load()
    if compiled is None:
        pytest.skip("no native build")
    generator = torch.Generator().manual_seed(0)
    dy, x = (
        torch.randn(200, 70, generator=generator, dtype=dtype),
        torch.randn(200, 33, generator=generator, dtype=dtype),
    )
    product = compiled.onednn_mm(dy.t(), x)  # fp64: torch.mm's own
    assert product.shape == (70, 33) and product.dtype == dtype and product.is_contiguous()
    assert_close(product, dy.t() @ x, rtol=1e-5, atol=1e-4)


def test_mm_with_an_empty_inner_dimension_gives_zeros(path):
    # a one-step sequence splits its recurrent weight gradient into an empty product and a full one
    left, right = torch.randn(0, 12).t(), torch.randn(0, 5)
    assert torch.equal(gemm.mm(left, right), torch.zeros(12, 5))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_f_linear_in_values_and_gradients(bias, path):
    torch.manual_seed(0)
    x = torch.randn(6, 4, 9, requires_grad=True)
    weight = torch.randn(12, 9, requires_grad=True)
    b = torch.randn(12, requires_grad=True) if bias else None
    ours, reference = gemm.linear(x, weight, b), F.linear(x, weight, b)
    assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(reference)
    inputs = [x, weight] + ([b] if bias else [])
    for got, expected in zip(
        torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(reference, inputs, grad), strict=True
    ):
        assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_small_products_go_to_torch_with_its_own_backward(monkeypatch):
    if gemm.onednn_linear() is None:
        pytest.skip("this torch build has no oneDNN linear")
    monkeypatch.setattr(gemm, "_operator", gemm.onednn_linear)
    weight = torch.randn(100, 25, requires_grad=True)
    below, at = gemm.SMALL_PRODUCT // (100 * 25), -(-gemm.SMALL_PRODUCT // (100 * 25))
    small = gemm.linear(torch.randn(below - 1, 25), weight)
    large = gemm.linear(torch.randn(at, 25), weight)
    assert type(small.grad_fn).__name__ != "_LinearBackward"  # F.linear's own autograd
    assert type(large.grad_fn).__name__ == "_LinearBackward"


def test_fp64_and_disabled_onednn_fall_back_to_torch(monkeypatch):
    assert not gemm.applies(torch.zeros(2, 2, dtype=torch.float64))
    monkeypatch.setattr(gemm, "_operator", lambda: None)
    assert not gemm.applies(torch.zeros(2, 2))
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert_close(gemm.mm(a, b), a @ b)


def test_intel_cpus_use_mkl(monkeypatch):
    """On Intel CPUs MKL's products beat the boxed oneDNN call (see rnnkit.kernels.gemm), elsewhere oneDNN wins."""
    monkeypatch.delenv("RNNKIT_NO_ONEDNN", raising=False)
    for intel in (True, False):
        monkeypatch.setattr(gemm, "intel_cpu", lambda intel=intel: intel)
        gemm._operator.cache_clear()
        assert (gemm._operator() is None) == (intel or gemm.onednn_linear() is None)
    gemm._operator.cache_clear()
