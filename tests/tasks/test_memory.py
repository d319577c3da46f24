"""Memory tasks: the data mean what the docstrings say, budgets are equal, runs stop when solved."""

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.memory import (
    CELLS,
    MemoryConfig,
    SequenceModel,
    adding_batch,
    hidden_size_for_budget,
    recall_batch,
    run_benchmark,
    summarise,
    train_run,
)
from rnnkit.tasks.memory.adding import AddingTask
from rnnkit.tasks.memory.benchmark import format_table, planned_runs
from rnnkit.tasks.memory.digits import digit_splits
from rnnkit.tasks.memory.models import count_parameters

TINY = {
    "lengths": (6,),
    "seeds": (0,),
    "max_steps": 4,
    "eval_every": 2,
    "eval_size": 16,
    "test_size": 16,
    "batch_size": 4,
}


def test_adding_target_is_the_sum_of_two_marked_values_one_in_each_half():
    x, y = adding_batch(64, 10, torch.Generator().manual_seed(0))
    values, markers = x[..., 0], x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((64,), 2.0))
    assert torch.equal(markers[:, :5].sum(1), torch.ones(64))
    torch.testing.assert_close(y, (values * markers).sum(1))


def test_recall_shows_symbols_first_and_asks_for_them_last():
    x, y = recall_batch(64, 12, torch.Generator().manual_seed(0), num_symbols=3, alphabet=5)
    assert x.shape == (64, 12, 7) and torch.equal(x.sum(-1), torch.ones(64, 12))  # one-hot
    channels = x.argmax(-1)
    assert (channels[:, 9:] == 6).all()  # the recall marker on the last 3 steps
    shown = channels[:, :9] < 5
    assert torch.equal(shown.sum(1), torch.full((64,), 3))  # 3 symbols, blanks elsewhere
    starts = shown.float().argmax(1)
    assert set(starts.tolist()) == set(range(7))  # a random start in [0, L - 2K]
    for row, begin in enumerate(starts.tolist()):
        assert torch.equal(channels[row, begin : begin + 3], y[row])  # consecutive, in order
    with pytest.raises(RnnkitError, match="needs at least 7 steps"):
        recall_batch(2, 6, torch.Generator(), num_symbols=3)


def test_digit_splits_are_disjoint_and_cover_the_bundled_images():
    splits = digit_splits()
    sizes = {name: len(y) for name, (_, y) in splits.items()}
    assert sizes == {"train": 1149, "valid": 288, "test": 360}
    x, _ = splits["train"]
    assert x.shape[1:] == (64, 1) and 0 <= float(x.min()) and float(x.max()) == 1.0


@pytest.mark.parametrize("cell", list(CELLS))
def test_hidden_size_is_the_widest_within_the_budget(cell):
    hidden = hidden_size_for_budget(cell, 2, 1, 5000)
    assert count_parameters(SequenceModel(cell, 2, hidden, 1)) <= 5000
    assert count_parameters(SequenceModel(cell, 2, hidden + 1, 1)) > 5000


def test_an_lstm_starts_with_its_forget_gate_open_and_a_plain_rnn_is_untouched():
    lstm = SequenceModel("lstm", 2, 4, 1)
    assert torch.equal(lstm.rnn.bias_ih_l0[4:8], torch.ones(4))
    SequenceModel("rnn", 2, 4, 1)  # no gate to open, no error


def test_a_run_stops_as_soon_as_the_held_out_score_solves_the_task(monkeypatch):
    monkeypatch.setattr(AddingTask, "threshold", 10.0)  # any MSE counts as solved
    result = train_run("adding", "gru", 6, 0, MemoryConfig(**TINY))
    assert result["steps_to_solve"] == 2 and result["steps"] == 2 and result["solved"]
    assert result["parameters"] <= 5000 and result["history"][0]["step"] == 2 and result["stopped_by"] == "solved"


def test_a_run_stops_at_its_cpu_budget():
    result = train_run("adding", "rnn", 6, 0, MemoryConfig(**{**TINY, "max_steps": 10_000, "max_seconds": 0.2}))
    assert result["stopped_by"] == "time" and 0 < result["steps"] < 10_000 and result["cpu_seconds"] >= 0.2


def test_benchmark_plans_digits_at_64_steps_only_and_summarises_over_seeds():
    config = MemoryConfig(**{**TINY, "tasks": ("adding", "digits"), "cells": ("rnn",), "lengths": (6, 8)})
    assert planned_runs(config) == [("adding", "rnn", 6, 0), ("adding", "rnn", 8, 0), ("digits", "rnn", 64, 0)]
    results = run_benchmark(config)
    rows = summarise([*results, {**results[0], "seed": 1, "solved": True, "steps_to_solve": 2}])
    assert rows[0]["runs"] == 2 and rows[0]["solved"] == 1 + results[0]["solved"] and rows[0]["steps_to_solve"] == 2
    table = format_table(rows)
    assert table.splitlines()[0].startswith("| task | T | cell |") and "| digits | 64 | rnn |" in table


def test_two_workers_return_the_runs_in_plan_order():
    config = MemoryConfig(**{**TINY, "cells": ("rnn", "gru"), "tasks": ("adding",)})
    results = run_benchmark(config, workers=2)
    assert [(r["cell"], r["length"]) for r in results] == [("rnn", 6), ("gru", 6)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"cells": ("transformer",)}, "Unknown cell 'transformer'"), ({"lengths": (1,)}, "at least 2 steps"),
     ({"tasks": ()}, "at least one of the tasks"), ({"max_seconds": float("nan")}, "max_seconds must be positive")],
)  # fmt: skip
def test_bad_settings_are_one_clear_error(settings, message):
    with pytest.raises(RnnkitError, match=message):
        MemoryConfig(**settings)
