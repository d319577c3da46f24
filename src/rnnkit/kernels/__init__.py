"""Fast paths for the unfolding, chosen automatically by the layers.

Each kernel gives the numbers of :func:`rnnkit.unroll` over the same cells (tests hold it to that in values
and gradients); :func:`run_fused` returns ``None`` when no kernel applies, and the layer unrolls its cells.

- :mod:`rnnkit.kernels.stack` with :mod:`rnnkit.kernels.recurrence`: rnnkit's own fused loops with a
  hand-written backward (not differentiable twice), for RNN, GRU, LSTM and layer-norm LSTM cells, variable
  lengths (sorted, packed, shrinking batch), recurrent dropout and zoneout. The loops are native
  (:mod:`rnnkit.kernels.native`, C++) for fp32/fp64 on the CPU, else the
  pure-PyTorch :mod:`rnnkit.kernels.loops`.
- :mod:`rnnkit.kernels.streaming`: :func:`step`, one step of a whole layer for
  :meth:`rnnkit.layers.RecurrentLayer.step` (one native call per step at inference).
- :mod:`rnnkit.kernels.aten`: PyTorch's own fused loops (``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh``;
  oneDNN on CPU, cuDNN on GPU), fed with rnnkit's parameters.

Under ``torch.jit.trace`` the aten loops run, which the tracer records as one operation each, or else the cells
unroll (:mod:`rnnkit.kernels.capture`): it cannot see the native loops. Under ``torch.compile`` a layer's
recurrence runs eagerly, outside the graph, as torch.nn's RNN modules do.

Under ``torch.func``: one level of ``grad``, ``vjp`` or ``jacrev`` runs the same kernels (their Functions are
written for it, and their backward is differentiable once); ``vmap``, ``jvp``/``jacfwd``/``hessian`` and a
``grad`` of a ``grad`` unroll the cells instead (:mod:`rnnkit.kernels.transforms`).

Choice (measured by ``bench/kernels.py`` on a 2-core CPU): on GPUs aten (cuDNN) wherever it applies (the
rnnkit loops run there only through their PyTorch twin, untested on CUDA); on the CPU the native loops for
RNN, GRU and layer-norm LSTM, and for LSTM with lengths, recurrent dropout or zoneout, a batch of one or
two, or small steps (batch x 4H x H under 2^18); a plain LSTM with larger steps trains on them too from 16
rows a thread or 2^24 multiply-adds a step where oneDNN has wider vectors than MKL (AMD with AVX-512), but
otherwise, and in inference, runs oneDNN's fused loop (aten), whose forward is the faster. The loops' large
matrix products go through oneDNN where torch ships it and the product is large (:mod:`rnnkit.kernels.gemm`),
their per-step products through dot products, BLAS or oneDNN by size, or oneDNN's micro-kernel where oneDNN has
wider vectors than MKL (``csrc/common.h``); with 16 batch rows a thread and more, each thread runs the time loop
for its own block of the batch, with no hand-off between threads at any step. Their large outputs (a mebibyte
and up) come from a pool of blocks kept for reuse, so a training step does not page-fault them in again
(``csrc/buffer_pool.h``; :func:`release_buffers` frees the idle ones). Without native loops
(``RNNKIT_NO_NATIVE=1``, no compiler, bf16), aten wherever it applies, else the PyTorch twin.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels import aten, capture, gemm, loops, native, onnx_nodes, stack, transforms
from rnnkit.kernels.recurrence import kind_of
from rnnkit.kernels.streaming import step


def native_loops(x: Tensor):
    """The C++ loops when they serve ``x`` (fp32/fp64 on the CPU and built), else ``None``."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    return native.load()


# Measured by bench/kernels.py (2-core EPYC): with oneDNN's products (rnnkit.kernels.gemm) the native RNN and
# GRU loops beat torch's at every bench shape (about 2x at N*H = 83,200); with MKL's products alone they lose
# once each step's products are large (N*H = 83,200: GRU 0.90x, RNN 0.97x).
# Without oneDNN (Intel CPUs use MKL, see rnnkit.kernels.gemm) wide plain steps therefore go to aten.
MATRIX_BOUND_STEP = 32_768  # batch x hidden from which a plain RNN/GRU step is left to aten without oneDNN
# A plain LSTM: oneDNN's fused LSTM (aten) against the native loops, forward+backward, 2-core Zen 4, in-process, 12
# interleaved repeats, at (batch, steps, input, hidden). The native loops win from 16 rows a thread: 0.998-1.59x at 15
# shapes from (32, 50, 32, 64) to (128, 35, 650, 650), e.g. 1.33x at (32, 100, 128, 256), 1.10x at (128, 35, 650, 650),
# the tie at (32, 50, 64, 128). Below, with fewer rows a thread, they win where a step's product is large, from 2^24
# multiply-adds (batch x 4H x H): 1.08-1.32x at (4, 100, 512, 1024), (8, 50, 512, 1024), (16, 100, 256, 512), (16, 200,
# 256, 512), (20, 35, 650, 650), (24, 50, 256, 512), 0.97-1.14x at (12, 50, 650, 650); and lose under it: 0.91-0.98x at
# (8, 100, 128, 256), (8, 100, 256, 512), (16, 100, 64, 128), (16, 50, 64, 128), (24, 100, 64, 128) (but 0.97-1.04x at
# (16, 100, 128, 256)). Later runs include the input product in the loop's steps (rnnkit.kernels.recurrence). This
# host's noise is of the same size: (64, 50, 64, 128) measured 0.97-1.12x in four runs within minutes. Forward alone
# (inference, no gradient), oneDNN's loop wins at every shape (0.88-0.97x), so there it runs. On Zen 3 (AVX2), without
# oneDNN's micro-kernel and the joint weight gradient, oneDNN won at every plain shape (0.82-0.94x), so there, and on
# Intel CPUs (unmeasured), a plain LSTM stays with oneDNN's.
LSTM_ROWS_PER_THREAD = 16  # rows a thread from which a plain LSTM trains on the native loops
LSTM_LARGE_STEP = 1 << 24  # multiply-adds of a plain LSTM step, batch x 4H x H, from which it does at any batch
# At a batch of one or two, a step's products are matrix-vector products whose cost is per-call set-up and
# reading W_hh from memory; the native loops' threaded dot products keep each thread's slice of W_hh in its own
# cache (csrc/common.h), and there they beat oneDNN's LSTM too (2-core Zen 3, forward+backward: 1.68x at
# (1, 1000, 32, 64), 1.36x at (1, 500, 64, 256), 1.21x at (1, 300, 256, 1024); at batch 4 1.04x, at 8 0.70-0.88x).
# On Zen 4, where two rows go through oneDNN's micro-kernel: 1.03-1.12x at (2, 200, 64, 256), (2, 200, 128, 512),
# (2, 150, 256, 1024), against 0.80-1.01x with the dot products.
FEW_ROWS = 2  # batch up to which a plain LSTM runs on the native loops
# Small steps at any batch: where a step's product is under 2^18 multiply-adds, oneDNN's per-step overhead
# outweighs its kernel (2-core Zen 3, forward+backward, 2 threads, median of 21 interleaved runs: 1.12x at
# (32, 24, 1, 25), a Darts-sized forecaster; 1.32x at (8, 24, 1, 25), 1.11x at (64, 24, 1, 25), 1.13x at
# (32, 24, 8, 32), 1.18x at (4, 100, 8, 64); 1.00x at (16, 50, 4, 64), the threshold; 0.82x at (8, 50, 8, 128))
SMALL_STEP = 1 << 18  # multiply-adds of a plain LSTM step, batch x 4H x H, below which the native loops run


def prefers_aten(layer, x: Tensor, lengths: Tensor | None) -> bool:
    """True where torch's own fused loop is the faster of the two for this call."""
    if lengths is not None or not aten.applies(layer):
        return False  # variable lengths: the shrinking-batch loops beat a packed batch
    if kind_of(layer.cells[0]) == "lstm":
        # under autocast torch's loop gives the autocast dtype, as torch.nn.LSTM does
        compiled = native_loops(x)
        if torch.is_autocast_enabled(x.device.type) or compiled is None:
            return True
        batch, hidden = x.shape[1], layer.hidden_size
        step = batch * 4 * hidden * hidden
        if batch <= FEW_ROWS or step < SMALL_STEP:
            return False
        # measured where oneDNN has the wider vectors (AMD with AVX-512); elsewhere oneDNN's LSTM won
        training = torch.is_grad_enabled() and (x.requires_grad or layer.cells[0].weight_hh.requires_grad)
        wide = batch >= LSTM_ROWS_PER_THREAD * torch.get_num_threads() or step >= LSTM_LARGE_STEP
        return not (training and wide and compiled.onednn_vectors_wider())
    return not gemm.applies(x) and x.shape[1] * layer.hidden_size >= MATRIX_BOUND_STEP


def release_buffers() -> None:
    """Free the idle blocks the native loops keep for their next call's outputs (at most 1 GiB; as
    ``torch.cuda.empty_cache`` does for the CUDA allocator's). Blocks that tensors still use are untouched."""
    compiled = native.load()
    if compiled is not None:
        compiled.release_idle_buffers()


def run_fused(layer, x: Tensor, hx, lengths: Tensor | None):
    """``(output (L, N, D*H_out), h_n)`` from the fastest applicable kernel, or ``None``."""
    if capture.active():  # a graph being recorded: what it can record (rnnkit.kernels.capture)
        if torch.onnx.is_in_onnx_export():
            return onnx_nodes.run(layer, x, hx, lengths)  # ONNX's own LSTM / GRU / RNN nodes (rnnkit.export)
        return capture.run(layer, x, hx, lengths)
    if transforms.beyond_one_gradient():
        return None  # vmap, jvp or a second derivative under torch.func: the cells unroll (rnnkit.kernels.transforms)
    if x.shape[0] == 0 or x.shape[1] == 0:
        return None  # nothing to loop over: the reference path returns the empty output and the initial state
    if prefers_aten(layer, x, lengths):  # first: a plain LSTM's call then skips the native loops' checks
        return aten.run(layer, x, hx, lengths)
    compiled = native_loops(x)
    if stack.applies(layer, x) and compiled is not None:
        return stack.run(layer, x, hx, lengths, compiled)
    if aten.applies(layer):
        return aten.run(layer, x, hx, lengths)
    if stack.applies(layer, x):
        return stack.run(layer, x, hx, lengths, loops)
    return None


__all__ = ["native_loops", "release_buffers", "run_fused", "step"]
