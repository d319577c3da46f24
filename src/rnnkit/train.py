"""One Trainer for every task model.

The trainer only uses the task-model contract (../shared/DESIGN.md):

* ``model.loss(batch)`` -> :class:`LossOutput` (mean loss, the units it averages over, optional state);
  a model with ``carries_state = True`` is called as ``model.loss(batch, state)`` and its state is carried
  from batch to batch, detached at each edge (truncated BPTT over a stream). A checkpoint stores a named tuple
  in that state by its field names, not its class; a resume takes the class from the state the model returns
  for the next batch from a fresh start (one forward pass without gradients, the generators put back);
* ``model.evaluate(data)`` -> dict of metrics, lower ``monitor`` is better;
* optionally ``model.parameter_groups()`` -> the optimizer's groups, each ``{"params": [...]}`` with an
  optional ``"lr_scale"`` (e.g. a smaller rate for tensors copied from a pretrained model);
* a model with ``validate_start = True`` starts as a forecast worth keeping (a forecaster whose untrained
  state is its ridge fit): it is validated before the first step, as step 0, and stays the saved best model
  unless training beats it on the validation data.

``run_config`` is what ``config.json`` records beside the weights (task, model config, tokenizer), enough
for :func:`rnnkit.load` to rebuild the model.

Training data is any object with ``len()`` (batches per epoch) and ``batches(epoch)``, which must yield the
same batches for the same epoch: that is what makes ``--resume`` land on bit-identical weights.

Checkpoints are only ever written at an optimizer-step boundary (at the start, at validations, every
``checkpoint_every`` steps, at the end), so nothing is snapshotted per step. The first Ctrl-C or SIGTERM asks
the loop to stop at the next boundary and save there; anything that interrupts a step half-way leaves the last
checkpoint in place, and resuming replays from it to the same weights.

Under ``torchrun`` (:mod:`rnnkit.distributed`) each process trains on its rows of every global batch through
DistributedDataParallel; rank 0 alone validates, logs and writes files, and the checkpoint holds the global
position and the whole batch's carried state, so a run resumes on any number of processes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rnnkit import checkpoint, distributed, precision
from rnnkit.errors import RnnkitError
from rnnkit.tbptt import detach_state, rebuild_like

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
SCHEDULES = ("constant", "cosine", "plateau")

# the signal (SIGINT, SIGTERM) that stopped this process' latest fit, which then saved and returned normally: a
# signal belongs to the process, and the CLI exits with 128 + its number, as a shell and a scheduler expect of
# a job they stopped (a Kubernetes Job that exits 0 counts as done and is not run again)
_stopped_by_signal: int | None = None


def stopped_by_signal(*, clear: bool = False) -> int | None:
    """The number of the signal that made the latest :meth:`Trainer.fit` of this process stop early, or ``None``;
    ``clear``: forget it (the CLI does, before each command)."""
    global _stopped_by_signal
    number = _stopped_by_signal
    if clear:
        _stopped_by_signal = None
    return number


@dataclass
class LossOutput:
    loss: Tensor  # mean over ``units``: what backward() sees
    units: int  # tokens, examples or frames averaged over (throughput, weighted means)
    state: Any = None  # carried to the next batch of a stream
    # what ``loss`` divides by, where that is not ``units`` (a class-weighted mean: the summed class weights);
    # data-parallel ranks are weighted by it
    averaged_over: float | None = None


class TrainData(Protocol):
    def __len__(self) -> int: ...
    def batches(self, epoch: int): ...


class TrainingDiverged(RnnkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    max_minutes: float | None = None  # wall-clock budget, checked between batches
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    schedule: str = "cosine"
    warmup_steps: int = 0
    plateau_factor: float = 0.5  # "plateau": LR multiplier when validation stalls
    clip_norm: float | None = 1.0
    accumulate: int = 1  # batches per optimizer step
    patience: int | None = None  # evaluations without improvement before stopping early
    eval_every: int = 0  # optimizer steps between validations; 0 = once per epoch
    checkpoint_every: int = 0  # optimizer steps between resume checkpoints; 0 = at each validation
    monitor: str = "loss"  # validation metric to minimise
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast on CPU or CUDA) or fp16 (CUDA, with loss scaling)
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise RnnkitError(f"Unknown optimizer {self.optimizer!r}. Select from {', '.join(OPTIMIZERS)}.")
        if self.schedule not in SCHEDULES:
            raise RnnkitError(f"Unknown schedule {self.schedule!r}. Select from {', '.join(SCHEDULES)}.")
        if self.epochs < 1 or self.accumulate < 1:
            raise RnnkitError(f"epochs and accumulate must be at least 1, got {self.epochs} and {self.accumulate}.")
        # written as "not inside the range" so that NaN, which fails every comparison, is refused too
        if not 0 < self.learning_rate < math.inf:
            raise RnnkitError(f"learning_rate must be a positive number, got {self.learning_rate}.")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise RnnkitError(f"max_minutes must be a positive number, got {self.max_minutes}.")
        if not 0 <= self.weight_decay < math.inf or not 0 <= self.momentum < 1:
            raise RnnkitError(
                f"weight_decay must be >= 0 and momentum in [0, 1), got {self.weight_decay} and {self.momentum}."
            )
        # a negative norm would flip every gradient's sign inside clip_grad_norm_
        if self.clip_norm is not None and not 0 <= self.clip_norm < math.inf:
            raise RnnkitError(f"clip_norm must be 0 (no clipping) or a positive number, got {self.clip_norm}.")
        if not 0 < self.plateau_factor < 1:
            raise RnnkitError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}.")
        for name in ("patience", "eval_every", "warmup_steps", "checkpoint_every"):
            count = getattr(self, name) or 0  # patience None: no early stopping
            if count < 0:
                raise RnnkitError(f"{name} must be 0 or more, got {count}.")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise RnnkitError(f"Unknown device {self.device!r}. Select from auto, cpu, cuda.")
        if self.precision not in precision.PRECISIONS:
            raise RnnkitError(f"Unknown precision {self.precision!r}. Select from {', '.join(precision.PRECISIONS)}.")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RnnkitError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return torch.device(name)


def warmup_factor(step: int, warmup: int) -> float:
    """The share of the learning rate at optimizer step ``step`` (0-based) of a linear ``warmup``, every schedule's."""
    return min(1.0, (step + 1) / warmup)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside ``batch`` (tensors, tuples, named tuples, lists, dicts) to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return rebuild_like(batch, (to_device(b, device) for b in batch))
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def parameter_groups(model: nn.Module, learning_rate: float) -> list[dict]:
    """The optimizer's parameter groups: one at ``learning_rate``, unless the task model defines
    ``parameter_groups()`` (groups of ``params`` with an optional ``lr_scale``, e.g. a smaller rate for
    pretrained parts). The schedule then multiplies every group's rate by the same factor."""
    if not hasattr(model, "parameter_groups"):
        return [{"params": list(model.parameters()), "lr": learning_rate}]
    groups = [{"params": g["params"], "lr": learning_rate * g.get("lr_scale", 1.0)} for g in model.parameter_groups()]
    # torch's optimizer refuses a tensor in two groups; a count catches the ones left out
    listed, total = sum(len(g["params"]) for g in groups), sum(1 for _ in model.parameters())
    if listed != total:
        raise RnnkitError(f"parameter_groups() lists {listed} tensors, the model has {total}.")
    return [g for g in groups if g["params"]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every generator's state, in a form :mod:`rnnkit.checkpoint` stores: tensors, lists and numbers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Position:
    """Where training stands: the next batch to read and what the stream carried into it."""

    epoch: int = 0
    batch: int = 0  # index within the epoch of the next batch
    step: int = 0  # optimizer steps taken
    best: float = math.inf
    stale: int = 0  # evaluations since the best
    elapsed: float = 0.0  # seconds trained, over all sessions
    history: list = field(default_factory=list)
    # training loss since the last validation (log.csv's train_loss): kept here, so a resumed run logs the same
    loss_sum: float = 0.0
    loss_count: int = 0


class Trainer:
    """Fits a task model; writes checkpoints, ``log.csv`` and ``metrics.json`` into ``out``."""

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        out: Path | str,
        train_data: TrainData,
        valid_data: Any = None,
        *,
        run_config: dict | None = None,
    ) -> None:
        self.config = config
        self.run_config = run_config or {}
        self.out = Path(out)
        self.dist, self.device = distributed.setup(resolve_device(config.device))
        precision.check_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.train_data = train_data
        self.valid_data = valid_data
        self.shard = distributed.Shard(train_data, self.dist)  # this rank's rows of each batch
        self.ddp = distributed.data_parallel(self.model, self.dist, self.device)  # None when alone
        if len(train_data) < 1:
            raise RnnkitError("the training data yields no batches; give more data or a smaller batch size.")
        options = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
        if config.optimizer == "sgd":
            options["momentum"] = config.momentum
        else:
            # one fused kernel per step instead of a dozen passes over every tensor: for a 20 M-parameter
            # model on 2 CPU cores, 7.7 ms against 45 ms (bench/lm.py's WikiText model, a third of its step)
            options["fused"] = True
        self.optimizer = OPTIMIZERS[config.optimizer](parameter_groups(model, config.learning_rate), **options)
        self.position = Position()
        self.scheduler = self._make_scheduler()
        self.scaler = precision.grad_scaler(config.precision, self.device)  # fp16 only
        self.carried = None  # the stream's state (this rank's rows) entering batch ``position.batch``
        self._stop_requested = False  # set by the first Ctrl-C or SIGTERM: stop at the next step boundary

    def _make_scheduler(self):
        config = self.config
        if config.schedule == "plateau":
            for group in self.optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])  # the optimizer's state keeps it for a resume
            self._warm_up_plateau(0)
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=config.plateau_factor, patience=0)
        total = max(1, config.epochs * math.ceil(len(self.train_data) / config.accumulate))
        warmup = config.warmup_steps
        budget = None if config.max_minutes is None else config.max_minutes * 60

        def factor(step: int) -> float:
            if step < warmup:
                return warmup_factor(step, warmup)
            if config.schedule == "cosine":
                progress = (step - warmup) / max(1, total - warmup)
                if budget is not None:
                    # the cosine ends with whichever runs out first, the epochs or the time budget, so a
                    # budgeted run still anneals to zero (at the price of a wall-clock-dependent schedule)
                    progress = max(progress, self.position.elapsed / budget)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            return 1.0

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _warm_up_plateau(self, step: int) -> None:
        """The plateau schedule's warm-up: the rate for optimizer step ``step`` (0-based), rising as the other
        schedules' does. ReduceLROnPlateau has no warm-up of its own; it starts watching after this one."""
        warmup = self.config.warmup_steps
        if warmup and step <= warmup:
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * warmup_factor(step, warmup)

    # --- checkpoints ---------------------------------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress (rank 0, or the only process)."""
        return self.dist.is_main

    def save_resume_state(self) -> None:
        """Write what --resume needs. Called only at an optimizer-step boundary, where the weights,
        optimizer, generators, carried stream state and position all belong to the same moment."""
        carried = distributed.gather_state(detach_state(self.carried), self.dist)  # every rank takes part
        if not self.is_main:
            return
        checkpoint.save_state(
            self.out / checkpoint.RESUME_FILE,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_state(),
                "carried": carried,
                "position": asdict(self.position),
                "train_config": asdict(self.config),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            },
        )

    def resume(self) -> None:
        path = self.out / checkpoint.RESUME_FILE
        if not path.is_file():
            raise RnnkitError(f"nothing to resume in {self.out}: it has no {checkpoint.RESUME_FILE}.")
        self._check_same_data()
        state = checkpoint.load_state(path)
        # the tasks rebuild a resumed run's model from its config.json; one interrupted before that was written
        # is rebuilt from the command line, which must then repeat the run's model options
        what = "the model this command's options build, which must repeat the run's own"
        checkpoint.load_into(self.model, state["model"], path, what)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.is_main:
            set_rng_state(state["rng"])
        else:  # rank 0's generators are the saved ones; the others draw fresh dropout masks
            seed_everything(self._rank_seed() + state["position"]["step"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.position = Position(**state["position"])
        carried = state["carried"]
        if checkpoint.holds_named(carried):  # stored as field names: the classes come from the model's own state
            carried = checkpoint.restore_named(carried, self._live_state(), path)
        self.carried = distributed.scatter_state(to_device(carried, self.device), self.dist)

    def _check_same_data(self) -> None:
        """Refuse a resume whose data options differ from the run's: the saved position (epoch, batch) and the
        carried state index these batches, and other windows or batch sizes would continue another run
        silently (``--window 128`` left off a run started with 32 cut its epochs into other batches)."""
        if not (self.out / checkpoint.CONFIG_FILE).is_file() or "data" not in self.run_config:
            return
        saved = checkpoint.read_config(self.out).get("data")
        given = json.loads(checkpoint.strict_json(self.run_config["data"]))  # as written: tuples as lists
        if not isinstance(saved, dict):
            return
        for name, value in given.items():
            if name in saved and saved[name] != value:
                raise RnnkitError(
                    f"the run in {self.out} was started with {name} {saved[name]!r}, this command gives {value!r}; "
                    "resume with the data options the run was started with."
                )

    def _live_state(self) -> Any:
        """The state the model carries out of the next batch from a fresh start: a forward pass without gradients,
        the generators put back after it, for the structure (named tuples) of a resumed carried state."""
        batch, _ = next(islice(self.shard.batches(self.position.epoch), self.position.batch, None))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices), precision.autocast(self.config.precision, self.device):
            return self.model.loss(to_device(batch, self.device), None).state

    def save_best(self) -> None:
        if self.is_main:
            checkpoint.save_model(self.out, self.model, self.run_config)

    def _rank_seed(self) -> int:
        # rank 0 keeps the configured seed (a one-process run is unchanged); the others their own masks
        return self.config.seed + 1_000_003 * self.dist.rank

    # --- the loop ------------------------------------------------------------------------------------------

    def fit(self, *, resume: bool = False) -> dict:
        """Train until the epochs, the time budget or early stopping end it; return the summary."""
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        replacing = False  # a fresh run where another was (--overwrite)
        if resume:
            self.resume()
        else:
            seed_everything(self._rank_seed())
            if self.is_main:
                replacing = checkpoint.holds_run(self.out)
                (self.out / "log.csv").unlink(missing_ok=True)  # a fresh run's curve starts fresh
                # and so does its model: a replaced run's (--overwrite) config.json and weights, left until this
                # run's first validation, would be what --resume rebuilds (another task's, another vocabulary)
                for name in (checkpoint.CONFIG_FILE, checkpoint.WEIGHTS_FILE):
                    (self.out / name).unlink(missing_ok=True)
        position = self.position
        stateful = getattr(self.model, "carries_state", False)
        budget = None if config.max_minutes is None else config.max_minutes * 60
        session_start, elapsed_before = time.perf_counter(), position.elapsed
        if not resume:
            if getattr(self.model, "validate_start", False) and self.valid_data is not None:
                self._validate(None)  # step 0: training has to beat the start to replace it
            self.save_resume_state()  # an interrupted run always has a checkpoint to go back to
            if replacing:
                # the old run's report, plots and scores would describe it beside this one; they go once this
                # run has a checkpoint of its own (a run that fails before one leaves them as they were)
                checkpoint.remove_artefacts(self.out)
        reason = "epochs"
        units, units_start = 0, time.perf_counter()
        restore_handler = self._catch_stop_signals()
        try:
            while position.epoch < config.epochs and reason == "epochs":
                self.model.train()
                bar = tqdm(
                    total=len(self.train_data),
                    initial=position.batch,
                    desc=f"epoch {position.epoch + 1}",
                    disable=True if config.quiet or not self.is_main else None,
                    leave=False,
                    dynamic_ncols=True,
                )
                batches = islice(self.shard.batches(position.epoch), position.batch, None)
                for batch, weight in batches:
                    batch = to_device(batch, self.device)
                    steps_now = (position.batch + 1) % config.accumulate == 0 or position.batch + 1 == len(self.shard)
                    with self._gradient_sync(steps_now):
                        # forward backward (detach so BPTT stops at the batch edge; the values carry on)
                        with precision.autocast(config.precision, self.device):
                            output = self._loss(batch, detach_state(self.carried) if stateful else None)
                        # the step's one host sync: checked, summed and shown (all ranks see the global mean);
                        # each rank's loss is weighted by what it averages over, as the global mean weighs it
                        share = output.units if output.averaged_over is None else output.averaged_over
                        loss_value, weight = distributed.weighted_mean(output.loss, share if weight else 0.0, self.dist)
                        if not math.isfinite(loss_value):
                            raise TrainingDiverged(
                                f"the loss became {loss_value} at step {position.step + 1} (epoch "
                                f"{position.epoch + 1}, batch {position.batch + 1}); the last good checkpoint is "
                                f"kept in {self.out}; lower the learning rate or clip gradients harder."
                            )
                        loss = output.loss if weight == 1.0 else output.loss * weight
                        loss = loss / config.accumulate if config.accumulate > 1 else loss
                        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
                    self.carried = output.state
                    position.batch += 1
                    units += output.units * self.dist.world_size
                    position.loss_sum, position.loss_count = position.loss_sum + loss_value, position.loss_count + 1
                    bar.update(1)
                    at_end = position.batch == len(self.train_data)
                    if position.batch % config.accumulate and not at_end:
                        continue
                    # clip the gradient, then update (an fp16 step unscales first and skips on overflow)
                    if self.scaler is not None:
                        self.scaler.unscale_(self.optimizer)
                    if config.clip_norm:
                        nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_norm)
                    if self.scaler is None:
                        self.optimizer.step()
                    else:
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
                    self.optimizer.zero_grad(set_to_none=True)
                    elapsed = elapsed_before + time.perf_counter() - session_start
                    stop, position.elapsed = distributed.agree(self._stop_requested, elapsed, self.dist, self.device)
                    if config.schedule == "cosine" or (
                        config.schedule == "constant" and position.step < config.warmup_steps
                    ):
                        self.scheduler.step()  # a constant rate (after warm-up) has nothing to step
                    elif config.schedule == "plateau":
                        self._warm_up_plateau(position.step + 1)
                    position.step += 1
                    if at_end:
                        position.epoch, position.batch, self.carried = position.epoch + 1, 0, None
                    if not bar.disable:
                        rate = units / max(1e-9, time.perf_counter() - units_start)
                        bar.set_postfix(loss=f"{loss_value:.3f}", units_s=f"{rate:,.0f}")
                    if at_end or (config.eval_every and position.step % config.eval_every == 0):
                        reason = self._validate(position.loss_sum / position.loss_count)
                        position.loss_sum, position.loss_count = 0.0, 0
                        self.save_resume_state()
                    elif config.checkpoint_every and position.step % config.checkpoint_every == 0:
                        self.save_resume_state()
                    if stop:
                        reason = "interrupted"
                        self.save_resume_state()
                    elif budget is not None and position.elapsed >= budget:
                        reason = "time budget"
                    if at_end or reason != "epochs":
                        break
                bar.close()
            if reason == "time budget" and (not position.history or position.history[-1]["step"] != position.step):
                # the budget ran out between validations: score and keep the newest weights too
                self._validate(position.loss_sum / max(1, position.loss_count))
                self.save_resume_state()
        except KeyboardInterrupt:
            # raised inside a step (a second Ctrl-C or SIGTERM, or code that raises it): the step's state is half
            # changed, so the last checkpoint stands; resuming replays from it to the same weights
            reason = "interrupted"
        finally:
            restore_handler()
        summary = {
            "stopped_by": reason,
            "steps": position.step,
            "epochs_completed": position.epoch,
            "train_seconds": round(position.elapsed, 1),
            "best_valid": position.best if math.isfinite(position.best) else None,
            # the step whose weights were kept (0: the untrained start of a model that validates it)
            "best_step": next((row["step"] for row in position.history if self._score(row) == position.best), None),
            "history": position.history,
        }
        if self.is_main:
            checkpoint.write_json(self.out / "metrics.json", summary)
        return summary

    def _loss(self, batch: Any, state: Any) -> LossOutput:
        """``model.loss`` (through DDP when training with others); ``state`` only goes to a stream model."""
        if self.ddp is not None:
            return LossOutput(*self.ddp(batch, state))
        if getattr(self.model, "carries_state", False):
            return self.model.loss(batch, state)
        return self.model.loss(batch)

    def _gradient_sync(self, steps_now: bool):
        """DDP all-reduces gradients in backward; between accumulated batches that can wait for the last."""
        return self.ddp.no_sync() if self.ddp is not None and not steps_now else nullcontext()

    def _catch_stop_signals(self):
        """Make the first Ctrl-C (SIGINT) or SIGTERM stop training at the next step boundary, where a checkpoint
        is consistent; a second one interrupts at once. SIGTERM is how a scheduler (Slurm preemption, ``docker
        stop``, Kubernetes, torchrun shutting its workers down) asks a job to end before it kills it, and a step
        takes well under their grace periods. Returns the function that puts the old handlers back."""
        global _stopped_by_signal
        self._stop_requested, _stopped_by_signal = False, None
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # only the main thread receives signals

        def handler(signum, frame):
            global _stopped_by_signal
            _stopped_by_signal = signum
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            if not self.config.quiet and self.is_main:  # every rank gets the signal; one says so
                name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
                # stderr, with the progress bars: under --json stdout carries one JSON object alone
                tqdm.write(f"{name}: stopping after this step and saving (again to stop at once)", file=sys.stderr)

        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {number: signal.getsignal(number) for number in stops}
        for number in stops:
            signal.signal(number, handler)

        def restore() -> None:
            for number, old in previous.items():
                # None: a handler installed outside Python, which signal cannot put back; the defaults stand in
                fallback = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
                signal.signal(number, old if old is not None else fallback)

        return restore

    def _validate(self, train_loss: float | None) -> str:
        """Evaluate, log, keep the best model, step the plateau schedule; say whether to stop early."""
        config, position = self.config, self.position
        metrics = {}
        if self.valid_data is not None and self.is_main:
            with precision.autocast(config.precision, self.device):
                metrics = self.model.evaluate(self.valid_data)
        metrics = distributed.from_main(metrics, self.dist)  # the others wait, then decide alike
        if metrics and config.monitor not in metrics:
            # else the best model and early stopping would silently follow the training loss
            raise RnnkitError(
                f"TrainConfig.monitor is {config.monitor!r}, but the model's evaluate() returned only "
                f"{', '.join(sorted(metrics))}; monitor one of those."
            )
        self.model.train()
        row = {
            "step": position.step,
            "epoch": position.epoch,
            "elapsed_s": round(position.elapsed, 1),
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            **{f"valid_{k}": v for k, v in metrics.items()},
        }
        position.history.append(row)
        score = self._score(row)
        if self.is_main:
            self._append_log(row)
        if config.schedule == "plateau" and position.step >= config.warmup_steps:
            self.scheduler.step(score)  # not during the warm-up, which would overwrite a reduction
        if score < position.best:
            position.best, position.stale = score, 0
            self.save_best()
        else:
            position.stale += 1
        if config.patience is not None and position.stale > config.patience:
            return "early stopping"
        return "epochs"

    def _score(self, row: dict) -> float | None:
        """What a logged evaluation is judged by: the monitored validation metric, else the training loss."""
        return row.get(f"valid_{self.config.monitor}", row["train_loss"])

    def _append_log(self, row: dict) -> None:
        path = self.out / "log.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())
