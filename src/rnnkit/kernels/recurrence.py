r"""The recurrent part of one layer and direction as an autograd Function with a hand-written backward.

The input products are not in here: the caller computes ``xp = cell.project(x)`` for every step at once with
ordinary autograd, whose backward is then already one large product each
(:math:`\partial W_{ih} = \partial XP^\top X`, :math:`\partial X = \partial XP\, W_{ih}`). :class:`Recurrence`
runs the time loop (:mod:`rnnkit.kernels.native` or its PyTorch twin :mod:`rnnkit.kernels.loops`), saving the
gate activations; backward runs the loop in reverse for the per-step gate gradients :math:`\partial XP_t` and
:math:`\partial GH_t` (the gradient of :math:`W_{hh} h_{t-1} + b_{hh}`), then forms the recurrent weight
gradients over all :math:`L N` rows at once instead of one small product per step:

.. math::
    \partial W_{hh} = \partial GH^\top\, (H_{prev} \odot m), \qquad \partial b_{hh} = \textstyle\sum_{t,n} \partial GH

where :math:`H_{prev}` holds, for every packed row (see :mod:`rnnkit.kernels.packing`), the state its step
read, and :math:`m` is the recurrent-dropout mask.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnkit.cells import GRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from rnnkit.kernels import gemm


def kind_of(cell) -> str | None:
    """The loop a cell runs on: ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"``, ``"lstm"``, ``"layer_norm_lstm"``, or
    ``None`` (LSTM projections stay with aten or unroll).

    Exact types only, so a subclass with its own equations keeps them (it unrolls instead).
    """
    kind = type(cell)
    if kind is RNNCell:
        return "rnn_" + cell.nonlinearity
    if kind is GRUCell:
        return "gru"
    if kind is LSTMCell and cell.weight_hr is None:
        return "lstm"
    if kind is LayerNormLSTMCell and cell.weight_hr is None:
        return "layer_norm_lstm"
    return None


def project(kind: str, cell, x):
    """The input products for every step at once, with :mod:`rnnkit.kernels.gemm`'s products: ``cell.project(x)``,
    except that an RNN's or LSTM's ``b_ih`` is left to :func:`step_bias`."""
    if kind == "layer_norm_lstm":
        return cell.ln_ih(gemm.linear(x, cell.weight_ih))
    if kind == "gru":
        return gemm.linear(x, cell.weight_ih, cell.bias_ih)
    return gemm.linear(x, cell.weight_ih)


def step_bias(kind: str, cell):
    r"""The bias the loop adds to each step's :math:`W_{hh} h`: :math:`b_{ih} + b_{hh}` for an RNN or LSTM, whose
    two biases meet in one sum, so the backward sums the gate gradients once for both
    (:math:`\partial b_{ih} = \partial b_{hh} = \sum_{t,n} \partial XP`); a GRU's :math:`b_{hh}` alone (its
    :math:`b_{hn}` is gated by :math:`r`)."""
    if kind == "gru" or cell.bias_ih is None:
        return cell.bias_hh
    return cell.bias_ih + cell.bias_hh


def apply(
    loops, kind: str, packing, xp, state: tuple, cell, rmask, zmask_h, zmask_c, zero_start: bool = False
) -> tuple:
    """``(out (T, H), h_n[, c_n])`` of ``cell``'s recurrence on packed ``xp``, through the Function for ``kind``.

    ``zero_start``: the initial state is known to be zeros (the caller gave none), so the weight gradient
    skips its step-0 term."""
    if kind == "layer_norm_lstm":
        ln_hh, ln_c = cell.ln_hh, cell.ln_c
        return LayerNormRecurrence.apply(
            loops,
            packing,
            xp,
            *state,
            cell.weight_hh,
            ln_hh.weight,
            ln_hh.bias,
            ln_hh.eps,
            ln_c.weight,
            ln_c.bias,
            ln_c.eps,
            rmask,
            zmask_h,
            zmask_c,
            zero_start,
        )
    c0 = state[1] if kind == "lstm" else None
    bias = step_bias(kind, cell)
    return Recurrence.apply(
        loops, kind, packing, xp, state[0], c0, cell.weight_hh, bias, rmask, zmask_h, zmask_c, zero_start
    )


class Recurrence(torch.autograd.Function):
    """``(out (T, H), h_n[, c_n])`` of one layer-direction from its packed projected input ``xp`` ``(T, G*H)``.

    ``loops`` is the native module or :mod:`rnnkit.kernels.loops`; ``packing`` a
    :class:`rnnkit.kernels.packing.Packing`; masks as in :mod:`rnnkit.kernels.loops`. ``c0`` and ``zmask_c`` are
    ``None`` except for LSTM.
    """

    @staticmethod
    def forward(ctx, loops, kind, packing, xp, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, zero_start):
        ctx.loops, ctx.kind, ctx.packing, ctx.zero_start = loops, kind, packing, zero_start
        batch_sizes = packing.batch_sizes
        ctx.has_bias = b_hh is not None
        if kind == "lstm":
            out, h_n, c_n, act, cs = loops.lstm_forward(xp, h0, c0, w_hh, b_hh, batch_sizes, rmask, zmask_h, zmask_c)
            ctx.save_for_backward(h0, c0, w_hh, out, act, cs, rmask, zmask_h, zmask_c)
            return out, h_n, c_n
        if kind == "gru":
            out, h_n, act = loops.gru_forward(xp, h0, w_hh, b_hh, batch_sizes, rmask, zmask_h)
        else:
            out, h_n, act = loops.rnn_forward(xp, h0, w_hh, b_hh, batch_sizes, rmask, zmask_h, kind == "rnn_relu")
        ctx.save_for_backward(h0, None, w_hh, out, act, None, rmask, zmask_h, None)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_hn, grad_cn=None):
        h0, c0, w_hh, out, act, cs, rmask, zmask_h, zmask_c = ctx.saved_tensors
        loops, kind, batch_sizes = ctx.loops, ctx.kind, ctx.packing.batch_sizes
        # outputs nobody used arrive as None
        grad_out = torch.zeros_like(out) if grad_out is None else grad_out
        grad_hn = torch.zeros_like(h0) if grad_hn is None else grad_hn
        dc0 = None
        if kind == "lstm":
            grad_cn = torch.zeros_like(c0) if grad_cn is None else grad_cn
            dxp, dh0, dc0 = loops.lstm_backward(
                grad_out, grad_hn, grad_cn, c0, cs, act, w_hh, batch_sizes, rmask, zmask_h, zmask_c
            )
            dgh = dxp
        elif kind == "gru":
            dxp, dgh, dh0 = loops.gru_backward(grad_out, grad_hn, h0, out, act, w_hh, batch_sizes, rmask, zmask_h)
        else:
            dxp, dh0 = loops.rnn_backward(grad_out, grad_hn, act, w_hh, batch_sizes, rmask, zmask_h, kind == "rnn_relu")
            dgh = dxp
        dw_hh = db_hh = None
        if ctx.needs_input_grad[6]:
            dw_hh = recurrent_weight_grad(ctx.packing, dgh, h0, out, rmask, ctx.zero_start)
        if ctx.has_bias and ctx.needs_input_grad[7]:
            db_hh = dgh.sum(0)
        return None, None, None, dxp, dh0, dc0, dw_hh, db_hh, None, None, None, None


def recurrent_weight_grad(packing, dgh, h0, out, rmask, zero_start: bool = False):
    r""":math:`\partial W_{hh} = \partial GH^\top (H_{prev} \odot m)`, ``(G*H, T) @ (T, H) -> (G*H, H)``.

    Without lengths or mask the rows of :math:`H_{prev}` are ``h0`` and then ``out`` without its last step, so
    the product splits in two and :math:`H_{prev}` (a ``(T, H)`` copy) is never built; a zero ``h0``
    (``zero_start``) adds nothing, and its product is skipped."""
    if packing.order is None and rmask is None:
        n = packing.batch_size
        later = gemm.mm(dgh[n:].t(), out[: out.shape[0] - n])
        return later if zero_start else later + gemm.mm(dgh[:n].t(), h0)
    h_prev = packing.previous_states(h0, out)  # (T, H)
    if rmask is not None:
        h_prev = h_prev * packing.per_row(rmask)
    return gemm.mm(dgh.t(), h_prev)


class LayerNormRecurrence(torch.autograd.Function):
    """:class:`Recurrence` for :class:`rnnkit.cells.LayerNormLSTMCell` (equations in
    :mod:`rnnkit.kernels.layer_norm_loops`): ``(out (T, H), h_n, c_n)``, gradients for ``xp``, the states,
    ``W_hh`` and the gains and offsets of ``ln_hh`` and ``ln_c``."""

    @staticmethod
    def forward(
        ctx,
        loops,
        packing,
        xp,
        h0,
        c0,
        w_hh,
        gamma_hh,
        beta_hh,
        eps_hh,
        gamma_c,
        beta_c,
        eps_c,
        rmask,
        zmask_h,
        zmask_c,
        zero_start,
    ):
        ctx.loops, ctx.packing, ctx.zero_start = loops, packing, zero_start
        out, h_n, c_n, act, cs, a_hat, c_hat, rstd = loops.layer_norm_lstm_forward(
            xp,
            h0,
            c0,
            w_hh,
            gamma_hh,
            beta_hh,
            eps_hh,
            gamma_c,
            beta_c,
            eps_c,
            packing.batch_sizes,
            rmask,
            zmask_h,
            zmask_c,
        )
        ctx.save_for_backward(
            h0, c0, w_hh, gamma_hh, gamma_c, out, cs, act, a_hat, c_hat, rstd, rmask, zmask_h, zmask_c
        )
        ctx.has_beta = (beta_hh is not None, beta_c is not None)
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_hn, grad_cn):
        h0, c0, w_hh, gamma_hh, gamma_c, out, cs, act, a_hat, c_hat, rstd, rmask, zmask_h, zmask_c = ctx.saved_tensors
        grad_out = torch.zeros_like(out) if grad_out is None else grad_out
        grad_hn = torch.zeros_like(h0) if grad_hn is None else grad_hn
        grad_cn = torch.zeros_like(c0) if grad_cn is None else grad_cn
        dxp, da, dy, dh0, dc0 = ctx.loops.layer_norm_lstm_backward(
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
            ctx.packing.batch_sizes,
            rmask,
            zmask_h,
            zmask_c,
        )
        # one product / reduction over all T rows each
        dw_hh = recurrent_weight_grad(ctx.packing, da, h0, out, rmask, ctx.zero_start)
        d_gamma_hh, d_gamma_c = ctx.loops.column_dot(dxp, a_hat), ctx.loops.column_dot(dy, c_hat)
        d_beta_hh = dxp.sum(0) if ctx.has_beta[0] else None
        d_beta_c = dy.sum(0) if ctx.has_beta[1] else None
        return (
            None,
            None,
            dxp,
            dh0,
            dc0,
            dw_hh,
            d_gamma_hh,
            d_beta_hh,
            None,
            d_gamma_c,
            d_beta_c,
            None,
            None,
            None,
            None,
            None,
        )
