r"""Matrix products for the fused kernels, through oneDNN where torch ships it.

``torch.mm`` on the CPU calls MKL, which on AMD processors runs its AVX2 code even where the CPU has AVX-512;
torch's oneDNN ``linear`` (the library behind ``torch.nn.LSTM``'s fused CPU loop) uses what the CPU has. On the
2-core AMD EPYC (Zen 4) of ``bench/`` a single-thread fp32 product runs at about 105 GFLOP/s through MKL and
160-245 GFLOP/s through oneDNN, with the same fp32 rounding. The kernels' large products (input projection and
its input gradient) therefore go through :func:`mm` and :func:`linear`, and the native loops reach oneDNN for
their wide per-step products the same way (``csrc/common.h``, which sends small steps to dot products and
BLAS, or oneDNN's micro-kernel). Weight gradients, whose left factor is a transposed view, are the exception:
the linear operator would first copy it into rows; they go to oneDNN's matmul, which reads the view in place,
where oneDNN has wider vectors than MKL, else to MKL (see :func:`mm`).

On Intel CPUs MKL runs its best code, and there the per-call cost of the boxed oneDNN operator loses: on a
2-core Xeon (Sapphire Rapids) the RNN at (32, 100, 128, 256) ran forward+backward at 0.75x torch.nn through
oneDNN and 1.0x through MKL, the GRU at (128, 35, 650, 650) at 0.83x and 1.0x. So on Intel CPUs these
products use MKL (the loops' per-step products too, from 32 rows up: ``csrc/common.h``).

Everything falls back to ``torch.mm`` / ``F.linear`` where the oneDNN operator is missing, on Intel CPUs, for
other dtypes than fp32, off the CPU, or with ``RNNKIT_NO_ONEDNN=1``.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.kernels import native, transforms
from rnnkit.kernels.differentiable_once import run_backward


def intel_cpu() -> bool:
    """Whether this is an Intel CPU (``vendor_id`` in /proc/cpuinfo; False where that file is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line for line in info)
    except OSError:
        return False


@functools.cache
def _operator():
    """The oneDNN linear operator where the products should use it, else ``None``."""
    if os.environ.get("RNNKIT_NO_ONEDNN", "") not in ("", "0") or intel_cpu():
        return None
    return onednn_linear()


@functools.cache
def onednn_linear():
    """torch's oneDNN linear operator, or ``None`` where this torch build lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


def applies(t: Tensor) -> bool:
    """True where :func:`mm` reaches oneDNN for ``t``'s device and dtype."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and _operator() is not None


# Below this many multiply-adds a product costs oneDNN more than MKL: the boxed operator's set-up (about 40 us
# per call, where it reorders the weight) outweighs its faster kernel. 2-core Zen 3 (AVX2), 2 threads, MKL's
# time over oneDNN's: 0.62 at 768 x 25 x 100 (a forecaster's input projection), 0.77-0.90 from 1.3e7 to
# 5.2e7; from about 3e8 on (the bench's input projections) the two trade places within 10%.
SMALL_PRODUCT = 1 << 24


# From this many multiply-adds a transposed-left product (a weight gradient) goes to oneDNN's matmul where oneDNN
# has the wider vectors. 2-core Zen 4, both threads, alone: 1.04-1.18x MKL's rate at the weight gradients of the
# bench shapes (2600 x 4480 @ 4480 x 650: 206 GFLOP/s against 174). Inside the layers' forward+backward (in-process
# A/B, 9 interleaved repeats) only the largest gained: LSTM and GRU at (128, 35, 650, 650), products of 7.6e9 and
# 5.7e9, 1.10x and 1.07x; 3.4e9 (LSTM at (16, 200, 256, 512)) 0.99x, 8.4e8 1.02x, 2.1e8 0.95x.
LARGE_WEIGHT_GRADIENT = 1 << 32


def _onednn_pays(x: Tensor, weight: Tensor) -> bool:
    """Whether ``x weight^T`` should go to oneDNN: it applies, and the product is large enough."""
    return applies(x) and x.numel() * weight.shape[0] >= SMALL_PRODUCT


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x weight^T + bias`` for 2-d ``x``."""
    if _onednn_pays(x, weight):
        return _operator()(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


def product(x: Tensor, weight: Tensor) -> Tensor:
    """``x weight^T`` for 2-d ``x``, outside autograd (a Function's own forward), through oneDNN where it pays."""
    return _linear(x, weight, None)


def mm(a: Tensor, b: Tensor) -> Tensor:
    r"""``a @ b`` for 2-d tensors (oneDNN takes ``b`` as a linear layer's weight ``b^T``).

    A transposed left operand (a weight gradient :math:`\partial Y^\top X`) does not go to the linear
    operator, which wants its rows contiguous: the copy cost more than MKL's slower kernel (2-core Zen 4: MKL
    took 0.4-1.0x oneDNN's time, copy included, for the RNN and GRU weight gradients of every bench shape).
    Where oneDNN has wider vectors than MKL (AMD with AVX-512), oneDNN's matmul reads the largest in place (the
    native module's ``onednn_mm``; see :data:`LARGE_WEIGHT_GRADIENT`); elsewhere MKL does.
    """
    if a.numel() == 0 or b.numel() == 0:
        return torch.mm(a, b)  # oneDNN builds no primitive for an empty factor (a one-step sequence's split)
    if not applies(a) or a.is_contiguous():
        return _linear(a, b.t(), None)
    if a.numel() * b.shape[1] >= LARGE_WEIGHT_GRADIENT:  # first: a small product never loads (or builds) the module
        compiled = native.load()
        if compiled is not None and compiled.onednn_vectors_wider():
            return compiled.onednn_mm(a, b)
    return torch.mm(a, b)


class _Linear(torch.autograd.Function):
    r"""``y = x W^T + b`` with every product of forward and backward through :func:`mm`:

    :math:`\partial x = \partial y\, W`, :math:`\partial W = \partial y^\top x`,
    :math:`\partial b = \sum \partial y`.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])
        return _linear(rows, weight, bias).view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad: Tensor):
        return run_backward(functools.partial(_linear_backward, ctx), grad, *ctx.saved_tensors)


def _linear_backward(ctx, grad: Tensor, x: Tensor, weight: Tensor):
    """:class:`_Linear`'s gradients ``(dx, dw, db)``."""
    rows, grad_rows = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
    dx = mm(grad_rows, weight).view(x.shape) if ctx.needs_input_grad[0] else None
    dw = mm(grad_rows.t(), rows) if ctx.needs_input_grad[1] else None
    db = grad_rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` (``(..., in) -> (..., out)``) whose products, forward and backward, use oneDNN where it applies."""
    if not _onednn_pays(x, weight):
        return F.linear(x, weight, bias)  # torch's own backward, without a Python Function's overhead
    return transforms.apply(_Linear, x, weight, bias)
