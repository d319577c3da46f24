"""The fused kernels' backward passes run once: no graph of their own gradients is recorded.

``torch.autograd.function.once_differentiable`` marks that, but it raises only when the incoming gradients
themselves need gradients; a gradient penalty (``autograd.grad(out.sum(), x, create_graph=True)``, then a
backward through that gradient) feeds it constants, and the second derivative then silently lacks the
recurrence. Where a graph could be recorded (grad mode is on inside a backward exactly when
``create_graph=True`` asked for one, which ``torch.func.grad`` and ``vjp`` always do), :func:`run_backward`
runs the pass as a Function of its own, :class:`_Backward`, whose own backward refuses. Its result is exact and
usable, so ``torch.func.grad`` works; only differentiating it again fails, with a clear error. Being a
Function, it also has torch.func unwrap its tensors before they reach the native loops, and its ``vmap`` rule
runs the pass once per mapped slice (``torch.func.jacrev`` maps the backward over rows of the Jacobian).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnkit.errors import RnnkitError
from rnnkit.kernels import transforms


class _Backward(torch.autograd.Function):
    """``run(*tensors)``, a fused kernel's backward pass, differentiable zero times."""

    @staticmethod
    def forward(run: Callable, *tensors):
        return run(*tensors)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RnnkitError(
            "rnnkit's fused recurrent kernels are differentiable once; for second derivatives "
            "(create_graph=True) run the layer with return_trace=True, which unrolls its cells in PyTorch."
        )

    @staticmethod
    def vmap(info, in_dims, run: Callable, *tensors):
        # the native loops take plain tensors: one pass per slice of the mapped dimension, stacked
        passes = [
            _Backward.apply(
                run, *(t if dim is None else t.select(dim, i) for t, dim in zip(tensors, in_dims[1:], strict=True))
            )
            for i in range(info.batch_size)
        ]
        outputs = tuple(None if parts[0] is None else torch.stack(parts) for parts in zip(*passes, strict=True))
        return outputs, tuple(None if output is None else 0 for output in outputs)


def run_backward(run: Callable, *tensors) -> tuple:
    """``run(*tensors)``: a Function's backward pass, the tuple of its gradients (``None`` for those not asked).
    ``tensors`` start with the incoming gradients.

    Called directly in an ordinary backward (grad mode off, no torch.func transform); else as :class:`_Backward`.
    """
    if torch.is_grad_enabled() or transforms.active():
        return _Backward.apply(run, *tensors)
    if any(t is not None and transforms.legacy_batched(t) for t in tensors[:2]):
        raise RnnkitError(
            "rnnkit's fused recurrent kernels cannot take torch.autograd.grad's is_grads_batched=True (its "
            "prototype vmap); map the backward with torch.func.vmap over torch.func.vjp, or use torch.func.jacrev."
        )
    return run(*tensors)
