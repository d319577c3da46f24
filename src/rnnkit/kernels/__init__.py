"""Fast paths for the unfolding, chosen automatically by the layers.

Each kernel gives the numbers of :func:`rnnkit.unroll` over the same cells (tests hold it to that in values
and gradients); :func:`run_fused` returns ``None`` when no kernel applies, and the layer unrolls its cells.

- :mod:`rnnkit.kernels.aten`: PyTorch's own fused loops (``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh``;
  oneDNN on CPU, cuDNN on GPU), fed with rnnkit's parameters.
"""

from __future__ import annotations

from torch import Tensor

from rnnkit.kernels import aten


def run_fused(layer, x: Tensor, hx, lengths: Tensor | None):
    """``(output (L, N, D*H_out), h_n)`` from the fastest applicable kernel, or ``None``."""
    if aten.applies(layer):
        return aten.run(layer, x, hx, lengths)
    return None
