"""Sequence models for the memory tasks: one recurrent layer and a linear head on its last steps, built for
every cell kind at the same parameter budget (so a wider RNN competes with a narrower LSTM)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer
from rnnkit.viz.gradient_flow import open_gates

# cell name -> layer builder (input_size, hidden_size)
CELLS: dict[str, Callable[[int, int], RecurrentLayer]] = {
    "rnn": lambda i, h: RNN(i, h, batch_first=True),
    "lstm": lambda i, h: LSTM(i, h, batch_first=True),
    "gru": lambda i, h: GRU(i, h, batch_first=True),
    "ln-lstm": lambda i, h: LSTM(i, h, batch_first=True, layer_norm=True),
    "ln-gru": lambda i, h: GRU(i, h, batch_first=True, layer_norm=True),
}
# forget / update gates start at sigma(1) = 0.73 (Jozefowicz et al. 2015; Keras' unit_forget_bias), so memory
# survives from the first update instead of being learnt out of a plateau
GATE_BIAS = 1.0


def check_cell(cell: str) -> None:
    if cell not in CELLS:
        raise RnnkitError(f"Unknown cell {cell!r}. Select from {', '.join(CELLS)}.")


class SequenceModel(nn.Module):
    """A recurrent layer whose last ``output_steps`` outputs go through a linear head.

    Shapes: x ``(N, L, H_in)`` -> ``(N, output_steps, output_size)``.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        output_steps: int = 1,
        *,
        gate_bias: float | None = GATE_BIAS,
    ) -> None:
        super().__init__()
        check_cell(cell)
        self.rnn = CELLS[cell](input_size, hidden_size)
        self.head = nn.Linear(self.rnn.output_size, output_size)
        self.output_steps = output_steps
        if gate_bias is not None and cell != "rnn":
            for layer_cell in self.rnn.cells:
                open_gates(layer_cell, gate_bias)

    def forward(self, x: Tensor) -> Tensor:
        output, _ = self.rnn(x)  # (N, L, H)
        return self.head(output[:, -self.output_steps :])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hidden_size_for_budget(cell: str, input_size: int, output_size: int, budget: int) -> int:
    """The widest hidden size whose model (layer and head) has at most ``budget`` parameters."""
    check_cell(cell)

    def size(hidden: int) -> int:
        layer = CELLS[cell](input_size, hidden).to("meta")  # counted, never computed
        return count_parameters(layer) + hidden * output_size + output_size

    if size(1) > budget:
        raise RnnkitError(f"a parameter budget of {budget} is too small for even one {cell} unit; raise it.")
    low, high = 1, 1
    while size(high) <= budget:
        low, high = high, 2 * high
    while high - low > 1:  # invariant: size(low) <= budget < size(high)
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) <= budget else (low, middle)
    return low
