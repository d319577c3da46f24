"""The memory benchmark: every task x cell x sequence length x seed, trained on fresh batches with Adam until
the held-out score says solved (early stop) or the step budget runs out.

Each run's model has the same parameter budget (:func:`~rnnkit.tasks.memory.models.hidden_size_for_budget`).
A run is *solved* when its score on test sequences it never saw (a separate generator, or the digits' test
split) meets the task's threshold: MSE < 0.01 for adding, accuracy >= 0.99 for recall, >= 0.9 for digits.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from rnnkit.errors import RnnkitError
from rnnkit.tasks.memory.adding import AddingTask
from rnnkit.tasks.memory.digits import DigitsTask
from rnnkit.tasks.memory.models import CELLS, SequenceModel, count_parameters, hidden_size_for_budget
from rnnkit.tasks.memory.recall import RecallTask

TASKS = {"adding": AddingTask, "recall": RecallTask, "digits": DigitsTask}


@dataclass(frozen=True)
class MemoryConfig:
    tasks: tuple[str, ...] = ("adding", "recall", "digits")
    # ln-gru is left out by default: it has no fused kernel, so its unrolled steps cost about 10x the others'
    # and would take the default grid past 10 minutes on 2 cores; ask for it with cells=(..., "ln-gru")
    cells: tuple[str, ...] = ("rnn", "lstm", "gru", "ln-lstm")
    lengths: tuple[int, ...] = (50, 100, 200)  # digits always runs at its own 64
    seeds: tuple[int, ...] = (0,)
    parameter_budget: int = 5000  # on the adding problem: RNN 68 units, LSTM 33, GRU 38, LayerNorm-LSTM 32
    batch_size: int = 32
    learning_rate: float = 1e-2  # Adam; high for such small models, with clipping
    clip_norm: float = 1.0
    max_steps: int = 3000  # per run; solved runs stop earlier (an LSTM needed 2,350 at T = 200)
    max_seconds: float = 90.0  # per run, in CPU seconds of its process (so other load on the machine does
    # not shorten it); a run that hits it stops there and is judged on its test score like any other
    eval_every: int = 50  # validate (and maybe stop) every this many updates
    eval_size: int = 256  # held-out sequences per check (the digits' splits are used whole)
    test_size: int = 1000  # fresh test sequences scored at the end

    def __post_init__(self) -> None:
        for name, known in (("tasks", TASKS), ("cells", CELLS)):
            unknown = [v for v in getattr(self, name) if v not in known]
            if unknown or not getattr(self, name):
                raise RnnkitError(
                    f"Unknown {name[:-1]} {unknown[0]!r}. Select from {', '.join(known)}."
                    if unknown
                    else f"give at least one of the {name}: {', '.join(known)}."
                )
        if not self.lengths or min(self.lengths) < 2:
            raise RnnkitError(f"sequence lengths must be at least 2 steps, got {list(self.lengths)}.")
        if not self.seeds:
            raise RnnkitError("give at least one seed.")
        if not 0 < self.max_seconds < math.inf:
            raise RnnkitError(f"max_seconds must be positive, got {self.max_seconds}.")
        for name in ("parameter_budget", "batch_size", "max_steps", "eval_every", "eval_size", "test_size"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be at least 1, got {getattr(self, name)}.")


def train_run(
    task_name: str, cell: str, num_steps: int, seed: int, config: MemoryConfig, *, quiet: bool = True
) -> dict:
    """Train one model on one task at one length; return its test score, whether it solved the task and when."""
    task = TASKS[task_name]()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    hidden_size = hidden_size_for_budget(cell, task.input_size, task.output_size, config.parameter_budget)
    model = SequenceModel(cell, task.input_size, hidden_size, task.output_size, task.output_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    valid = task.held_out("valid", config.eval_size, num_steps, seed)
    steps_to_solve, history, stopped_by = None, [], "steps"
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(
        range(1, config.max_steps + 1),
        desc=f"{task_name} {cell} T={num_steps}",
        leave=False,
        disable=True if quiet else None,
    )
    step = 0
    for step in bar:
        model.train()
        x, y = task.batch(config.batch_size, num_steps, generator)
        # forward backward update
        loss = task.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        # clip the gradient: a plain RNN's explodes now and then on long sequences
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        if step % config.eval_every == 0:
            score = _score(model, task, valid)
            history.append({"step": step, "train_loss": loss.item(), task.metric: score})
            bar.set_postfix({task.metric: f"{score:.4f}"})
            if task.solved(score):
                steps_to_solve, stopped_by = step, "solved"
                break
        if time.process_time() - cpu_start > config.max_seconds:
            stopped_by = "time"
            break
    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    x, y = task.held_out("test", config.test_size, num_steps, seed)
    model.eval()
    with torch.no_grad():
        output = model(x)
        test_loss, test_score = task.loss(output, y).item(), task.score(output, y)
    return {
        "task": task_name,
        "cell": cell,
        "length": num_steps,
        "seed": seed,
        "hidden_size": hidden_size,
        "parameters": count_parameters(model),
        "metric": task.metric,
        "test_loss": test_loss,
        "test_score": test_score,
        "baseline": task.baseline,
        "threshold": task.threshold,
        "solved": task.solved(test_score),
        "steps_to_solve": steps_to_solve,
        "steps": step,
        "stopped_by": stopped_by,
        "train_seconds": round(train_seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "history": history,
    }


def _score(model: nn.Module, task, data) -> float:
    model.eval()
    with torch.no_grad():
        return task.score(model(data[0]), data[1])


def planned_runs(config: MemoryConfig) -> list[tuple[str, str, int, int]]:
    """``(task, cell, length, seed)`` of every run, lengths as each task allows (digits: only 64)."""
    runs = []
    for task_name in config.tasks:
        for num_steps in TASKS[task_name]().lengths(list(config.lengths)):
            for cell in config.cells:
                runs += [(task_name, cell, num_steps, seed) for seed in config.seeds]
    return runs


def run_benchmark(
    config: MemoryConfig,
    *,
    workers: int = 1,
    quiet: bool = True,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Every planned run, returned in plan order; ``on_result`` sees each result as it comes.

    With ``workers > 1`` the runs go to that many processes of one thread each: these models are too small
    for two threads to speed up one run, but two runs side by side take the time of one.
    """
    runs = planned_runs(config)
    bar = tqdm(total=len(runs), desc="memory", disable=True if quiet else None)
    results: dict[int, dict] = {}

    def finish(index: int, result: dict) -> None:
        results[index] = result
        bar.update(1)
        if on_result is not None:
            on_result(result)

    if workers <= 1:
        for index, run in enumerate(runs):
            finish(index, train_run(*run, config, quiet=quiet))
    else:
        # longest runs first, so no worker is left with a long one at the end
        order = sorted(range(len(runs)), key=lambda i: (-runs[i][2], runs[i][1] not in ("rnn", "ln-gru")))
        context = multiprocessing.get_context("spawn")  # fresh interpreters: forking a process using torch is unsafe
        with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            futures = {pool.submit(train_run, *runs[i], config): i for i in order}
            for future in as_completed(futures):
                finish(futures[future], future.result())
    bar.close()
    return [results[i] for i in range(len(runs))]


def summarise(results: list[dict]) -> list[dict]:
    """One row per (task, length, cell) over its seeds: runs solved, mean test loss and score, median steps to
    solve (over the solved runs), mean seconds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["task"], r["length"], r["cell"]), []).append(r)
    rows = []
    for (task_name, length, cell), runs in groups.items():
        solved_steps = [r["steps_to_solve"] for r in runs if r["steps_to_solve"] is not None]
        rows.append(
            {
                "task": task_name,
                "length": length,
                "cell": cell,
                "hidden_size": runs[0]["hidden_size"],
                "parameters": runs[0]["parameters"],
                "metric": runs[0]["metric"],
                "baseline": runs[0]["baseline"],
                "threshold": runs[0]["threshold"],
                "solved": sum(r["solved"] for r in runs),
                "runs": len(runs),
                "test_loss": statistics.fmean(r["test_loss"] for r in runs),
                "test_score": statistics.fmean(r["test_score"] for r in runs),
                "steps_to_solve": statistics.median(solved_steps) if solved_steps else None,
                "seconds": statistics.fmean(r["train_seconds"] for r in runs),
                "cpu_seconds": statistics.fmean(r["cpu_seconds"] for r in runs),
                "stopped_by": "/".join(sorted({r["stopped_by"] for r in runs})),
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    """The summary as a fixed-width text table (also valid Markdown)."""
    header = "| task | T | cell | units | params | solved | test loss | score | steps to solve | stopped by | seconds |"
    lines = [header, "|" + "---|" * 11]
    for r in rows:
        steps = "-" if r["steps_to_solve"] is None else f"{r['steps_to_solve']:.0f}"
        lines.append(
            f"| {r['task']} | {r['length']} | {r['cell']} | {r['hidden_size']} | {r['parameters']:,} | "
            f"{r['solved']}/{r['runs']} | {r['test_loss']:.4f} | {r['metric']} {r['test_score']:.4f} | {steps} | "
            f"{r['stopped_by']} | "
            f"{r['seconds']:.1f} |"
        )
    return "\n".join(lines)
