"""The memory benchmark's picture: each task's test score against sequence length, one line per cell."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit.viz.figure import new_figure, save

if TYPE_CHECKING:  # matplotlib loads with the first figure (rnnkit.viz.figure)
    from matplotlib.figure import Figure

COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "ln-lstm": "tab:purple", "ln-gru": "tab:olive"}


def memory_plot(rows: list[dict], out: Path | str, *, title: str = "") -> Figure:
    """One panel per task; ``rows`` as :func:`rnnkit.tasks.memory.summarise` returns them (score averaged over
    seeds). MSE panels use a log scale; the dotted line is the task's threshold, the grey one chance."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    figure, axes = new_figure(4.2 * len(tasks), 3.8, ncols=len(tasks), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        metric = task_rows[0]["metric"]
        for cell in dict.fromkeys(r["cell"] for r in task_rows):
            points = sorted((r["length"], r["test_score"]) for r in task_rows if r["cell"] == cell)
            lengths, scores = zip(*points, strict=True)
            axis.plot(lengths, scores, marker="o", label=cell, color=COLOURS.get(cell))
        axis.axhline(task_rows[0]["threshold"], color="black", linestyle=":", linewidth=1, label="solved")
        axis.axhline(task_rows[0]["baseline"], color="grey", linewidth=1, label="chance / mean")
        if metric == "mse":
            axis.set_yscale("log")
            axis.set_ylabel("test MSE (lower is better)")
        else:
            axis.set_ylim(0, 1.02)
            axis.set_ylabel("test accuracy")
        axis.set_xlabel("sequence length T (steps)")
        axis.set_title(task)
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    figure.suptitle(title or "memory tasks: equal parameter budgets")
    figure.tight_layout()
    return save(figure, out)
