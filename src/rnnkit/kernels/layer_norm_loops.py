r"""Pure-PyTorch layer-norm LSTM loop (:class:`rnnkit.cells.LayerNormLSTMCell`), twin of
``csrc/layer_norm_lstm.cpp``; layout and masks as in :mod:`rnnkit.kernels.loops`.

Forward, per step, with :math:`\mathrm{LN}(v) = \gamma \odot \hat v + \beta`, :math:`\hat v = (v - \mu) \rho`,
:math:`\rho = 1 / \sqrt{\sigma^2 + \epsilon}` over the row:

.. math::
    a = W_{hh} (h \odot m),\quad (i, f, g, o) = \mathrm{act}(xp + \mathrm{LN}_{hh}(a)),\quad
    \tilde c = f c + i g,\quad y = \mathrm{LN}_c(\tilde c),\quad \tilde h = o \tanh y

Backward, per step (:math:`\delta_h`, :math:`\delta_c` reaching :math:`\tilde h`, :math:`c_t`):

.. math::
    \partial y = \delta_h\, o (1 - \tanh^2 y),\quad
    \partial \tilde c = \delta_c + \rho_c \big(\partial \hat c - \overline{\partial \hat c}
        - \hat c\, \overline{\partial \hat c \odot \hat c}\big),\ \partial \hat c = \gamma_c \odot \partial y\\
    \partial(i, f, g, o)_{pre} \text{ as for the LSTM},\quad
    \partial a = \rho_{hh} \big(\partial \hat a - \overline{\partial \hat a}
        - \hat a\, \overline{\partial \hat a \odot \hat a}\big),\
    \partial \hat a = \gamma_{hh} \odot \partial(i,f,g,o)_{pre}

(:math:`\overline{v}` the row mean). The parameter gradients are sums over all rows, formed once after the
loop: :math:`\partial\gamma_{hh} = \sum \partial(i,f,g,o)_{pre} \odot \hat a`, :math:`\partial\beta_{hh} = \sum
\partial(i,f,g,o)_{pre}`, :math:`\partial\gamma_c = \sum \partial y \odot \hat c`, :math:`\partial\beta_c = \sum
\partial y`, :math:`\partial W_{hh} = \partial A^\top (H_{prev} \odot m)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.kernels.packed_steps import back_into, mask_rows, previous_rows, split_grad, steps, zoneout


def _normalise(v: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``(v_hat, rstd (rows, 1))`` of LayerNorm over the last dimension."""
    mean = v.mean(-1, keepdim=True)
    rstd = (v.var(-1, unbiased=False, keepdim=True) + eps).rsqrt()
    return (v - mean) * rstd, rstd


def _normalise_backward(d_hat: Tensor, v_hat: Tensor, rstd: Tensor) -> Tensor:
    mean_d = d_hat.mean(-1, keepdim=True)
    mean_dv = (d_hat * v_hat).mean(-1, keepdim=True)
    return rstd * (d_hat - mean_d - v_hat * mean_dv)


def _affine(v_hat: Tensor, gamma: Tensor, beta: Tensor | None) -> Tensor:
    return gamma * v_hat if beta is None else gamma * v_hat + beta


def layer_norm_lstm_forward(
    xp, h0, c0, w_hh, gamma_hh, beta_hh, eps_hh, gamma_c, beta_c, eps_c, batch_sizes, rmask, zmask_h, zmask_c
):
    num_rows, hidden_size = xp.shape[0], h0.shape[1]
    out, cs = xp.new_empty(num_rows, hidden_size), xp.new_empty(num_rows, hidden_size)
    act = xp.new_empty(num_rows, 5 * hidden_size)  # i | f | g | o | tanh(y)
    a_hat, c_hat = xp.new_empty(num_rows, 4 * hidden_size), xp.new_empty(num_rows, hidden_size)
    rstd = xp.new_empty(num_rows, 2)
    h, c = h0.clone(), c0.clone()
    for _, row, bs in steps(batch_sizes):
        rows = slice(row, row + bs)
        h_in = h[:bs] if rmask is None else h[:bs] * rmask[:bs]
        a_hat[rows], rstd[rows, :1] = _normalise(h_in @ w_hh.t(), eps_hh)
        i, f, g, o = (xp[rows] + _affine(a_hat[rows], gamma_hh, beta_hh)).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c[:bs] + i * g
        c_hat[rows], rstd[rows, 1:] = _normalise(c_new, eps_c)
        tanh_y = torch.tanh(_affine(c_hat[rows], gamma_c, beta_c))
        act[rows] = torch.cat([i, f, g, o, tanh_y], dim=-1)
        h[:bs] = zoneout(mask_rows(zmask_h, row, bs), h[:bs], o * tanh_y)
        c[:bs] = zoneout(mask_rows(zmask_c, row, bs), c[:bs], c_new)
        out[rows], cs[rows] = h[:bs], c[:bs]
    return out, h, c, act, cs, a_hat, c_hat, rstd


def layer_norm_lstm_backward(
    grad_out,
    grad_hn,
    grad_cn,
    c0,
    cs,
    act,
    a_hat,
    c_hat,
    rstd,
    w_hh,
    gamma_hh,
    gamma_c,
    batch_sizes,
    rmask,
    zmask_h,
    zmask_c,
):
    dxp, da = torch.empty_like(a_hat), torch.empty_like(a_hat)
    dy = torch.empty_like(c_hat)
    dh, dc = grad_hn.clone(), grad_cn.clone()
    previous = previous_rows(batch_sizes)
    for t, row, bs in reversed(list(steps(batch_sizes))):
        rows = slice(row, row + bs)
        c_prev = c0[:bs] if t == 0 else cs[previous[t] : previous[t] + bs]
        i, f, g, o, tanh_y = act[rows].chunk(5, dim=-1)
        d_h_new, d_h_kept = split_grad(mask_rows(zmask_h, row, bs), dh[:bs] + grad_out[rows])
        d_c_state, d_c_kept = split_grad(mask_rows(zmask_c, row, bs), dc[:bs])
        dy[rows] = d_h_new * o * (1 - tanh_y * tanh_y)
        d_c_new = d_c_state + _normalise_backward(dy[rows] * gamma_c, c_hat[rows], rstd[rows, 1:])
        dxp[rows] = torch.cat(
            [
                d_c_new * g * i * (1 - i),
                d_c_new * c_prev * f * (1 - f),
                d_c_new * i * (1 - g * g),
                d_h_new * tanh_y * o * (1 - o),
            ],
            dim=-1,
        )
        da[rows] = _normalise_backward(dxp[rows] * gamma_hh, a_hat[rows], rstd[rows, :1])
        dc[:bs] = d_c_kept + d_c_new * f
        dh[:bs] = back_into(d_h_kept, da[rows], rmask, w_hh)
    return dxp, da, dy, dh, dc
