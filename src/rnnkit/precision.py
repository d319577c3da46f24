"""Mixed precision for the trainer: ``fp32``, ``bf16`` (CPU and CUDA) or ``fp16`` (CUDA only).

The parameters, their gradients and the optimizer state stay in fp32 ("master weights"); only the forward
pass runs under :func:`torch.autocast`, which casts the inputs of matrix products and of the fused recurrent
loops (``torch.lstm``, ``torch.gru``) to the lower precision and keeps reductions and losses in fp32.

bf16 has fp32's exponent range, so gradients cannot underflow and no loss scaling is needed. On CPUs with
AVX512-BF16 or AMX its matrix products run 2-4x faster than fp32 (measured here: a 2048 x 2048 product at
952 against 226 GFLOP/s on a 2-core Zen 4; a 2 x 512 LSTM forward+backward 1.7x faster). Elsewhere (AVX2
only) bf16 is emulated and slower than fp32 (a 2048 x 2048 product: 64 GFLOP/s fp32 on a 2-core EPYC), and
oneDNN has no bf16 LSTM there, so rnnkit runs that loop in fp32 (:mod:`rnnkit.kernels.aten`); it still
trains correctly, for tests and for checking a recipe before it goes to a bf16 machine.

fp16 has 5 exponent bits: small gradients flush to zero unless the loss is scaled up before the backward
pass and the gradients scaled back before the update, the job of :class:`torch.amp.GradScaler`, which also
skips steps whose gradients overflowed. CPUs have no fast fp16 products, so fp16 is refused there.
"""

from __future__ import annotations

import contextlib

import torch

from rnnkit.errors import RnnkitError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run, in one line."""
    if precision not in PRECISIONS:
        raise RnnkitError(f"Unknown precision {precision!r}. Select from {', '.join(PRECISIONS)}.")
    if precision == "fp16" and device.type != "cuda":
        raise RnnkitError("--precision fp16 needs a CUDA GPU; on the CPU use --precision bf16.")


def autocast(precision: str, device: torch.device):
    """The forward-pass context for ``precision``: autocast to bf16/fp16, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16; ``None`` otherwise, so fp32 and bf16 steps pay for no scaler calls."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
