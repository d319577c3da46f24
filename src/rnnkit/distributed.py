"""Several processes training one model: who am I, what do the others say, which rows are mine.

``torchrun --nproc_per_node N -m rnnkit <task> train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`setup` joins them into one process group
(NCCL between CUDA devices, gloo between CPU processes). Without those variables everything here is a no-op
and costs nothing, so the single-process path is the plain loop.

Data parallelism as the trainer uses it: every rank reads the same global batch order and keeps its slice
of rows (:func:`shard_batch`; a data object may do that cheaper itself with ``shard(rank, world_size)``), the
gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`, and every decision that ends
or changes the loop (a NaN loss, Ctrl-C, the time budget, early stopping) is taken from numbers all ranks
share, so no rank waits forever in a collective the others have left.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rnnkit.errors import RnnkitError
from rnnkit.tbptt import rebuild_like


@dataclass(frozen=True)
class Context:
    """This process' place among the workers: rank 0 of 1 when it trains alone."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def context_from_env() -> Context:
    """This process' place among the ``torchrun`` workers (rank 0 of 1 when started alone)."""
    try:
        return Context(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )
    except ValueError:
        message = "RANK, WORLD_SIZE and LOCAL_RANK must be integers; start the workers with torchrun."
        raise RnnkitError(message) from None


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group (once per process) and pick this rank's device: ``cuda:LOCAL_RANK`` on GPUs."""
    context = context_from_env()
    if not context.enabled:
        return context, device
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    return context, device


def _reduce(values: list[float], op: dist.ReduceOp, device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def weighted_mean(loss: Tensor, share: float, context: Context) -> tuple[float, float]:
    """The global batch's mean loss, and this rank's weight ``W share / (sum of shares)`` for its backward.

    ``share`` is what the rank's mean loss averages over (its tokens, examples, or summed class weights;
    0 for a rank without rows): weighted so, DDP's gradient average is the gradient of the global batch's
    mean even where ranks average over different amounts (a translator's tokens per rank differ). NaN on every
    rank as soon as one rank's loss is NaN, so all of them stop together."""
    if not context.enabled:
        return loss.item(), 1.0
    total, shares = _reduce([loss.item() * share, share], dist.ReduceOp.SUM, loss.device)
    if shares == 0:  # no rank had rows: nothing to learn from, and nothing to divide by
        return total, 0.0
    return total / shares, context.world_size * share / shares


def agree(stop: bool, elapsed: float, context: Context, device: torch.device) -> tuple[bool, float]:
    """One answer for all ranks: stop if any rank was asked to (Ctrl-C), and the longest clock (the time
    budget and a budgeted cosine schedule must see the same number everywhere)."""
    if not context.enabled:
        return stop, elapsed
    stop_any, longest = _reduce([float(stop), elapsed], dist.ReduceOp.MAX, device)
    return stop_any > 0, longest


def from_main(value: Any, context: Context) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not context.enabled:
        return value
    box = [value if context.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard_batch(batch: Any, context: Context) -> tuple[Any, float]:
    """This rank's rows of a global batch (every tensor is cut along dim 0) and the loss weight
    ``W n_r / N`` that makes DDP's gradient average equal the global batch's mean (uneven cuts included).

    A rank left with no rows (a last batch smaller than the world) computes on one row with weight 0, so
    it still joins the gradient all-reduce.
    """
    if not context.enabled:
        return batch, 1.0
    rows = _first_tensor(batch).shape[0]
    start = rows * context.rank // context.world_size
    stop = rows * (context.rank + 1) // context.world_size
    if stop == start:
        return _slice(batch, 0, 1), 0.0
    return _slice(batch, start, stop), context.world_size * (stop - start) / rows


def _first_tensor(batch: Any) -> Tensor:
    if isinstance(batch, Tensor):
        return batch
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        if isinstance(value, Tensor | tuple | list | dict):
            return _first_tensor(value)
    raise RnnkitError("a training batch holds no tensor to shard across processes.")


def _slice(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, Tensor):
        return batch[start:stop]
    if isinstance(batch, tuple | list):
        return rebuild_like(batch, (_slice(b, start, stop) for b in batch))
    if isinstance(batch, dict):
        return {k: _slice(v, start, stop) for k, v in batch.items()}
    return batch


# --- a stream's carried state: rows of the global batch, at dim -2 ((D*L, N, H) or (N, H)) -------------


def gather_state(state: Any, context: Context) -> Any:
    """The carried state of the whole global batch (rank 0's rows first), for a checkpoint any number of
    processes can resume from."""
    if not context.enabled or state is None:
        return state
    if isinstance(state, Tensor):
        parts = [torch.empty_like(state) for _ in range(context.world_size)]
        dist.all_gather(parts, state.contiguous())
        return torch.cat(parts, dim=-2)
    return rebuild_like(state, (gather_state(s, context) for s in state))


def scatter_state(state: Any, context: Context) -> Any:
    """This rank's rows of a global carried state (the inverse of :func:`gather_state`)."""
    if not context.enabled or state is None:
        return state
    if isinstance(state, Tensor):
        rows = state.shape[-2]
        if rows % context.world_size:
            raise RnnkitError(
                f"the checkpoint carries {rows} streams, which {context.world_size} processes cannot share "
                "evenly; resume with a number of processes that divides the batch size."
            )
        return state.tensor_split(context.world_size, dim=-2)[context.rank]
    return rebuild_like(state, (scatter_state(s, context) for s in state))


class Shard:
    """This rank's part of the training data: ``len()`` global batches, ``batches(epoch)`` yields
    ``(batch, loss_weight)``. Data with a ``shard(rank, world_size)`` method (a token stream: its rows) hands
    over only this rank's rows; any other data is read whole and cut batch by batch (:func:`shard_batch`)."""

    def __init__(self, data: Any, context: Context) -> None:
        self.context = context
        self.cut = context.enabled and not hasattr(data, "shard")
        self.data = data.shard(context.rank, context.world_size) if context.enabled and not self.cut else data

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, epoch: int):
        for batch in self.data.batches(epoch):
            yield shard_batch(batch, self.context) if self.cut else (batch, 1.0)


class _LossCall(nn.Module):
    """The model's loss as a ``forward``: DDP prepares its gradient all-reduce in ``forward``."""

    def __init__(self, model: nn.Module, stateful: bool) -> None:
        super().__init__()
        self.model, self.stateful = model, stateful

    def forward(self, batch: Any, state: Any = None) -> tuple:
        output = self.model.loss(batch, state) if self.stateful else self.model.loss(batch)
        return output.loss, output.units, output.state, output.averaged_over


def data_parallel(model: nn.Module, context: Context, device: torch.device) -> nn.Module | None:
    """``model.loss`` wrapped in :class:`DistributedDataParallel` (None when training alone).

    A model whose loss may leave parameters without a gradient in some steps (an untied adaptive softmax skips
    the clusters a batch has no targets in) says so with ``may_skip_parameters = True``: DDP then looks for them
    each step (one walk over the autograd graph) instead of waiting for their gradients forever. Only such a model:
    DDP warns (once per rank, from C++, where no Python filter reaches) when a step where it looked found none.
    """
    if not context.enabled:
        return None
    stateful = getattr(model, "carries_state", False)
    device_ids = [device.index] if device.type == "cuda" else None
    # the search is needed where parameters go unused in some steps and not in others; at a step where none did,
    # DDP says once that it found none, which for such a model is the false positive its message allows for, and
    # is left to say so (the flag cannot be switched per step, and a filter on the C++ log would hide the rest)
    skips = bool(getattr(model, "may_skip_parameters", False))
    return DistributedDataParallel(_LossCall(model, stateful), device_ids=device_ids, find_unused_parameters=skips)
