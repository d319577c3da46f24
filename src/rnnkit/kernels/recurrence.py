r"""The recurrent part of one layer and direction as an autograd Function with a hand-written backward.

The input products are computed for every step at once (``xp = cell.project(x)``): by :func:`apply` with
ordinary autograd, whose backward is then already one large product each
(:math:`\partial W_{ih} = \partial XP^\top X`, :math:`\partial X = \partial XP\, W_{ih}`), or, for an LSTM where
it pays, inside :class:`ProjectedRecurrence`, which forms both weight gradients in one (and, with a small
:math:`W_{ih}`, has the loop form the input product and the input gradient step by step). :class:`Recurrence` runs
the time loop (:mod:`rnnkit.kernels.native` or its PyTorch twin :mod:`rnnkit.kernels.loops`), saving the gate
activations; backward runs the loop in reverse for the per-step gate gradients :math:`\partial XP_t` and
:math:`\partial GH_t` (the gradient of :math:`W_{hh} h_{t-1} + b_{hh}`), then forms the recurrent weight
gradients over all :math:`L N` rows at once instead of one small product per step:

.. math::
    \partial W_{hh} = \partial GH^\top\, (H_{prev} \odot m), \qquad \partial b_{hh} = \textstyle\sum_{t,n} \partial GH

where :math:`H_{prev}` holds, for every packed row (see :mod:`rnnkit.kernels.packing`), the state its step
read, and :math:`m` is the recurrent-dropout mask.
"""

from __future__ import annotations

import functools

import torch

from rnnkit.cells import GRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from rnnkit.kernels import gemm, transforms
from rnnkit.kernels.differentiable_once import run_backward


def kind_of(cell) -> str | None:
    """The loop a cell runs on: ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"``, ``"lstm"``, ``"layer_norm_lstm"``, or
    ``None`` (LSTM projections stay with aten or unroll).

    Exact types only, so a subclass with its own equations keeps them (it unrolls instead).
    """
    kind = cell_type(cell)
    if kind is RNNCell:
        return "rnn_" + cell.nonlinearity
    if kind is GRUCell:
        return "gru"
    if kind is LSTMCell and cell.weight_hr is None:
        return "lstm"
    if kind is LayerNormLSTMCell and cell.weight_hr is None:
        return "layer_norm_lstm"
    return None


def cell_type(cell) -> type:
    """The cell's class; under torch.nn.utils.parametrize (``weight_norm(cell, "weight_hh")``), the class it had
    before, which parametrize subclasses: its parametrized weights are properties, which the kernels read alike."""
    if "parametrizations" in cell._modules:  # parametrize.type_before_parametrizations, without its getattr miss
        return type(cell).__bases__[0]
    return type(cell)


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


def apply(loops, kind: str, packing, x, state: tuple, cell, rmask, zmask_h, zmask_c, zero_start: bool = False) -> tuple:
    """``(out (T, H), h_n[, c_n])`` of ``cell``'s recurrence on the packed input ``x`` ``(T, H_in)``, through the
    Function for ``kind``.

    ``zero_start``: the initial state is known to be zeros (the caller gave none), so the weight gradient
    skips its step-0 term."""
    # each Function returns the activations its backward reads after the outputs: keep the outputs
    if kind == "layer_norm_lstm":
        ln_hh, ln_c = cell.ln_hh, cell.ln_c
        return transforms.apply(
            LayerNormRecurrence,
            loops,
            packing,
            project(kind, cell, x).to(state[0].dtype),
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
        )[:3]
    c0 = state[1] if kind == "lstm" else None
    num_outputs = 3 if kind == "lstm" else 2
    bias = step_bias(kind, cell)
    if joint_weight_gradient(loops, kind, x, cell):
        return transforms.apply(
            ProjectedRecurrence, loops, kind, packing, x, cell.weight_ih, state[0], c0, cell.weight_hh, bias, rmask,
            zmask_h, zmask_c, zero_start,
        )[:num_outputs]  # fmt: skip
    # under bf16 autocast the product may come back in bf16; the loops run in the state's precision
    xp = project(kind, cell, x).to(state[0].dtype)
    return transforms.apply(
        Recurrence, loops, kind, packing, xp, state[0], c0, cell.weight_hh, bias, rmask, zmask_h, zmask_c, zero_start
    )[:num_outputs]


# From this many multiply-adds in the joint product (rows x (H_in + H) x 4H) an LSTM's two weight gradients are one
# product, which also lets the loop form a small W_ih's input product in its steps (INPUT_WEIGHT_IN_STEPS). 2-core
# Zen 5 (AVX-512), the LSTM loops' forward+backward, in-process A/B/C against the products apart and oneDNN's LSTM, 21
# interleaved repeats, 2 threads: 1.09-1.31x at (batch, steps, input, hidden) (32, 24, 8, 32) (3.9e6), (4, 100, 8,
# 64), (16, 50, 4, 64), (8, 50, 8, 128), (16, 100, 32, 128), (64, 35, 64, 64), (16, 100, 64, 128), (24, 100, 64,
# 128), which turned 0.84-0.97x oneDNN's LSTM into 1.04-1.27x; on one thread 1.26-1.69x (0.60-0.78x oneDNN's into
# 0.98-1.10x). Below 2^21 nothing stands out of the noise: 0.93-1.04x at (8, 24, 1, 25), (32, 24, 1, 25) (2.0e6)
# and (64, 24, 1, 25). An earlier survey, before the input product moved into the steps, had put the bar at 2^28
# (0.96x at (32, 50, 32, 64), which now gains 1.08x).
JOINT_PRODUCT = 1 << 21


def joint_weight_gradient(loops, kind: str, x, cell) -> bool:
    """Whether an LSTM's two weight gradients come from one product (:class:`ProjectedRecurrence`).

    Only where oneDNN has wider vectors than MKL (its matmul then forms the product; elsewhere the two products
    keep MKL), in fp32 without autocast, from :data:`JOINT_PRODUCT` multiply-adds, and while the recurrent one
    is below :data:`rnnkit.kernels.gemm.LARGE_WEIGHT_GRADIENT`: at (128, 35, 650, 650), where both are large
    enough for oneDNN's matmul on their own, the joint one ran at 0.96-0.98x. An RNN's products gained nothing
    (0.97-1.05x at the bench shapes), so an RNN keeps them apart; a GRU has no joint product (its dGH is not
    its dXP).
    """
    if kind != "lstm" or not gemm.applies(x) or torch.is_autocast_enabled("cpu"):
        return False
    gates, hidden = cell.weight_hh.shape
    rows = x.shape[0]
    if rows * (x.shape[1] + hidden) * gates < JOINT_PRODUCT or rows * gates * hidden >= gemm.LARGE_WEIGHT_GRADIENT:
        return False
    return hasattr(loops, "onednn_vectors_wider") and loops.onednn_vectors_wider()


class Recurrence(torch.autograd.Function):
    """``(out (T, H), h_n[, c_n])`` of one layer-direction from its packed projected input ``xp`` ``(T, G*H)``,
    followed by the activations its backward reads (see :func:`_loop_forward`; :func:`apply` drops them).

    ``loops`` is the native module or :mod:`rnnkit.kernels.loops`; ``packing`` a
    :class:`rnnkit.kernels.packing.Packing`; masks as in :mod:`rnnkit.kernels.loops`. ``c0`` and ``zmask_c`` are
    ``None`` except for LSTM.
    """

    @staticmethod
    def forward(*inputs):  # (loops, kind, packing, xp, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, zero_start)
        # one starred parameter: torch binds forward's signature on every call, 20 us for twelve named ones
        return _loop_forward(*inputs[:-1])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        loops, kind, packing, _, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, zero_start = inputs
        saved = _loop_context(
            ctx, loops, kind, packing, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, output, zero_start
        )
        ctx.save_for_backward(*saved)

    @staticmethod
    def backward(ctx, grad_out, grad_hn, *grads):
        grad_cn = grads[0] if ctx.kind == "lstm" else None
        grads = run_backward(
            functools.partial(_recurrence_backward, ctx), grad_out, grad_hn, grad_cn, *ctx.saved_tensors
        )
        return None, None, None, *grads, None, None, None, None


def _recurrence_backward(ctx, grad_out, grad_hn, grad_cn, h0, c0, w_hh, out, act, cs, rmask, zmask_h, zmask_c):
    """:class:`Recurrence`'s gradients ``(dxp, dh0, dc0, dw_hh, db_hh)``."""
    saved = (h0, c0, w_hh, out, act, cs, rmask, zmask_h, zmask_c)
    dxp, dgh, dh0, dc0 = _loop_backward(ctx, grad_out, grad_hn, grad_cn, *saved)
    dw_hh = db_hh = None
    if ctx.needs_input_grad[6]:
        dw_hh = recurrent_weight_grad(ctx.packing, dgh, h0, out, rmask, ctx.zero_start)
    if ctx.has_bias and ctx.needs_input_grad[7]:
        db_hh = dgh.sum(0)
    return dxp, dh0, dc0, dw_hh, db_hh


class ProjectedRecurrence(torch.autograd.Function):
    r""":class:`Recurrence` of an RNN or LSTM with its input product inside: the packed input ``x`` ``(T, H_in)``
    and ``W_ih`` in place of ``xp``. Both biases meet in the step's (:func:`step_bias`), so
    :math:`\partial GH = \partial XP`, and both weight gradients come from one product over all rows:

    .. math:: [\partial W_{ih}\;\; \partial W_{hh}] = \partial XP^\top\, [X\;\; H_{prev} \odot m]

    Apart, each is a product of few columns (:math:`H_{in}`, :math:`H`) over a depth of all :math:`T` rows,
    which the matrix-product kernels run well below their peak; together they are one wider product.
    :func:`joint_weight_gradient` says where that pays (for an LSTM).
    """

    @staticmethod
    def forward(*inputs):  # starred as Recurrence.forward's
        loops, kind, packing, x, w_ih, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, _ = inputs
        if input_product_in_steps(kind, w_ih, packing.batch_size):
            return _loop_forward(
                loops, kind, packing, x.new_empty(0), h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, x, w_ih
            )
        xp = gemm.product(x, w_ih)
        return _loop_forward(loops, kind, packing, xp, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        loops, kind, packing, x, w_ih, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, zero_start = inputs
        ctx.in_steps = input_product_in_steps(kind, w_ih, packing.batch_size)
        saved = _loop_context(
            ctx, loops, kind, packing, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, output, zero_start
        )
        ctx.save_for_backward(*saved, x, w_ih)

    @staticmethod
    def backward(ctx, grad_out, grad_hn, *grads):
        grad_cn = grads[0] if ctx.kind == "lstm" else None
        run = functools.partial(_projected_recurrence_backward, ctx)
        grads = run_backward(run, grad_out, grad_hn, grad_cn, *ctx.saved_tensors)
        return None, None, None, *grads, None, None, None, None


def _projected_recurrence_backward(ctx, grad_out, grad_hn, grad_cn, *saved):
    """:class:`ProjectedRecurrence`'s gradients ``(dx, dw_ih, dh0, dc0, dw_hh, db_hh)``."""
    h0, _, _, out, _, _, rmask, _, _, x, w_ih = saved
    in_steps = ctx.in_steps and ctx.needs_input_grad[3]
    dxp, _, dh0, dc0, *dx = _loop_backward(ctx, grad_out, grad_hn, grad_cn, *saved[:9], w_ih if in_steps else None)
    if in_steps:
        dx = dx[0]
    else:
        dx = gemm.mm(dxp, w_ih) if ctx.needs_input_grad[3] else None
    dw_ih = dw_hh = db_hh = None
    if ctx.needs_input_grad[4] or ctx.needs_input_grad[7]:
        rows = inputs_and_previous_states(ctx.packing, x, h0, out, rmask, ctx.zero_start)
        dw = ctx.loops.onednn_mm(dxp.t(), rows)  # (G*H, H_in + H)
        dw_ih = dw[:, : x.shape[1]] if ctx.needs_input_grad[4] else None
        dw_hh = dw[:, x.shape[1] :] if ctx.needs_input_grad[7] else None
    if ctx.has_bias and ctx.needs_input_grad[8]:
        db_hh = dxp.sum(0)
    return dx, dw_ih, dh0, dc0, dw_hh, db_hh


# Up to this many weights in W_ih an LSTM's input product runs inside its loop's steps, beside the recurrent one
# (x_t W_ih^T + h W_hh^T + b per step), so the (T, 4H) product is never written out and read back; and the input
# gradient likewise in the backward loop (dx_t = dXP_t W_ih, while dXP_t is in cache). Each step then reads all of
# W_ih again, which pays while it stays in a core's cache (1 MiB). 2-core Zen 4, the LSTM loops' forward+backward,
# in-process A/B, 10-16 interleaved repeats, identical outputs, at (batch, steps, input, hidden). The forward:
# 1.007-1.051x at (64, 50, 64, 128), (128, 50, 64, 128), (32, 100, 128, 256), (16, 100, 128, 256), (16, 100, 512,
# 128); with larger W_ih 1.00-1.02x at (16, 200, 256, 512), (128, 35, 650, 650), (32, 50, 650, 256), (8, 100, 256,
# 512), but 0.96x at (20, 35, 650, 650) and 0.81x at (4, 100, 512, 1024), where few rows share each reading of
# W_ih. The backward's, on top: 1.007-1.056x at the five small-W_ih shapes, 0.97-1.03x at (128, 50, 64, 128) over
# three runs. A batch of one reads all of W_ih for a single row at every step: on Zen 5 at (1, 1000, 32, 64) the joint
# product with the input product in the steps ran at 0.91-0.95x the products apart, with it apart at 1.02-1.04x
# (and 1.13x at (1, 500, 64, 256)); so one row keeps the input product apart (IN_STEPS_MIN_BATCH).
INPUT_WEIGHT_IN_STEPS = 1 << 18
IN_STEPS_MIN_BATCH = 2


def input_product_in_steps(kind: str, w_ih, batch_size: int) -> bool:
    """Whether :class:`ProjectedRecurrence`'s loop forms the input product step by step (an LSTM's, with a
    small ``W_ih``: :data:`INPUT_WEIGHT_IN_STEPS`, and a batch of :data:`IN_STEPS_MIN_BATCH` or more)."""
    return kind == "lstm" and w_ih.numel() <= INPUT_WEIGHT_IN_STEPS and batch_size >= IN_STEPS_MIN_BATCH


def _loop_forward(loops, kind, packing, xp, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, x=None, w_ih=None):
    """The time loop of :class:`Recurrence` and :class:`ProjectedRecurrence`: ``(out, h_n[, c_n])``, then the
    activations its backward reads: ``act`` (``(T, G*H)``; an RNN's without zoneout is ``out`` itself, and is not
    repeated) and an LSTM's cell states ``cs``."""
    batch_sizes = packing.batch_sizes
    if kind == "lstm":
        return tuple(loops.lstm_forward(xp, h0, c0, w_hh, b_hh, batch_sizes, rmask, zmask_h, zmask_c, x=x, w_ih=w_ih))
    if kind == "gru":
        return tuple(loops.gru_forward(xp, h0, w_hh, b_hh, batch_sizes, rmask, zmask_h))
    out, h_n, act = loops.rnn_forward(xp, h0, w_hh, b_hh, batch_sizes, rmask, zmask_h, kind == "rnn_relu")
    return (out, h_n) if act is out else (out, h_n, act)


def _loop_context(ctx, loops, kind, packing, h0, c0, w_hh, b_hh, rmask, zmask_h, zmask_c, output, zero_start):
    """Keep on ``ctx`` what :func:`_loop_backward` needs of :func:`_loop_forward`'s call; returns the nine
    tensors it reads (first in ``ctx.saved_tensors``)."""
    ctx.loops, ctx.kind, ctx.packing, ctx.zero_start = loops, kind, packing, zero_start
    ctx.has_bias = b_hh is not None
    ctx.set_materialize_grads(False)  # unused outputs' gradients (the activations' always) arrive as None
    out, _, *rest = output
    if kind == "lstm":
        _, act, cs = rest
        ctx.mark_non_differentiable(act, cs)
    else:
        (act,), cs = rest or (out,), None
        if act is not out:
            ctx.mark_non_differentiable(act)
    return h0, c0, w_hh, out, act, cs, rmask, zmask_h, zmask_c


def _loop_backward(ctx, grad_out, grad_hn, grad_cn, h0, c0, w_hh, out, act, cs, rmask, zmask_h, zmask_c, w_ih=None):
    """The time loop in reverse: ``(dXP, dGH, dh0, dc0)``; ``dGH`` is ``dXP`` itself except for a GRU, ``dc0``
    None except for an LSTM. With ``w_ih`` (an LSTM's), the input gradient ``dXP W_ih`` too, formed step by
    step, after them."""
    loops, kind, batch_sizes = ctx.loops, ctx.kind, ctx.packing.batch_sizes
    # outputs nobody used arrive as None
    grad_out = torch.zeros_like(out) if grad_out is None else grad_out
    grad_hn = torch.zeros_like(h0) if grad_hn is None else grad_hn
    if kind == "lstm":
        grad_cn = torch.zeros_like(c0) if grad_cn is None else grad_cn
        dxp, dh0, dc0, *dx = loops.lstm_backward(
            grad_out, grad_hn, grad_cn, c0, cs, act, w_hh, batch_sizes, rmask, zmask_h, zmask_c, w_ih=w_ih
        )
        return dxp, dxp, dh0, dc0, *dx
    if kind == "gru":
        dxp, dgh, dh0 = loops.gru_backward(grad_out, grad_hn, h0, out, act, w_hh, batch_sizes, rmask, zmask_h)
        return dxp, dgh, dh0, None
    dxp, dh0 = loops.rnn_backward(grad_out, grad_hn, act, w_hh, batch_sizes, rmask, zmask_h, kind == "rnn_relu")
    return dxp, dxp, dh0, None


def inputs_and_previous_states(packing, x, h0, out, rmask, zero_start: bool = False):
    """``[X, H_prev ⊙ m]`` ``(T, H_in + H)``: each packed row's input beside the state its step read (see
    :func:`recurrent_weight_grad`), written once into one buffer."""
    width = x.shape[1]
    rows = x.new_empty(x.shape[0], width + out.shape[1])
    rows[:, :width] = x
    states = rows[:, width:]
    if packing.order is None and rmask is None:
        n = packing.batch_size
        states[n:] = out[: out.shape[0] - n]
        states[:n] = 0 if zero_start else h0
    else:
        states.copy_(_masked_previous_states(packing, h0, out, rmask))
    return rows


def _masked_previous_states(packing, h0, out, rmask):
    r""":math:`H_{prev} \odot m` ``(T, H)``: for each packed row, the state its step read, times its recurrent-dropout
    mask (if any)."""
    h_prev = packing.previous_states(h0, out)
    return h_prev * packing.per_row(rmask) if rmask is not None else h_prev


def recurrent_weight_grad(packing, dgh, h0, out, rmask, zero_start: bool = False):
    r""":math:`\partial W_{hh} = \partial GH^\top (H_{prev} \odot m)`, ``(G*H, T) @ (T, H) -> (G*H, H)``.

    Without lengths or mask the rows of :math:`H_{prev}` are ``h0`` and then ``out`` without its last step, so
    the product splits in two and :math:`H_{prev}` (a ``(T, H)`` copy) is never built; a zero ``h0``
    (``zero_start``) adds nothing, and its product is skipped."""
    if packing.order is None and rmask is None:
        n = packing.batch_size
        later = gemm.mm(dgh[n:].t(), out[: out.shape[0] - n])
        return later if zero_start else later + gemm.mm(dgh[:n].t(), h0)
    return gemm.mm(dgh.t(), _masked_previous_states(packing, h0, out, rmask))


class LayerNormRecurrence(torch.autograd.Function):
    """:class:`Recurrence` for :class:`rnnkit.cells.LayerNormLSTMCell` (equations in
    :mod:`rnnkit.kernels.layer_norm_loops`): ``(out (T, H), h_n, c_n)``, then the activations and normalised
    values its backward reads; gradients for ``xp``, the states, ``W_hh`` and the gains and offsets of ``ln_hh``
    and ``ln_c``."""

    @staticmethod
    def forward(*inputs):  # starred as Recurrence.forward's
        loops, packing, xp, h0, c0, w_hh, gamma_hh, beta_hh, eps_hh, gamma_c, beta_c, eps_c, *masks, _ = inputs
        rmask, zmask_h, zmask_c = masks
        # -> out, h_n, c_n, act, cs, a_hat, c_hat, rstd
        outputs = loops.layer_norm_lstm_forward(
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
        return tuple(outputs)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        (
            loops,
            packing,
            _,
            h0,
            c0,
            w_hh,
            gamma_hh,
            beta_hh,
            _,
            gamma_c,
            beta_c,
            _,
            rmask,
            zmask_h,
            zmask_c,
            zero_start,
        ) = inputs
        out, _, _, act, cs, a_hat, c_hat, rstd = output
        ctx.loops, ctx.packing, ctx.zero_start = loops, packing, zero_start
        ctx.has_beta = (beta_hh is not None, beta_c is not None)
        ctx.set_materialize_grads(False)  # unused outputs' gradients (the activations' always) arrive as None
        ctx.mark_non_differentiable(act, cs, a_hat, c_hat, rstd)
        ctx.save_for_backward(
            h0, c0, w_hh, gamma_hh, gamma_c, out, cs, act, a_hat, c_hat, rstd, rmask, zmask_h, zmask_c
        )

    @staticmethod
    def backward(ctx, grad_out, grad_hn, grad_cn, *_):
        grads = run_backward(
            functools.partial(_layer_norm_recurrence_backward, ctx), grad_out, grad_hn, grad_cn, *ctx.saved_tensors
        )
        dxp, dh0, dc0, dw_hh, d_gamma_hh, d_beta_hh, d_gamma_c, d_beta_c = grads
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


def _layer_norm_recurrence_backward(ctx, grad_out, grad_hn, grad_cn, *saved):
    """:class:`LayerNormRecurrence`'s gradients ``(dxp, dh0, dc0, dw_hh, d_gamma_hh, d_beta_hh, d_gamma_c,
    d_beta_c)``."""
    h0, c0, w_hh, gamma_hh, gamma_c, out, cs, act, a_hat, c_hat, rstd, rmask, zmask_h, zmask_c = saved
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
    return dxp, dh0, dc0, dw_hh, d_gamma_hh, d_beta_hh, d_gamma_c, d_beta_c
