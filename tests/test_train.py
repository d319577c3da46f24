"""The trainer: exact resume after SIGKILL, Ctrl-C, NaN, budgets, early stopping, accumulation."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

import rnnkit
from rnnkit import RnnkitError, checkpoint
from rnnkit.train import LossOutput, TrainConfig, Trainer, TrainingDiverged

SCRIPT = Path(__file__).parent / "fixtures" / "train_tiny_lm.py"


def run_script(out, *flags):
    # the pure-PyTorch loops: a first native build (a minute) must not race the kill below
    env = {**os.environ, "RNNKIT_NO_NATIVE": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(out), *flags], env=env)


def saved_weights(directory: Path) -> dict:
    return checkpoint.load_state(directory / checkpoint.RESUME_FILE)["model"]


def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tmp_path):
    assert run_script(tmp_path / "straight").wait() == 0

    killed = tmp_path / "killed"
    process = run_script(killed, "--slow")
    state_file = killed / checkpoint.RESUME_FILE
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if state_file.exists():
            position = checkpoint.load_state(state_file)["position"]
            if position["epoch"] == 1 and position["batch"] >= 10:  # well inside the second epoch
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()

    assert run_script(killed, "--resume").wait() == 0
    straight, resumed = saved_weights(tmp_path / "straight"), saved_weights(killed)
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    assert json.loads((killed / "metrics.json").read_text())["epochs_completed"] == 3


class Regression(nn.Module):
    """A tiny non-stream task model: y = w x + b, with hooks to fail at a chosen step."""

    def __init__(self, fail_at: int | None = None, fail_with: type[BaseException] | None = None):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.calls, self.fail_at, self.fail_with = 0, fail_at, fail_with

    @classmethod
    def from_config(cls, config):
        return cls()

    def loss(self, batch):
        self.calls += 1
        x, y = batch
        loss = nn.functional.mse_loss(self.linear(x).squeeze(-1), y)
        if self.calls == self.fail_at:
            if self.fail_with is None:
                return LossOutput(loss * math.nan, len(y))
            raise self.fail_with
        return LossOutput(loss, len(y))

    @torch.no_grad()
    def evaluate(self, data):
        losses = [self.loss(b).loss.item() for b in data.batches(0)]
        return {"loss": sum(losses) / len(losses)}


class Batches:
    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def batches(self, epoch):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(self.x), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.x[index], self.y[index]


def regression_data(n=64, batch_size=8):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=generator)
    return Batches(x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3, batch_size)


def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(tmp_path):
    config = TrainConfig(epochs=3, schedule="constant", learning_rate=0.05, quiet=True)
    torch.manual_seed(0)
    straight = Regression()
    Trainer(straight, config, tmp_path / "a", regression_data(), regression_data()).fit()

    torch.manual_seed(0)
    interrupted = Regression(fail_at=13, fail_with=KeyboardInterrupt)
    summary = Trainer(interrupted, config, tmp_path / "b", regression_data(), regression_data()).fit()
    assert summary["stopped_by"] == "interrupted"
    torch.manual_seed(123)  # resuming must not depend on the fresh model's start
    resumed = Regression()
    Trainer(resumed, config, tmp_path / "b", regression_data(), regression_data()).fit(resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert_close(checkpoint.load_tensors(tmp_path / "b" / checkpoint.WEIGHTS_FILE),
                 checkpoint.load_tensors(tmp_path / "a" / checkpoint.WEIGHTS_FILE), rtol=0, atol=0)  # fmt: skip


class SignalledRegression(Regression):
    """Sends itself ``number`` (Ctrl-C's SIGINT, or a scheduler's SIGTERM) from inside its ``signal_at``-th loss
    call, as a user or a scheduler would mid-step."""

    def __init__(self, signal_at: int, number: int = signal.SIGINT):
        super().__init__()
        self.signal_at, self.number = signal_at, number

    def loss(self, batch):
        if self.calls + 1 == self.signal_at:
            os.kill(os.getpid(), self.number)
        return super().loss(batch)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_finishes_the_step_saves_there_and_resume_matches(tmp_path, number):
    config = TrainConfig(epochs=3, schedule="constant", learning_rate=0.05, quiet=True)
    torch.manual_seed(0)
    straight = Regression()
    Trainer(straight, config, tmp_path / "a", regression_data(), regression_data()).fit()

    torch.manual_seed(0)
    # whatever the signals did before (a job started in the background under nohup ignores SIGINT)
    handlers_before = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    summary = Trainer(SignalledRegression(13, number), config, tmp_path / "b", regression_data()).fit()
    assert summary["stopped_by"] == "interrupted" and summary["steps"] == 13  # the signalled step completes
    saved = checkpoint.load_state(tmp_path / "b" / checkpoint.RESUME_FILE)["position"]
    assert (saved["step"], saved["epoch"], saved["batch"]) == (13, 1, 5)  # 8 batches an epoch
    assert {n: signal.getsignal(n) for n in handlers_before} == handlers_before  # the handlers are put back

    torch.manual_seed(123)
    resumed = Regression()
    Trainer(resumed, config, tmp_path / "b", regression_data(), regression_data()).fit(resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    # the resumed run's log too: epoch 2's training loss spans the steps before the stop and after it
    histories = [checkpoint.read_json(tmp_path / run / "metrics.json")["history"] for run in ("a", "b")]
    logged = [{row["step"]: row["train_loss"] for row in history} for history in histories]
    assert logged[1] and all(logged[1][step] == pytest.approx(logged[0][step], rel=1e-12) for step in logged[1])


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model = Regression(fail_at=20)  # loss() calls count validation too: this is epoch 2, batch 4
    trainer = Trainer(
        model,
        TrainConfig(epochs=5, quiet=True),
        tmp_path,
        regression_data(),
        regression_data(),
        run_config={"task": "test"},
    )
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 12 \(epoch 2, batch 4\)"):
        trainer.fit()
    good = checkpoint.load_tensors(
        tmp_path / checkpoint.WEIGHTS_FILE, checkpoint.read_config(tmp_path)["weights_sha256"]
    )
    assert all(torch.isfinite(t).all() for t in good.values())


def test_time_budget_stops_training(tmp_path):
    config = TrainConfig(epochs=10_000, max_minutes=0.02, quiet=True)
    summary = Trainer(Regression(), config, tmp_path, regression_data(), regression_data()).fit()
    assert summary["stopped_by"] == "time budget" and summary["epochs_completed"] < 10_000
    assert 1.2 <= summary["train_seconds"] < 10


def test_a_budgeted_cosine_follows_the_clock_when_it_ends_before_the_epochs(tmp_path):
    config = TrainConfig(epochs=1000, max_minutes=1.0, learning_rate=0.1, quiet=True)
    trainer = Trainer(Regression(), config, tmp_path, regression_data(), regression_data())
    factor = trainer.scheduler.lr_lambdas[0]
    assert factor(0) == 1.0
    trainer.position.elapsed = 30.0  # half the budget, a tiny fraction of the epochs
    assert math.isclose(factor(5), 0.5, abs_tol=1e-12)
    trainer.position.elapsed = 90.0
    assert factor(5) == 0.0
    unbudgeted = Trainer(
        Regression(), TrainConfig(epochs=2, quiet=True), tmp_path, regression_data(), regression_data()
    )
    assert math.isclose(unbudgeted.scheduler.lr_lambdas[0](8), 0.5, abs_tol=1e-12)  # 8 of 16 steps


def test_early_stopping_after_patience_evaluations(tmp_path):
    class Stalled(Regression):
        def evaluate(self, data):
            return {"loss": 1.0}  # never improves after the first evaluation

    config = TrainConfig(epochs=20, patience=2, quiet=True)
    summary = Trainer(Stalled(), config, tmp_path, regression_data(), regression_data()).fit()
    assert summary["stopped_by"] == "early stopping" and summary["epochs_completed"] == 4
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 1 + 4


def test_gradient_accumulation_equals_a_bigger_batch(tmp_path):
    class Ordered(Batches):
        def batches(self, epoch):
            for start in range(0, len(self.x), self.batch_size):
                yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]

    data = regression_data()
    results = []
    for batch_size, accumulate in ((16, 1), (8, 2)):
        torch.manual_seed(0)
        model = Regression()
        config = TrainConfig(
            epochs=2,
            optimizer="sgd",
            momentum=0.0,
            schedule="constant",
            learning_rate=0.1,
            accumulate=accumulate,
            clip_norm=None,
            quiet=True,
        )
        Trainer(model, config, tmp_path / str(batch_size), Ordered(data.x, data.y, batch_size)).fit()
        results.append(model.linear.weight.detach().clone())
    assert_close(results[0], results[1])


def test_metrics_log_and_checkpoint_are_written(tmp_path):
    for _ in range(2):  # a second fresh run into the same directory starts its own log
        Trainer(
            Regression(),
            TrainConfig(epochs=2, quiet=True),
            tmp_path,
            regression_data(),
            regression_data(),
            run_config={"task": "test"},
        ).fit()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 16 and metrics["best_valid"] == metrics["history"][-1]["valid_loss"]
    assert metrics["best_step"] == 16
    log = (tmp_path / "log.csv").read_text()
    assert log.startswith("step,epoch,elapsed_s,lr,train_loss,valid_loss") and len(log.splitlines()) == 3
    assert checkpoint.read_config(tmp_path)["task"] == "test"


def test_a_fresh_run_interrupted_before_its_first_checkpoint_resumes_without_the_replaced_runs_files(tmp_path):
    # an earlier run of another task (or shape) in the directory, replaced (--overwrite) by a fresh run that is
    # stopped before its first validation: the old config.json must not pair with the new run's resume state
    config = TrainConfig(epochs=2, quiet=True)
    Trainer(Regression(), config, tmp_path, regression_data(), regression_data(), run_config={"task": "old"}).fit()
    interrupted = Regression(fail_at=3, fail_with=KeyboardInterrupt)
    run_config = {"task": "new"}
    summary = Trainer(interrupted, config, tmp_path, regression_data(), regression_data(), run_config=run_config).fit()
    assert summary["stopped_by"] == "interrupted" and not summary["history"]
    for name in (checkpoint.CONFIG_FILE, checkpoint.WEIGHTS_FILE):
        assert not (tmp_path / name).exists(), name  # the replaced run's, which a resume would read
    Trainer(Regression(), config, tmp_path, regression_data(), regression_data(), run_config=run_config).fit(
        resume=True
    )
    assert checkpoint.read_config(tmp_path)["task"] == "new"


def test_a_replaced_run_takes_rnnkits_files_along_after_the_new_runs_first_checkpoint_and_no_other(tmp_path):
    config = TrainConfig(epochs=1, quiet=True)
    Trainer(Regression(), config, tmp_path, regression_data(), regression_data(), run_config={"task": "old"}).fit()
    artefacts = ["report.html", "confusion.png", "backtest.json", "inspect/unfolded.png", "inspect/states-layer-0.svg"]
    mine = ["notes.txt", "report.html.bak", "forecast.png", "inspect/sketch.txt"]  # not names rnnkit writes
    for name in artefacts + mine:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("the old run")

    class FailsAtStart(Regression):
        validate_start = True

        def evaluate(self, data):
            raise RuntimeError("no validation")

    with pytest.raises(RuntimeError):  # a new run that fails before its first checkpoint changes nothing
        Trainer(FailsAtStart(), config, tmp_path, regression_data(), regression_data()).fit()
    assert all((tmp_path / name).is_file() for name in [*artefacts, "metrics.json"])
    Trainer(Regression(), config, tmp_path, regression_data(), regression_data(), run_config={"task": "new"}).fit()
    assert not any((tmp_path / name).exists() for name in artefacts), sorted(tmp_path.rglob("*"))
    assert all((tmp_path / name).read_text() == "the old run" for name in mine)
    assert checkpoint.read_json(tmp_path / "metrics.json")["steps"] == 8  # the new run's own


def test_a_start_worth_keeping_is_validated_and_kept_unless_training_beats_it(tmp_path):
    class Fitted(Regression):
        validate_start = True  # starts at the exact solution, as a forecaster starts at its ridge fit

    model = Fitted()
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        model.linear.bias.fill_(0.3)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    noisy = regression_data()
    noisy.y = noisy.y + torch.randn(len(noisy.y), generator=torch.Generator().manual_seed(1))  # training drifts
    config = TrainConfig(epochs=2, optimizer="sgd", learning_rate=0.2, schedule="constant", quiet=True)
    summary = Trainer(model, config, tmp_path, noisy, regression_data(), run_config={"task": "test"}).fit()
    first = summary["history"][0]
    assert first["step"] == 0 and first["train_loss"] is None and first["valid_loss"] < 1e-10
    assert summary["best_valid"] == first["valid_loss"] < summary["history"][-1]["valid_loss"]
    assert summary["best_step"] == 0
    kept = checkpoint.load_tensors(tmp_path / checkpoint.WEIGHTS_FILE)
    assert all(torch.equal(kept[k], start[k]) for k in start)
    assert (tmp_path / "log.csv").read_text().splitlines()[1].split(",")[4] == ""  # no training loss yet


def test_resume_without_state_is_refused(tmp_path):
    with pytest.raises(RnnkitError, match="nothing to resume"):
        Trainer(Regression(), TrainConfig(quiet=True), tmp_path, regression_data()).fit(resume=True)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("optimizer", "adam2", "Unknown optimizer 'adam2'"),
        ("schedule", "poly", "Unknown schedule 'poly'"),
        ("epochs", 0, "epochs and accumulate must be at least 1"),
        ("learning_rate", 0, "learning_rate must be"),
        ("learning_rate", float("nan"), "learning_rate must be"),
        ("max_minutes", float("nan"), "max_minutes must be"),
        ("weight_decay", -0.1, "weight_decay must be"),
        ("clip_norm", -1.0, "clip_norm must be"),
        ("clip_norm", float("nan"), "clip_norm must be"),
        ("plateau_factor", 1.0, "plateau_factor must be"),
        ("patience", -1, "patience must be 0 or more"),
        ("eval_every", -1, "eval_every must be 0 or more"),
        ("warmup_steps", -2, "warmup_steps must be 0 or more"),
        ("device", "tpu", "Unknown device 'tpu'"),
    ],
)
def test_bad_train_config_is_refused(field, value, message):
    with pytest.raises(RnnkitError, match=message):
        TrainConfig(**{field: value})


def test_load_rebuilds_a_language_model_from_its_run_directory(tmp_path):
    assert run_script(tmp_path).wait() == 0
    model = rnnkit.load(tmp_path)
    assert not model.training and model.run_config["task"] == "lm"
    weights = checkpoint.load_tensors(tmp_path / checkpoint.WEIGHTS_FILE)
    assert torch.equal(model.state_dict()["embedding.weight"], weights["embedding.weight"])
    assert rnnkit.load(tmp_path, task="lm").run_config["task"] == "lm"
    # another task's command given this run says so in one line, not with a KeyError deep in its inference
    with pytest.raises(RnnkitError, match="holds a language model, not a forecaster; use `rnnkit lm"):
        rnnkit.load(tmp_path, task="forecast")


def test_constant_schedule_warms_up_then_holds(tmp_path):
    config = TrainConfig(epochs=1, schedule="constant", warmup_steps=4, learning_rate=0.1, eval_every=1, quiet=True)
    summary = Trainer(Regression(), config, tmp_path, regression_data(), regression_data()).fit()
    rates = [row["lr"] for row in summary["history"]]  # the rate after each step, for the next one
    assert rates == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_plateau_schedule_warms_up_then_halves_on_a_stall(tmp_path):
    class Stalled(Regression):
        def evaluate(self, data):
            return {"loss": 1.0}

    config = TrainConfig(epochs=1, schedule="plateau", warmup_steps=4, learning_rate=0.1, eval_every=1, quiet=True)
    trainer = Trainer(Stalled(), config, tmp_path, regression_data(), regression_data())
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)  # warm-up 1/4 for the first step
    summary = trainer.fit()
    rates = [row["lr"] for row in summary["history"]]  # the rate after each step, before the plateau's verdict
    assert rates == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1, 0.05, 0.025, 0.0125])


class GroupedRegression(Regression):
    """The bias learns at a tenth of the rate: a task model's ``parameter_groups``."""

    def parameter_groups(self):
        return [{"params": [self.linear.weight]}, {"params": [self.linear.bias], "lr_scale": 0.1}]


def test_a_models_parameter_groups_set_each_groups_rate_and_the_schedule_scales_both(tmp_path):
    config = TrainConfig(epochs=1, schedule="constant", warmup_steps=4, learning_rate=0.1, quiet=True)
    trainer = Trainer(GroupedRegression(), config, tmp_path, regression_data(), regression_data())
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.025, 0.0025])  # warm-up 1/4
    trainer.fit()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.1, 0.01])


class ForgetfulRegression(Regression):
    def parameter_groups(self):
        return [{"params": [self.linear.weight]}]


def test_parameter_groups_must_list_every_tensor(tmp_path):
    with pytest.raises(RnnkitError, match="lists 1 tensors, the model has 2"):
        Trainer(ForgetfulRegression(), TrainConfig(quiet=True), tmp_path, regression_data(), regression_data())


def test_named_tuple_batches_reach_the_model_as_named_tuples(tmp_path):
    Pair = namedtuple("Pair", "x y")

    class Named(Regression):
        def loss(self, batch):
            return super().loss((batch.x, batch.y))

    class NamedBatches(Batches):
        def batches(self, epoch):
            yield from (Pair(*b) for b in super().batches(epoch))

    data = regression_data()
    named = NamedBatches(data.x, data.y, data.batch_size)
    summary = Trainer(Named(), TrainConfig(epochs=1, quiet=True), tmp_path, named, named).fit()
    assert summary["steps"] == len(named)


class Carry(NamedTuple):
    h: Tensor
    c: Tensor


class CarryingStream(nn.Module):
    """A stream model whose carried state is a named tuple, read by name; can raise Ctrl-C at a loss call."""

    carries_state = True

    def __init__(self, stop_at: int | None = None):
        super().__init__()
        self.cell, self.head = nn.LSTMCell(3, 4), nn.Linear(4, 1)
        self.calls, self.stop_at, self.states = 0, stop_at, []

    def loss(self, batch, state=None):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.states.append(type(state))
        x, y = batch  # (N, T, 3), (N, T)
        state = state or Carry(x.new_zeros(len(x), 4), x.new_zeros(len(x), 4))
        h, c = state.h, state.c
        outputs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outputs.append(self.head(h)[:, 0])
        return LossOutput(nn.functional.mse_loss(torch.stack(outputs, 1), y), y.numel(), Carry(h, c))


class Stream:
    def __len__(self):
        return 6

    def batches(self, epoch):
        generator = torch.Generator().manual_seed(epoch)
        for _ in range(6):
            x = torch.randn(2, 3, 3, generator=generator)
            yield x, x.sum(-1)


def test_a_named_tuple_state_comes_back_from_a_resume_as_that_named_tuple(tmp_path):
    config = TrainConfig(epochs=2, schedule="constant", learning_rate=0.05, checkpoint_every=1, quiet=True)
    torch.manual_seed(0)
    straight = CarryingStream()
    Trainer(straight, config, tmp_path / "a", Stream()).fit()
    torch.manual_seed(0)
    summary = Trainer(CarryingStream(stop_at=4), config, tmp_path / "b", Stream()).fit()
    assert summary["stopped_by"] == "interrupted"
    saved = checkpoint.load_state(tmp_path / "b" / checkpoint.RESUME_FILE)["carried"]
    assert saved.fields == ("h", "c")  # the names are stored (as JSON), the class is not
    torch.manual_seed(123)
    resumed = CarryingStream()
    Trainer(resumed, config, tmp_path / "b", Stream()).fit(resume=True)
    assert resumed.states[:2] == [type(None), Carry]  # the probe for the live structure, then the restored state
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_monitor_that_evaluate_does_not_return_is_refused(tmp_path):
    # Keras warns here; silently the best model and early stopping would follow the training loss
    config = TrainConfig(epochs=2, monitor="acc", quiet=True)
    trainer = Trainer(Regression(), config, tmp_path, regression_data(), regression_data())
    with pytest.raises(RnnkitError, match="monitor is 'acc', but the model's evaluate\\(\\) returned only loss"):
        trainer.fit()
