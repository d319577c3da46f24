r"""Pure-PyTorch time loops: the fallback twin of ``csrc/loops.cpp``, same signatures, same numbers.

Used when the native loops cannot be built, are disabled (``RNNKIT_NO_NATIVE=1``), or the tensors are not
fp32/fp64 on the CPU (bf16, CUDA). Each ``*_forward`` runs the recurrent part of one layer and direction and
returns what its ``*_backward`` needs; :mod:`rnnkit.kernels.recurrence` wraps the pair in an autograd Function.

Conventions (both implementations): packed rows as in ``torch``'s ``PackedSequence``: sequences sorted longest
first, step ``t`` has ``batch_sizes[t]`` active sequences, stored in rows ``[o_t, o_t + batch_sizes[t])`` of the
``(T, ·)`` inputs and outputs (:math:`o_t` the sum of earlier batch sizes); ended sequences keep their state.
``rmask`` ``(N, H)`` multiplies ``h`` before ``W_hh``; a zoneout mask holds the keep weight :math:`d` of
:math:`h_t = d \odot h_{t-1} + (1 - d) \odot \tilde h_t`: ``(T, H)``, 1 where a unit keeps its previous value, in
training, or a 0-dim :math:`p` at evaluation (the expectation; see :mod:`rnnkit.kernels.packed_steps`), so
:math:`\partial h_{t-1} \mathrel{+}= d \odot \partial h_t` and :math:`\partial \tilde h_t = (1 - d) \odot \partial h_t`.

Backward equations per step, with :math:`\delta` the gradient reaching :math:`\tilde h_t` (and :math:`\tilde c_t`):

- RNN: :math:`\partial a = \delta \odot \phi'(a)` (:math:`1 - \tilde h^2` for tanh, :math:`[\tilde h > 0]` for relu);
  :math:`\partial xp_t = \partial gh_t = \partial a`.
- GRU: :math:`\partial n_{pre} = \delta (1 - z)(1 - n^2)`, :math:`\partial z_{pre} = \delta (h_{t-1} - n) z (1 - z)`,
  :math:`\partial r_{pre} = \partial n_{pre}\, gh_n\, r (1 - r)`; :math:`\partial xp = (\partial r_{pre},
  \partial z_{pre}, \partial n_{pre})`, :math:`\partial gh = (\partial r_{pre}, \partial z_{pre},
  r \odot \partial n_{pre})`, :math:`\partial h_{t-1} \mathrel{+}= \delta z`.
- LSTM: :math:`\partial \tilde c = \partial c_t + \delta_h\, o (1 - \tanh^2 \tilde c)`,
  :math:`\partial(i, f, g, o)_{pre} = (\partial \tilde c\, g\, i(1-i),\ \partial \tilde c\, c_{t-1} f (1-f),\
  \partial \tilde c\, i (1 - g^2),\ \delta_h \tanh(\tilde c)\, o (1-o))`,
  :math:`\partial c_{t-1} = f \partial \tilde c`.

In all: :math:`\partial h_{t-1} \mathrel{+}= (\partial gh_t\, W_{hh}) \odot m`. The weight gradients are left to one
large product over all steps (see :mod:`rnnkit.kernels.recurrence`).
"""

from __future__ import annotations

import torch
from torch import Tensor

# the layer-norm LSTM loop has its own file; re-exported so both implementations offer the same names
from rnnkit.kernels.layer_norm_loops import layer_norm_lstm_backward, layer_norm_lstm_forward
from rnnkit.kernels.packed_steps import back_into, mask_rows, previous_rows, recurrent, split_grad, steps, zoneout


def rnn_forward(xp, h0, w_hh, b_hh, batch_sizes, rmask, zmask, relu):
    out = xp.new_empty(xp.shape[0], h0.shape[1])
    act = out if zmask is None else torch.empty_like(out)  # without zoneout each step's output is its activation
    h = h0.clone()
    for _, row, bs in steps(batch_sizes):
        rows = slice(row, row + bs)
        pre = xp[rows] + recurrent(h[:bs], rmask, w_hh, b_hh)
        act[rows] = torch.relu(pre) if relu else torch.tanh(pre)
        h[:bs] = zoneout(mask_rows(zmask, row, bs), h[:bs], act[rows])
        out[rows] = h[:bs]
    return out, h, act


def rnn_backward(grad_out, grad_hn, act, w_hh, batch_sizes, rmask, zmask, relu):
    dxp, dh = torch.empty_like(act), grad_hn.clone()
    for _, row, bs in reversed(list(steps(batch_sizes))):
        rows = slice(row, row + bs)
        d_new, d_kept = split_grad(mask_rows(zmask, row, bs), dh[:bs] + grad_out[rows])
        v = act[rows]
        dxp[rows] = d_new * ((v > 0).to(v.dtype) if relu else 1 - v * v)
        dh[:bs] = back_into(d_kept, dxp[rows], rmask, w_hh)
    return dxp, dh


def gru_forward(xp, h0, w_hh, b_hh, batch_sizes, rmask, zmask):
    hidden_size = h0.shape[1]
    out = xp.new_empty(xp.shape[0], hidden_size)
    act = xp.new_empty(xp.shape[0], 4 * hidden_size)  # r | z | n | gh_n
    h = h0.clone()
    for _, row, bs in steps(batch_sizes):
        rows = slice(row, row + bs)
        x_r, x_z, x_n = xp[rows].chunk(3, dim=-1)
        h_r, h_z, h_n = recurrent(h[:bs], rmask, w_hh, b_hh).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        act[rows] = torch.cat([r, z, n, h_n], dim=-1)
        h[:bs] = zoneout(mask_rows(zmask, row, bs), h[:bs], (1 - z) * n + z * h[:bs])
        out[rows] = h[:bs]
    return out, h, act


def gru_backward(grad_out, grad_hn, h0, out, act, w_hh, batch_sizes, rmask, zmask):
    dxp = act.new_empty(act.shape[0], 3 * h0.shape[1])
    dgh = torch.empty_like(dxp)
    dh = grad_hn.clone()
    previous = previous_rows(batch_sizes)
    for t, row, bs in reversed(list(steps(batch_sizes))):
        rows = slice(row, row + bs)
        h_prev = h0[:bs] if t == 0 else out[previous[t] : previous[t] + bs]
        r, z, n, gh_n = act[rows].chunk(4, dim=-1)
        d_new, d_kept = split_grad(mask_rows(zmask, row, bs), dh[:bs] + grad_out[rows])
        d_n_pre = d_new * (1 - z) * (1 - n * n)
        d_z_pre = d_new * (h_prev - n) * z * (1 - z)
        d_r_pre = d_n_pre * gh_n * r * (1 - r)
        dxp[rows] = torch.cat([d_r_pre, d_z_pre, d_n_pre], dim=-1)
        dgh[rows] = torch.cat([d_r_pre, d_z_pre, d_n_pre * r], dim=-1)
        dh[:bs] = back_into(d_kept + d_new * z, dgh[rows], rmask, w_hh)
    return dxp, dgh, dh


def lstm_forward(xp, h0, c0, w_hh, b_hh, batch_sizes, rmask, zmask_h, zmask_c, x=None, w_ih=None):
    if x is not None:  # the input product inside the loop (the native loop's fused form): here all steps at once
        xp = x @ w_ih.t()
    hidden_size = h0.shape[1]
    out, cs = xp.new_empty(xp.shape[0], hidden_size), xp.new_empty(xp.shape[0], hidden_size)
    act = xp.new_empty(xp.shape[0], 5 * hidden_size)  # i | f | g | o | tanh(c~)
    h, c = h0.clone(), c0.clone()
    for _, row, bs in steps(batch_sizes):
        rows = slice(row, row + bs)
        gates = xp[rows] + recurrent(h[:bs], rmask, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c[:bs] + i * g
        tanh_c = torch.tanh(c_new)
        act[rows] = torch.cat([i, f, g, o, tanh_c], dim=-1)
        h[:bs] = zoneout(mask_rows(zmask_h, row, bs), h[:bs], o * tanh_c)
        c[:bs] = zoneout(mask_rows(zmask_c, row, bs), c[:bs], c_new)
        out[rows], cs[rows] = h[:bs], c[:bs]
    return out, h, c, act, cs


def lstm_backward(grad_out, grad_hn, grad_cn, c0, cs, act, w_hh, batch_sizes, rmask, zmask_h, zmask_c, w_ih=None):
    dxp = act.new_empty(act.shape[0], 4 * c0.shape[1])
    dh, dc = grad_hn.clone(), grad_cn.clone()
    previous = previous_rows(batch_sizes)
    for t, row, bs in reversed(list(steps(batch_sizes))):
        rows = slice(row, row + bs)
        c_prev = c0[:bs] if t == 0 else cs[previous[t] : previous[t] + bs]
        i, f, g, o, tanh_c = act[rows].chunk(5, dim=-1)
        d_h_new, d_h_kept = split_grad(mask_rows(zmask_h, row, bs), dh[:bs] + grad_out[rows])
        d_c_state, d_c_kept = split_grad(mask_rows(zmask_c, row, bs), dc[:bs])
        d_c_new = d_c_state + d_h_new * o * (1 - tanh_c * tanh_c)
        dxp[rows] = torch.cat(
            [
                d_c_new * g * i * (1 - i),
                d_c_new * c_prev * f * (1 - f),
                d_c_new * i * (1 - g * g),
                d_h_new * tanh_c * o * (1 - o),
            ],
            dim=-1,
        )
        dc[:bs] = d_c_kept + d_c_new * f
        dh[:bs] = back_into(d_h_kept, dxp[rows], rmask, w_hh)
    if w_ih is not None:  # the input gradient too (the native loop forms it step by step): here all rows at once
        return dxp, dh, dc, dxp @ w_ih
    return dxp, dh, dc


def column_dot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum(0)`` for ``(T, F)`` tensors: the gradient of a layer norm's gain over all rows."""
    return (a * b).sum(0)


__all__ = [
    "column_dot",
    "gru_backward",
    "gru_forward",
    "layer_norm_lstm_backward",
    "layer_norm_lstm_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]
