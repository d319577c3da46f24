"""rnnkit: recurrent neural networks for PyTorch, from the cell equations to trained models."""

from rnnkit.allocator import keep_freed_memory
from rnnkit.cells import (
    GRUCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    RecurrentCell,
    RNNCell,
)
from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer
from rnnkit.tasks import from_pretrained, load
from rnnkit.tbptt import detach_state, tbptt_windows
from rnnkit.unroll import unroll

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
    "RNNCell",
    "RecurrentCell",
    "RecurrentLayer",
    "RnnkitError",
    "__version__",
    "detach_state",
    "from_pretrained",
    "keep_freed_memory",
    "load",
    "tbptt_windows",
    "unroll",
]
