"""Data-parallel training: two gloo processes on the CPU land on the weights one process reaches."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from rnnkit import RnnkitError, checkpoint, distributed
from rnnkit.distributed import Context
from rnnkit.tasks.lm import TokenStream

SCRIPT = Path(__file__).parent / "fixtures" / "train_ddp.py"
spec = importlib.util.spec_from_file_location("train_ddp", SCRIPT)
fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(out: Path, epochs: int, *flags: str, world_size: int = 2) -> list[str]:
    """``world_size`` worker processes with the variables torchrun gives them; returns what each wrote to stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(RNNKIT_NO_NATIVE="1", OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    command = [sys.executable, str(SCRIPT), str(out), str(epochs), *flags]
    workers = [
        subprocess.Popen(command, env={**env, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world_size)},
                         stderr=subprocess.PIPE, text=True)
        for r in range(world_size)
    ]  # fmt: skip
    stderrs = []
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        stderrs.append(stderr)
    return stderrs


def weights(out: Path) -> dict:
    return checkpoint.load_state(out / checkpoint.RESUME_FILE)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for name in first:
        assert_close(first[name], second[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two ranks for one epoch, two ranks stopped by a Ctrl-C on rank 0 alone (mid-epoch), and the
    one-process runs they are compared with."""
    root = tmp_path_factory.mktemp("ddp")
    run_workers(root / "two", 1)
    run_workers(root / "interrupted", 2, "--interrupt")
    for kind in ("lm", "regression"):
        for epochs in (1, 2):
            fixture.train(root / f"one-{epochs}" / kind, kind, epochs)
    return root


@pytest.mark.parametrize("kind", ["lm", "regression"])
def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(runs, kind):
    assert_same_weights(runs / "one-1" / kind, runs / "two" / kind)
    two = json.loads((runs / "two" / kind / "metrics.json").read_text())["history"]
    one = json.loads((runs / "one-1" / kind / "metrics.json").read_text())["history"]
    assert [r["train_loss"] for r in two] == pytest.approx([r["train_loss"] for r in one], rel=1e-5)
    assert [r["valid_loss"] for r in two] == pytest.approx([r["valid_loss"] for r in one], rel=1e-5)


@pytest.mark.parametrize("kind", ["lm", "regression"])
def test_ctrl_c_on_one_rank_stops_all_and_one_process_resumes_to_the_same_weights(runs, kind):
    summary = json.loads((runs / "interrupted" / kind / "metrics.json").read_text())
    assert summary["stopped_by"] == "interrupted" and summary["epochs_completed"] == 1  # mid-second-epoch
    # the checkpoint holds the global position and all four streams' state: one process carries on
    carried = checkpoint.load_state(runs / "interrupted" / kind / checkpoint.RESUME_FILE)["carried"]
    if kind == "lm":
        assert all(t.shape[-2] == 4 for layer in carried for t in layer)
    fixture.train(runs / "interrupted" / kind, kind, 2, resume=True)
    assert_same_weights(runs / "one-2" / kind, runs / "interrupted" / kind)


def tail_reached(kind: str) -> list[bool]:
    """Whether each rank's part of each batch of epoch 0 has a target in the adaptive softmax's tail cluster."""
    _, train_data, _, _ = fixture.build(kind)
    tail = fixture.ADAPTIVE_CUTOFFS[0]
    return [bool((y >= tail).any()) for rank in range(2) for _, y in train_data.shard(rank, 2).batches(0)]


def test_a_tied_adaptive_softmax_trains_on_two_processes_without_ddps_no_unused_parameters_warning(tmp_path):
    """Tied to the input embedding, which runs every band (an empty one too), every tail weight has a gradient at
    every step, even when a rank's batch has no target in the tail: DDP needs no search for unused parameters,
    which would warn once per rank that it found none."""
    reached = tail_reached("adaptive")
    assert any(reached) and not all(reached)
    stderrs = run_workers(tmp_path / "two", 1, "--kind", "adaptive")
    assert not any("find_unused_parameters" in stderr for stderr in stderrs), stderrs
    fixture.train(tmp_path / "one" / "adaptive", "adaptive", 1)
    assert_same_weights(tmp_path / "one" / "adaptive", tmp_path / "two" / "adaptive")


def test_an_untied_adaptive_softmax_skips_the_tail_at_some_steps_and_two_processes_still_agree_with_one(tmp_path):
    """Untied, a step whose rank's batch has no target in the tail leaves the tail without a gradient there: DDP
    looks for such parameters (and may say once that a step had none), and the ranks still reach one process's
    weights (a tail no rank reached keeps no gradient, as alone)."""
    reached = tail_reached("adaptive-untied")
    assert any(reached) and not all(reached)
    run_workers(tmp_path / "two", 1, "--kind", "adaptive-untied")
    fixture.train(tmp_path / "one" / "adaptive-untied", "adaptive-untied", 1)
    assert_same_weights(tmp_path / "one" / "adaptive-untied", tmp_path / "two" / "adaptive-untied")


def test_a_batch_is_cut_into_uneven_rows_weighted_to_the_global_mean():
    batch = (torch.arange(7), {"y": torch.arange(7) * 10})
    parts = [distributed.shard_batch(batch, Context(rank, 2)) for rank in range(2)]
    assert parts[0][0][0].tolist() == [0, 1, 2] and parts[1][0][1]["y"].tolist() == [30, 40, 50, 60]
    assert [weight for _, weight in parts] == pytest.approx([2 * 3 / 7, 2 * 4 / 7])
    (_, empty_weight) = distributed.shard_batch(torch.arange(1), Context(0, 2))
    assert empty_weight == 0.0  # the rank with no rows joins the all-reduce with a zero gradient


def test_a_stream_split_over_processes_must_divide_evenly():
    stream = TokenStream(torch.arange(100), 4, 5)
    assert stream.shard(1, 2).batched.tolist() == stream.batched[2:].tolist()
    with pytest.raises(RnnkitError, match="multiple of 3"):
        stream.shard(0, 3)


def test_a_named_tuple_batch_is_cut_into_named_tuples():
    Pair = namedtuple("Pair", "x y")
    (part, _) = distributed.shard_batch(Pair(torch.arange(4), torch.arange(4) * 10), Context(1, 2))
    assert type(part) is Pair and part.y.tolist() == [20, 30]
