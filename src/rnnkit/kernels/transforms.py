"""Which torch.func transforms surround a call, for the kernels that cannot run under all of them.

The fused kernels' Functions (:mod:`rnnkit.kernels.recurrence`) serve one level of ``torch.func.grad``, ``vjp``
and ``jacrev`` (and ``functional_call`` with them, as in meta-learning): torch.func hands their forward plain
tensors, and their backward runs as a Function too (:mod:`rnnkit.kernels.differentiable_once`). The native loops
cannot take ``vmap``'s batched tensors, the kernels have no forward-mode rule (``jvp``, ``jacfwd``, ``hessian``),
and they differentiate once (a ``grad`` of a ``grad``): under those the layers unroll their cells in PyTorch,
which torch.func maps and differentiates to any order, with the same numbers.

torch.func needs those Functions in the ``forward`` + ``setup_context`` style, which torch calls more slowly than
the combined ``forward(ctx, ...)`` style: it binds ``forward``'s signature with ``inspect`` and calls
``setup_context`` apart, about 15 us more per call and 15 us more per backward, a tenth of a small layer's training
step (an RNN at (batch, steps, input, hidden) = (32, 24, 1, 25): 0.41 ms against 0.37, one thread). So outside
torch.func :func:`apply` runs each Function through a twin in the combined style, made of the same three methods.

torch has no public query for the active transforms; this reads its functorch interpreter stack.
"""

from __future__ import annotations

import functools

import torch

_functorch = torch._C._functorch


def active() -> bool:
    """Whether any torch.func transform surrounds this call (a tenth of a microsecond when none does)."""
    return _functorch.peek_interpreter_stack() is not None


def legacy_batched(t: torch.Tensor) -> bool:
    """Whether ``t`` is batched by torch's prototype vmap (``torch.autograd.grad(is_grads_batched=True)``), which
    has no rule for custom Functions and no interpreter on the stack."""
    return _functorch.is_legacy_batchedtensor(t)


def beyond_one_gradient() -> bool:
    """Whether a transform other than a single ``grad``/``vjp`` level is active: ``vmap``, ``jvp``,
    ``functionalize``, or one ``grad`` within another."""
    if not active():
        return False
    levels = _functorch.get_interpreter_stack()
    return len(levels) > 1 or levels[0].key() != _functorch.TransformType.Grad


def apply(function: type[torch.autograd.Function], *inputs):
    """``function.apply(*inputs)`` for a Function in the ``setup_context`` style; outside torch.func through its
    combined-style twin, which computes the same and records the same backward, faster."""
    if active():
        return function.apply(*inputs)
    return _combined(function).apply(*inputs)


@functools.cache
def _combined(function: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """``function`` in the combined style: its ``forward``, then its ``setup_context`` on the same ``ctx``."""

    def forward(ctx, *inputs):
        output = function.forward(*inputs)
        function.setup_context(ctx, inputs, output)
        return output

    return type(function.__name__, (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(function.backward),
    })  # fmt: skip
