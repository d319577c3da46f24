"""The native loops' buffer pool (csrc/buffer_pool.h): large outputs reuse freed blocks, never live ones.

Buffers of a mebibyte and more come from the pool; a reused block still holds the last call's numbers, so every
loop must write each element it returns. Each kind runs twice at a size whose buffers are pooled, with
zoneout on (the loops read the zoneout mask) and with lengths (rows of shorter sequences), and must give the
unroll's numbers both times.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit import kernels
from rnnkit.kernels import native, stack

NATIVE = native.load()
pytestmark = pytest.mark.skipif(NATIVE is None, reason="no native build")

LAYERS = {
    "rnn": rnnkit.RNN,
    "gru": rnnkit.GRU,
    "lstm": rnnkit.LSTM,
    "layer_norm_lstm": lambda *args, **kwargs: rnnkit.LSTM(*args, layer_norm=True, **kwargs),
}
STEPS, BATCH, HIDDEN = 60, 24, 144  # the (60 * 24, 144) output alone is 1.6 MiB in fp64


def _fresh_pool():
    kernels.release_buffers()
    assert NATIVE.idle_buffer_bytes() == 0


@pytest.mark.parametrize("variant", ["plain", "lengths", "zoneout"])
@pytest.mark.parametrize("kind", LAYERS)
def test_reused_blocks_give_the_unrolls_numbers(kind, variant):
    _fresh_pool()
    torch.manual_seed(0)
    options = {"zoneout": 0.3} if variant == "zoneout" else {}
    layer = LAYERS[kind](8, HIDDEN, dtype=torch.float64, **options)
    x = torch.randn(STEPS, BATCH, 8, dtype=torch.float64, requires_grad=True)
    lengths = torch.randint(3 * STEPS // 4, STEPS + 1, (BATCH,)) if variant == "lengths" else None
    if lengths is not None:
        lengths[0] = STEPS

    def run_and_grad(run):
        torch.manual_seed(1)  # the same zoneout masks for both paths
        output, h_n = run()
        h_n = (h_n,) if isinstance(h_n, torch.Tensor) else h_n
        loss = output.pow(2).sum() + sum(s.sum() for s in h_n)
        return output, h_n, torch.autograd.grad(loss, [x, *layer.parameters()])

    expected = run_and_grad(lambda: layer._unroll_layers(x, None, lengths, False)[:2])
    for _ in range(2):
        actual = run_and_grad(lambda: stack.run(layer, x, None, lengths, NATIVE))
        torch.testing.assert_close(actual, expected, atol=1e-10, rtol=1e-10)
        del actual
        assert NATIVE.idle_buffer_bytes() > 0  # the first call's blocks came back for the second


def test_a_live_block_is_never_handed_out_and_a_freed_one_is():
    _fresh_pool()
    xp = torch.randn(STEPS * BATCH, HIDDEN, dtype=torch.float64)
    h0, w_hh = torch.zeros(BATCH, HIDDEN, dtype=torch.float64), 0.05 * torch.randn(HIDDEN, HIDDEN, dtype=torch.float64)

    def forward():
        return NATIVE.rnn_forward(xp, h0, w_hh, None, [BATCH] * STEPS, None, None, False)[0]

    first = forward()
    kept = first.clone()
    second = forward()
    assert second.data_ptr() != first.data_ptr()
    torch.testing.assert_close(first, kept)  # the live output was not overwritten
    address = second.data_ptr()
    del second
    assert NATIVE.idle_buffer_bytes() >= STEPS * BATCH * HIDDEN * 8
    assert forward().data_ptr() == address
    kernels.release_buffers()
    assert NATIVE.idle_buffer_bytes() == 0


def test_a_block_serves_requests_up_to_a_quarter_smaller():
    _fresh_pool()
    xp = torch.randn(400 * BATCH, HIDDEN, dtype=torch.float64)
    h0, w_hh = torch.zeros(BATCH, HIDDEN, dtype=torch.float64), 0.05 * torch.randn(HIDDEN, HIDDEN, dtype=torch.float64)

    def forward(steps):  # the output is steps * 27 KiB
        return NATIVE.rnn_forward(xp[: steps * BATCH], h0, w_hh, None, [BATCH] * steps, None, None, False)[0]

    first = forward(379)  # 10 MiB
    address = first.data_ptr()
    del first
    assert forward(300).data_ptr() == address  # 8 MiB: the 10 MiB block serves it
    assert forward(150).data_ptr() != address  # 4 MiB: a fresh block, not 10 MiB for 4
