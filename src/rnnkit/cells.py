r"""Recurrent cells: one time step each, written as their equations.

A cell never loops over time (that is :func:`rnnkit.unroll`). It splits a step in two so that the costly
input products can be done for every step at once:

* ``project(x)``: the input-to-hidden products :math:`W_{ih} x + b_{ih}` for all steps, one matrix product,
  ``(L, N, H_in) -> (L, N, G*H)``;
* ``step(xp_t, state)``: the recurrent part of one step, ``(N, G*H), state -> h_t, state``;
* ``init_state(batch_size)``: the zero state.

Parameter names, shapes, gate order and initialisation follow ``torch.nn`` (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``; every parameter uniform in :math:`(-1/\sqrt{H}, 1/\sqrt{H})`), so weights move
between rnnkit and torch unchanged. The layer-norm cells, which torch lacks, put their biases in their
LayerNorms instead. ``forward(x, state)`` makes one full step, like ``torch.nn.LSTMCell``.

Shape legend: N batch, L time, H_in input features, H hidden units, P projection size, G gates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.errors import RnnkitError

State = Tensor | tuple[Tensor, ...]


def map_state(fn, *states: State) -> State:
    """Apply ``fn`` to each tensor of a state (a tensor or a tuple of tensors), componentwise across ``states``."""
    if isinstance(states[0], Tensor):
        return fn(*states)
    return tuple(fn(*parts) for parts in zip(*states, strict=True))


Gates = dict[str, Tensor]

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


def check_proj_size(proj_size: int, hidden_size: int) -> None:
    """Refuse a projection that does not shrink the hidden state, as torch.nn.LSTM does."""
    if hidden_size < 1:  # checked here first, or the message below would blame proj_size
        raise RnnkitError(f"hidden_size must be positive, got {hidden_size}.")
    if proj_size < 0 or proj_size >= hidden_size:
        raise RnnkitError(
            f"proj_size must be in [0, hidden_size) = [0, {hidden_size}), got {proj_size}; use 0 for no projection."
        )


class RecurrentCell(nn.Module):
    """Shared parameters and contract of every cell (subclass it to write your own).

    Subclasses set ``num_gates`` and implement :meth:`equations`; everything else follows from it.

    Attributes:
        weight_ih: ``(G*H, H_in)``; weight_hh: ``(G*H, H_out)`` where ``H_out`` is the size of ``h``
            (``P`` for a projected LSTM, else ``H``); bias_ih, bias_hh: ``(G*H,)`` when ``bias``.
    """

    num_gates: int = 1
    state_names: tuple[str, ...] = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        recurrent_size: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise RnnkitError(
                f"input_size and hidden_size must be positive, got input_size={input_size}, hidden_size={hidden_size}."
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gate_size = self.num_gates * hidden_size
        recurrent_size = recurrent_size or hidden_size
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(gate_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gate_size, recurrent_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gate_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    @property
    def output_size(self) -> int:
        """Size of ``h``, the state the cell emits and feeds back."""
        return self.weight_hh.shape[1]

    def reset_parameters(self) -> None:
        # torch.nn's scheme, so a freshly built rnnkit layer is distributed like a torch one.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    # --- the contract -------------------------------------------------------------------------------------

    def project(self, x: Tensor) -> Tensor:
        """Input products for every step at once: ``(..., H_in) -> (..., G*H)``."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recurrent(self, h: Tensor, recurrent_mask: Tensor | None = None) -> Tensor:
        """Hidden products ``W_hh h + b_hh``; ``recurrent_mask`` drops units of ``h`` (recurrent dropout)."""
        if recurrent_mask is not None:
            h = h * recurrent_mask
        return F.linear(h, self.weight_hh, self.bias_hh)

    def init_state(
        self, batch_size: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """The zero state for ``batch_size`` sequences."""
        device = device if device is not None else self.weight_hh.device
        dtype = dtype if dtype is not None else self.weight_hh.dtype
        return torch.zeros(batch_size, self.output_size, device=device, dtype=dtype)

    def step(self, xp: Tensor, state: State, *, recurrent_mask: Tensor | None = None) -> tuple[Tensor, State]:
        """One step from projected input ``xp`` ``(N, G*H)``: returns ``(h, new_state)``."""
        h, state, _ = self.equations(xp, state, recurrent_mask)
        return h, state

    def equations(self, xp: Tensor, state: State, recurrent_mask: Tensor | None = None) -> tuple[Tensor, State, Gates]:
        """One step, also returning the gate activations by name (what ``trace=True`` records).

        A cell implements this or overrides :meth:`step`; one that only has ``step`` traces no gates.
        """
        if type(self).step is RecurrentCell.step:
            raise NotImplementedError(f"{type(self).__name__} must implement equations() or step().")
        h, state = self.step(xp, state, recurrent_mask=recurrent_mask)
        return h, state, {}

    def forward(self, x: Tensor, state: State | None = None) -> State:
        """One full step from raw input ``x`` ``(N, H_in)``, or ``(H_in,)`` unbatched with a state to match,
        returning the new state like ``torch.nn``'s cells."""
        if x.dim() not in (1, 2):
            raise RnnkitError(
                f"{type(self).__name__} takes one step: x must be (batch, {self.input_size}) or unbatched "
                f"({self.input_size},), got shape {tuple(x.shape)}; run a sequence with rnnkit.unroll."
            )
        unbatched = x.dim() == 1
        if unbatched:
            # a batch of one: init_state(x.shape[0]) would otherwise broadcast H_in zero states against x
            x = x.unsqueeze(0)
            state = None if state is None else map_state(lambda s: s.unsqueeze(0), state)
        if state is None:
            state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        _, state = self.step(self.project(x), state)
        return map_state(lambda s: s.squeeze(0), state) if unbatched else state


class RNNCell(RecurrentCell):
    r"""Elman RNN step.

    .. math::
        h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}),\quad \phi \in \{\tanh, \mathrm{relu}\}

    Shapes: x ``(N, H_in)``; h ``(N, H)`` -> h' ``(N, H)``.
    Attributes: weight_ih ``(H, H_in)``, weight_hh ``(H, H)``, as ``torch.nn.RNNCell``.
    """

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise RnnkitError(f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'.")
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def equations(self, xp, state, recurrent_mask=None):
        h = NONLINEARITIES[self.nonlinearity](xp + self.recurrent(state, recurrent_mask))
        return h, h, {}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(RecurrentCell):
    r"""Long short-term memory step (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000), optional projection.

    .. math::
        i = \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \quad (f, o \text{ alike})\\
        g = \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg})\\
        c' = f \odot c + i \odot g,\qquad h' = W_{hr}\,(o \odot \tanh(c'))\ \text{(}W_{hr}\text{ only if proj_size)}

    Shapes: x ``(N, H_in)``; h ``(N, P or H)``, c ``(N, H)`` -> h', c' alike. State is the tuple ``(h, c)``.
    Attributes: weight_ih ``(4H, H_in)``, weight_hh ``(4H, P or H)``, gates stacked i|f|g|o as in
    ``torch.nn.LSTM``; weight_hr ``(P, H)`` when ``proj_size > 0``.
    """

    num_gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        proj_size: int = 0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_proj_size(proj_size, hidden_size)
        super().__init__(
            input_size, hidden_size, bias, recurrent_size=proj_size or hidden_size, device=device, dtype=dtype
        )
        self.proj_size = proj_size
        projection = torch.empty(proj_size, hidden_size, device=device, dtype=dtype) if proj_size else None
        self.register_parameter("weight_hr", None if projection is None else nn.Parameter(projection))
        self.reset_parameters()

    def init_state(self, batch_size, *, device=None, dtype=None):
        # named base call (not super()) so LayerNormLSTMCell can share this method
        h = RecurrentCell.init_state(self, batch_size, device=device, dtype=dtype)
        return h, h.new_zeros(batch_size, self.hidden_size)

    def equations(self, xp, state, recurrent_mask=None):
        h, c = state
        gates = xp + self.recurrent(h, recurrent_mask)
        i, f, g, o = gates.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * self.squash(c)
        if self.weight_hr is not None:
            h = F.linear(h, self.weight_hr)
        return h, (h, c), {"i": i, "f": f, "g": g, "o": o}

    def squash(self, c: Tensor) -> Tensor:
        """The cell state as the output gate sees it: :math:`\tanh(c)`."""
        return torch.tanh(c)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", proj_size={self.proj_size}" if self.proj_size else "")


class GRUCell(RecurrentCell):
    r"""Gated recurrent unit step (Cho et al. 2014), in torch.nn's form: the reset gate scales the hidden product.

    The reset gate multiplies :math:`W_{hn} h + b_{hn}` after the product is taken, as ``torch.nn.GRU`` does;
    Cho et al. put it inside the product, :math:`W_{hn} (r \odot h)`, which gives other numbers.

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}),\qquad z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})\\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})),\qquad h' = (1 - z) \odot n + z \odot h

    Shapes: x ``(N, H_in)``; h ``(N, H)`` -> h' ``(N, H)``.
    Attributes: weight_ih ``(3H, H_in)``, weight_hh ``(3H, H)``, gates stacked r|z|n as in ``torch.nn.GRU``.
    """

    num_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.reset_parameters()

    def equations(self, xp, state, recurrent_mask=None):
        h = state
        x_r, x_z, x_n = xp.chunk(3, dim=-1)
        h_r, h_z, h_n = self.recurrent(h, recurrent_mask).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, h, {"r": r, "z": z, "n": n}


class _LayerNormCell(RecurrentCell):
    r"""Layer normalisation of the input and recurrent products (Ba, Kiros & Hinton 2016).

    The two products are normalised separately over all their ``G*H`` units:
    :math:`\mathrm{LN}_{ih}(W_{ih} x) + \mathrm{LN}_{hh}(W_{hh} h)`. The biases become the LayerNorm offsets
    (``ln_ih.bias``, ``ln_hh.bias``), so the cell has no ``bias_ih``/``bias_hh``; gains start at 1, offsets at 0.
    """

    def __init__(self, input_size, hidden_size, bias, *, recurrent_size=None, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias=False, recurrent_size=recurrent_size, device=device, dtype=dtype)
        self.bias = bias
        gate_size = self.num_gates * hidden_size
        factory = {"device": device, "dtype": dtype}
        self.ln_ih = nn.LayerNorm(gate_size, bias=bias, **factory)
        self.ln_hh = nn.LayerNorm(gate_size, bias=bias, **factory)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def project(self, x: Tensor) -> Tensor:
        return self.ln_ih(F.linear(x, self.weight_ih))

    def recurrent(self, h: Tensor, recurrent_mask: Tensor | None = None) -> Tensor:
        if recurrent_mask is not None:
            h = h * recurrent_mask
        return self.ln_hh(F.linear(h, self.weight_hh))


class LayerNormLSTMCell(_LayerNormCell):
    r"""LSTM step with layer normalisation (Ba et al. 2016, "Layer Normalization": its layer-normalised LSTM).

    .. math::
        (i, f, g, o) = \mathrm{LN}_{ih}(W_{ih} x) + \mathrm{LN}_{hh}(W_{hh} h)\\
        c' = \sigma(f) \odot c + \sigma(i) \odot \tanh(g),\qquad
        h' = W_{hr}\,(\sigma(o) \odot \tanh(\mathrm{LN}_c(c')))

    Shapes and gate order as :class:`LSTMCell`; :math:`W_{hr}` only if ``proj_size``. Attributes: weight_ih,
    weight_hh (and weight_hr) as :class:`LSTMCell`, ``ln_ih``, ``ln_hh`` (LayerNorm over 4H), ``ln_c`` (LayerNorm
    over H). There is no ``bias_ih``/``bias_hh``: the LayerNorm offsets (``ln_ih.bias``, ``ln_hh.bias``,
    ``ln_c.bias``) are the biases, and ``bias=False`` drops them. Gains start at 1, offsets at 0.
    """

    num_gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        proj_size: int = 0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_proj_size(proj_size, hidden_size)
        super().__init__(
            input_size, hidden_size, bias, recurrent_size=proj_size or hidden_size, device=device, dtype=dtype
        )
        self.proj_size = proj_size
        self.ln_c = nn.LayerNorm(hidden_size, bias=bias, device=device, dtype=dtype)
        projection = torch.empty(proj_size, hidden_size, device=device, dtype=dtype) if proj_size else None
        self.register_parameter("weight_hr", None if projection is None else nn.Parameter(projection))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "weight_hr", None) is not None:
            bound = 1.0 / math.sqrt(self.hidden_size)
            nn.init.uniform_(self.weight_hr, -bound, bound)

    init_state = LSTMCell.init_state
    equations = LSTMCell.equations

    def squash(self, c: Tensor) -> Tensor:
        """:math:`\tanh(\\mathrm{LN}_c(c))`: the normalised cell state (Ba et al. 2016)."""
        return torch.tanh(self.ln_c(c))

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", proj_size={self.proj_size}" if self.proj_size else "")


class LayerNormGRUCell(_LayerNormCell):
    r"""GRU step with layer normalisation of the input and recurrent products.

    .. math::
        (x_r, x_z, x_n) = \mathrm{LN}_{ih}(W_{ih} x),\qquad (h_r, h_z, h_n) = \mathrm{LN}_{hh}(W_{hh} h)\\
        r = \sigma(x_r + h_r),\quad z = \sigma(x_z + h_z),\quad n = \tanh(x_n + r \odot h_n),\quad
        h' = (1 - z) \odot n + z \odot h

    A GRU has no separate cell state, so there is no third normalisation; ``h`` stays a convex mix of
    its past and ``n``, which keeps it bounded. Shapes and gate order as :class:`GRUCell`. Attributes:
    weight_ih, weight_hh as :class:`GRUCell`, ``ln_ih``, ``ln_hh`` (LayerNorm over 3H). There is no
    ``bias_ih``/``bias_hh``: the LayerNorm offsets (``ln_ih.bias``, ``ln_hh.bias``) are the biases, and
    ``bias=False`` drops them. Gains start at 1, offsets at 0.
    """

    num_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.reset_parameters()

    equations = GRUCell.equations
