r"""Recurrent layers: cells stacked in layers and directions, with torch.nn's constructor and forward.

``rnnkit.LSTM`` is a drop-in for ``torch.nn.LSTM``: same arguments, same outputs, same ``state_dict`` keys
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), so weights load both ways unchanged. Keyword-only extras go
beyond torch: ``lengths=`` (variable lengths without packing), ``return_trace=`` (every step's states and
gates), ``layer_norm=``, ``recurrent_dropout=``, ``zoneout=``, ``cell=`` (your own cell, stacked and
bidirectional), and :meth:`RecurrentLayer.step` for streaming one step at a time.

Each forward picks the fastest path that gives the numbers of :func:`rnnkit.unroll` over the cells
(:mod:`rnnkit.kernels`); the tests hold every path to those numbers.

Shape legend: N batch, L time, D directions (2 if bidirectional), H_in input, H hidden, P projection,
H_out = P if proj_size else H.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import kernels, torch_names
from rnnkit.cells import (
    GRUCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    RecurrentCell,
    RNNCell,
    State,
    check_proj_size,
)
from rnnkit.errors import RnnkitError
from rnnkit.unroll import Trace, check_lengths, map_state, unroll

CellFactory = Callable[[int, int], RecurrentCell]
_NO_STAND_INS = contextlib.nullcontext()  # a forward's context when no flat name stands in (rnnkit.torch_names)


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise RnnkitError(f"{name} must be a probability in [0, 1), got {value}.")


class RecurrentLayer(nn.Module):
    r"""Stacked, optionally bidirectional recurrence over one cell kind (base of RNN, LSTM and GRU).

    Regularisers beyond torch's ``dropout`` (see :func:`rnnkit.unroll`): ``recurrent_dropout``, one mask per
    sequence on ``h`` before :math:`W_{hh}`, in training only; and ``zoneout`` :math:`p`, where each unit of ``h``
    (and of an LSTM's ``c``) keeps its previous value with probability :math:`p` at each step in training, and
    evaluation uses that noise's expectation, :math:`h_t = p\, h_{t-1} + (1 - p)\, \tilde h_t` (Krueger et al.
    2017), so zoneout shapes eval outputs too.

    Cells live in ``self.cells``, ordered like torch's states: index ``layer * D + direction``.
    """

    def __init__(
        self,
        make_cell: CellFactory,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        *,
        recurrent_dropout: float,
        zoneout: float,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise RnnkitError(f"num_layers must be at least 1, got {num_layers}.")
        if input_size < 1 or hidden_size < 1:
            raise RnnkitError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}.")
        for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
            _check_probability(name, value)
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"dropout={dropout} only acts between layers, so it does nothing with num_layers=1.",
                stacklevel=3,
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.recurrent_dropout = float(recurrent_dropout)
        self.zoneout = float(zoneout)
        self.num_directions = 2 if bidirectional else 1

        cells = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else self.num_directions * _emitted_size(cells[-1])
            cells.extend(make_cell(layer_input, hidden_size) for _ in range(self.num_directions))
        self.cells = nn.ModuleList(cells)
        self.output_size = _emitted_size(cells[0])

        # torch.nn's flat names ("weight_hh_l1_reverse") -> ours ("cells.3.weight_hh"), see rnnkit.torch_names
        self._stand_ins: dict[str, Tensor] = {}
        self._torch_names = torch_names.flat_names(self.cells, self.num_directions)
        # (cell index, parameter name) of the top-level parameters torch.nn's fused loops take, in order
        self._flat_sources = [
            (int(ours.split(".")[1]), ours.split(".")[2]) for ours in self._torch_names.values() if ours.count(".") == 2
        ]
        # the width of each state component (h; h and c for an LSTM), for validating a given hx
        template = self.cells[0].init_state(1, device="meta")
        self._state_sizes = tuple(p.shape[-1] for p in ((template,) if isinstance(template, Tensor) else template))
        self._register_state_dict_hook(torch_names.to_torch_keys)
        self._register_load_state_dict_pre_hook(torch_names.from_torch_keys, with_module=True)
        self.register_load_state_dict_post_hook(torch_names.missing_keys_as_torch)

    # --- torch.nn compatibility: its flat parameter names (rnnkit.torch_names) --------------------------------

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in self.__dict__.get("_torch_names", ()):
                return torch_names.read(self, name)
            raise

    def __setattr__(self, name: str, value) -> None:
        if name in self.__dict__.get("_torch_names", ()):
            torch_names.assign(self, name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_torch_names", ()):
            torch_names.remove(self, name)
        else:
            super().__delattr__(name)

    @property
    def _flat_weights_names(self) -> list[str]:
        return list(self._torch_names)

    @property
    def _flat_weights(self) -> list[Tensor]:
        """Parameters in torch.nn's order: per layer and direction, w_ih, w_hh, b_ih, b_hh, w_hr."""
        # direct attribute reads: this runs on every forward of the fused path
        cells = list(self.cells)  # one walk of the ModuleList: indexing it is slow
        return [getattr(cells[index], name) for index, name in self._flat_sources]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [list(cell.parameters()) for cell in self.cells]

    def flatten_parameters(self) -> None:
        """Accepted for torch.nn compatibility; rnnkit's kernels do not need one flat weight buffer."""

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for name, default in (
            ("proj_size", 0),  # where torch.nn.LSTM shows it
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("nonlinearity", "tanh"),  # RNN only
            ("layer_norm", False),  # LSTM and GRU only
            ("recurrent_dropout", 0.0),
            ("zoneout", 0.0),
        ):
            if getattr(self, name, default) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text

    # --- forward -------------------------------------------------------------------------------------------

    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: State | None = None,
        *,
        lengths: Tensor | list[int] | None = None,
        return_trace: bool = False,
    ):
        """Run the layers over a sequence, as ``torch.nn``'s ``forward``.

        Args:
            input: ``(L, N, H_in)`` (``(N, L, H_in)`` if ``batch_first``), ``(L, H_in)`` unbatched, or a
                ``PackedSequence``.
            hx: initial state, ``(D*num_layers, N, H_out)``; for an LSTM the tuple ``(h_0, c_0)`` with
                ``c_0`` ``(D*num_layers, N, H)``. Zeros when ``None``.
            lengths: ``(N,)`` valid steps per sequence (keyword-only). Padded steps output zeros and leave
                the state alone, so ``h_n`` is each sequence's state at its own last step.
            return_trace: also return a dict keyed ``"l0"``, ``"l0_reverse"``, ... of per-step states and
                gates (see :func:`rnnkit.unroll`), time-first ``(L, N, ·)``.

        Returns:
            ``(output, h_n)`` (``h_n`` a tuple for an LSTM), plus the trace when asked. ``output`` is
            ``(L, N, D*H_out)`` (batch-first, packed or unbatched like the input).
        """
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise RnnkitError("pass either a PackedSequence or lengths=, not both.")
            packed_input = input
            x, lengths = pad_packed_sequence(input)  # (L, N, H_in), original batch order
        else:
            if input.dim() not in (2, 3):
                layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
                raise RnnkitError(
                    f"input must be 3-D {layout} or 2-D unbatched (time, features), got "
                    f"{input.dim()}-D with shape {tuple(input.shape)}."
                )
            unbatched = input.dim() == 2
            x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        if x.shape[-1] != self.input_size:
            raise RnnkitError(
                f"input has {x.shape[-1]} features but the layer expects input_size={self.input_size}; "
                "reshape the input or rebuild the layer."
            )
        weight = next(self.parameters())
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            # torch.nn refuses this too; the products below would fail with a message about mat1 and mat2
            raise RnnkitError(
                f"input dtype {x.dtype} does not match the layer's {weight.dtype}; convert the input with "
                f".to({weight.dtype}) or the layer with .to({x.dtype})."
            )
        num_steps, batch_size = x.shape[0], x.shape[1]
        if hx is not None:
            if unbatched:
                hx = map_state(lambda s: s.unsqueeze(1) if s.dim() == 2 else s, hx)
            self._check_state(hx, x)
            hx = hx if isinstance(hx, Tensor) else tuple(hx)  # torch.nn takes a list [h, c] too; kernels test tuple
        if lengths is not None:
            lengths = check_lengths(lengths, num_steps, batch_size, x.device)

        # under torch.compile the recurrence runs eagerly, as torch.nn's RNN modules do (TorchDynamo's allow_rnn):
        # it cannot see the native loops, and inductor failed on aten's (mkldnn_rnn_layer at a new size)
        run = self._run_eagerly if torch.compiler.is_compiling() else self._run
        with torch_names.standing_in(self) if self._stand_ins else _NO_STAND_INS:
            output, h_n, trace = run(x, hx, lengths, return_trace)

        # -> the caller's layout
        if packed:
            output = _repack_like(output, lengths, packed_input)
        elif unbatched:
            output, h_n = output.squeeze(1), map_state(lambda s: s.squeeze(1), h_n)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return (output, h_n, trace) if return_trace else (output, h_n)

    def _run(self, x: Tensor, hx: State | None, lengths: Tensor | None, return_trace: bool):
        """Pick the fused kernel when it gives the same numbers, else unroll the cells layer by layer."""
        if not return_trace:
            fused = kernels.run_fused(self, x, hx, lengths)
            if fused is not None:
                return (*fused, None)
        return self._unroll_layers(x, hx, lengths, return_trace)

    _run_eagerly = torch.compiler.disable(_run)

    def _unroll_layers(self, x: Tensor, hx: State | None, lengths: Tensor | None, return_trace: bool):
        """The reference path: :func:`unroll` per layer and direction, dropout between layers."""
        finals: list[State] = []
        traces: dict[str, Trace] = {}
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                state = None if hx is None else map_state(lambda s, i=index: s[i], hx)
                result = unroll(
                    self.cells[index],
                    x,
                    state,
                    lengths,
                    reverse=direction == 1,
                    trace=return_trace,
                    recurrent_dropout=self.recurrent_dropout,
                    zoneout=self.zoneout,
                )
                outputs.append(result[0])
                finals.append(result[1])
                if return_trace:
                    traces[f"l{layer}" + ("_reverse" if direction else "")] = result[2]
            x = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # -> (L, N, D*H_out)
            if layer < self.num_layers - 1 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, training=True)
        h_n = map_state(lambda *parts: torch.stack(parts), *finals)
        return x, h_n, traces

    def _check_state(self, hx: State, x: Tensor, batch_dim: int = 1) -> None:
        """Refuse a state whose structure, shapes, dtype or device do not fit this layer and the input ``x``."""
        batch_size = x.shape[batch_dim]
        hx_parts = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        sizes = self._state_sizes
        if len(hx_parts) != len(sizes) or not all(isinstance(p, Tensor) for p in hx_parts):
            kind = "a tensor" if len(sizes) == 1 else f"a tuple of {len(sizes)} tensors"
            raise RnnkitError(f"hx must be {kind} for {type(self).__name__}, got {type(hx).__name__}.")
        for given, size in zip(hx_parts, sizes, strict=True):
            expected = (self.num_layers * self.num_directions, batch_size, size)
            if given.dim() == 3 and given.shape[1] != batch_size:
                raise RnnkitError(
                    f"hx has batch size {given.shape[1]} but the input has batch size {batch_size}; "
                    "pass one state per sequence."
                )
            if tuple(given.shape) != expected:
                raise RnnkitError(
                    f"hx must have shape {expected} (num_layers*num_directions, batch, hidden), got "
                    f"{tuple(given.shape)}."
                )
            if given.device != x.device:  # torch.nn refuses this too, in its own words
                raise RnnkitError(f"hx is on {given.device} but the input is on {x.device}; move hx with .to().")
            if given.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
                # else the loops fail deep inside ("expected scalar type Double but found Float")
                raise RnnkitError(
                    f"hx has dtype {given.dtype} but the input has {x.dtype}; convert hx with .to({x.dtype})."
                )

    # --- one step at a time --------------------------------------------------------------------------------

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        """Zero state in torch's layout, ``(D*num_layers, N, H_out)`` (a tuple for an LSTM)."""
        states = [cell.init_state(batch_size, device=device, dtype=dtype) for cell in self.cells]
        return map_state(lambda *parts: torch.stack(parts), *states)

    def step(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Advance one time step: ``x_t`` ``(N, H_in)`` -> ``(y_t (N, H_out), state)``.

        The state has torch's layout, so ``step`` continues from a ``forward`` and vice versa; running it
        over a sequence gives ``forward``'s outputs (in eval mode: in training, dropout and zoneout draw their
        noise step by step, from the same distribution as ``forward``'s but not the same numbers under a seed).
        For generation and live streams (unidirectional only).
        """
        if self.bidirectional:
            raise RnnkitError("step() needs a unidirectional layer: the reverse direction reads the future.")
        if x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            raise RnnkitError(f"x_t must have shape (batch, {self.input_size}), got {tuple(x_t.shape)}.")
        if state is None:
            state = self.initial_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        else:
            self._check_state(state, x_t, batch_dim=0)
        if self.training and self.recurrent_dropout > 0:
            raise RnnkitError(
                "step() cannot keep recurrent_dropout's one-mask-per-sequence across calls; call eval() "
                "first or use forward() for training."
            )
        # the cells one after the other, or one native call for the whole stack (rnnkit.kernels.streaming)
        with torch_names.standing_in(self) if self._stand_ins else _NO_STAND_INS:
            return kernels.step(self, x_t, state)

    # --- interchange with torch.nn -------------------------------------------------------------------------

    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> RecurrentLayer:
        """Build the rnnkit twin of a ``torch.nn.RNN``/``LSTM``/``GRU`` with the same weights."""
        kwargs = dict(
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
            bidirectional=module.bidirectional,
        )
        if isinstance(module, nn.LSTM):
            kwargs["proj_size"] = module.proj_size
        if isinstance(module, nn.RNN):
            kwargs["nonlinearity"] = module.nonlinearity
        expected = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}.get(type(module))
        if expected is None or (cls is not RecurrentLayer and expected is not cls):
            raise RnnkitError(f"from_torch expects torch.nn.RNN, LSTM or GRU, got {type(module).__name__}.")
        weight = module.weight_ih_l0
        layer = expected(module.input_size, module.hidden_size, **kwargs, device=weight.device, dtype=weight.dtype)
        layer.load_state_dict(module.state_dict())
        return layer.train(module.training)


def _emitted_size(cell: RecurrentCell) -> int:
    """The width of the ``h`` a cell emits, read off its zero state: a cell written to the documented
    contract (``project`` / ``step`` / ``init_state``) need not have ``output_size``."""
    state = cell.init_state(1, device="meta")
    return (state if isinstance(state, Tensor) else state[0]).shape[-1]


def _repack_like(output: Tensor, lengths: Tensor, packed_input: PackedSequence) -> PackedSequence:
    """Pack ``output`` ``(L, N, ·)`` with the same batch sizes and sort order as the packed input."""
    order = packed_input.sorted_indices
    if order is not None:
        output, lengths = output.index_select(1, order), lengths.index_select(0, order.to(lengths.device))
    data = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=True).data
    return PackedSequence(data, packed_input.batch_sizes, packed_input.sorted_indices, packed_input.unsorted_indices)


class RNN(RecurrentLayer):
    r"""Elman RNN layers, a drop-in for ``torch.nn.RNN``: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh}
    h_{t-1} + b_{hh})` per layer (see :class:`rnnkit.cells.RNNCell`).

    Args follow ``torch.nn.RNN``; keyword-only extras: ``recurrent_dropout``, ``zoneout``, ``cell`` (a
    callable ``(input_size, hidden_size) -> cell`` that replaces the built-in cell).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        cell: CellFactory | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise RnnkitError(f"Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        self.proj_size, self.mode = 0, f"RNN_{nonlinearity.upper()}"  # torch.nn's attributes, read by its users
        if cell is None:

            def cell(i, h):
                return RNNCell(i, h, bias, nonlinearity, device=device, dtype=dtype)

        super().__init__(
            cell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )


class LSTM(RecurrentLayer):
    r"""LSTM layers, a drop-in for ``torch.nn.LSTM`` (see :class:`rnnkit.cells.LSTMCell` for the equations).

    Args follow ``torch.nn.LSTM`` (including ``proj_size``); keyword-only extras: ``layer_norm`` (use
    :class:`rnnkit.cells.LayerNormLSTMCell`), ``recurrent_dropout``, ``zoneout``, ``cell``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        cell: CellFactory | None = None,
    ) -> None:
        check_proj_size(proj_size, hidden_size)
        self.proj_size = proj_size
        self.layer_norm = layer_norm
        self.mode = "LSTM"  # torch.nn's attribute, read by its users
        if cell is None:
            cell_class = LayerNormLSTMCell if layer_norm else LSTMCell

            def cell(i, h):
                return cell_class(i, h, bias, proj_size, device=device, dtype=dtype)

        super().__init__(
            cell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )


class GRU(RecurrentLayer):
    r"""GRU layers, a drop-in for ``torch.nn.GRU`` (see :class:`rnnkit.cells.GRUCell` for the equations).

    Args follow ``torch.nn.GRU``; keyword-only extras: ``layer_norm`` (use
    :class:`rnnkit.cells.LayerNormGRUCell`), ``recurrent_dropout``, ``zoneout``, ``cell``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        cell: CellFactory | None = None,
    ) -> None:
        self.layer_norm = layer_norm
        self.proj_size, self.mode = 0, "GRU"  # torch.nn's attributes, read by its users
        if cell is None:
            cell_class = LayerNormGRUCell if layer_norm else GRUCell

            def cell(i, h):
                return cell_class(i, h, bias, device=device, dtype=dtype)

        super().__init__(
            cell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
        )
