"""Memory tasks that show why gated cells exist: a value, a symbol or an image must be carried across many
steps, and a plain tanh RNN loses it where an LSTM or a GRU keeps it.

* :mod:`~rnnkit.tasks.memory.adding`: the adding problem (regression on two marked values).
* :mod:`~rnnkit.tasks.memory.recall`: delayed recall, the copy task (symbols seen at the start, asked
  for at the end).
* :mod:`~rnnkit.tasks.memory.digits`: scikit-learn's 8x8 digits read one pixel per step.

:mod:`~rnnkit.tasks.memory.models` builds every cell kind at an equal parameter budget;
:mod:`~rnnkit.tasks.memory.benchmark` trains the grid (task x cell x length x seed) with early stopping.
"""

from rnnkit.tasks.memory.adding import AddingTask, adding_batch
from rnnkit.tasks.memory.benchmark import MemoryConfig, run_benchmark, summarise, train_run
from rnnkit.tasks.memory.digits import DigitsTask
from rnnkit.tasks.memory.models import CELLS, SequenceModel, hidden_size_for_budget
from rnnkit.tasks.memory.recall import RecallTask, recall_batch

__all__ = [
    "CELLS",
    "AddingTask",
    "DigitsTask",
    "MemoryConfig",
    "RecallTask",
    "SequenceModel",
    "adding_batch",
    "hidden_size_for_budget",
    "recall_batch",
    "run_benchmark",
    "summarise",
    "train_run",
]
