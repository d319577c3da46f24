"""The fused kernels' backward passes run once: no graph of their own gradients is recorded.

``torch.autograd.function.once_differentiable`` marks that, but it raises only when the incoming gradients
themselves need gradients; a gradient penalty (``autograd.grad(out.sum(), x, create_graph=True)``) feeds it
constants, and the second derivative then silently lacks the recurrence. Grad mode is on inside a backward
exactly when ``create_graph=True`` asked for that graph, so :func:`differentiable_once` refuses it there.
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from rnnkit.errors import RnnkitError


def differentiable_once(backward):
    """``once_differentiable``, and a clear error for ``create_graph=True`` instead of wrong second derivatives."""
    inner = once_differentiable(backward)

    @functools.wraps(backward)
    def guarded(ctx, *grads):
        if torch.is_grad_enabled():
            raise RnnkitError(
                "rnnkit's fused recurrent kernels are differentiable once; for second derivatives "
                "(create_graph=True) run the layer with return_trace=True, which unrolls its cells in PyTorch."
            )
        return inner(ctx, *grads)

    return guarded
