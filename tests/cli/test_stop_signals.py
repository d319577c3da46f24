"""A training stopped by Ctrl-C or SIGTERM saves, reports, and exits with 128 + the signal's number."""

import os
import signal

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import rnnkit.cli.forecast as forecast_cli
from rnnkit import checkpoint
from rnnkit.cli import app
from rnnkit.train import LossOutput, TrainConfig, Trainer, stopped_by_signal

runner = CliRunner()


class SignalsItself(nn.Module):
    """A one-weight regression that sends this process ``number`` from inside its third training step."""

    def __init__(self, number: int):
        super().__init__()
        self.weight, self.number, self.calls = nn.Parameter(torch.zeros(1)), number, 0

    def loss(self, batch):
        self.calls += 1
        if self.calls == 3:
            os.kill(os.getpid(), self.number)
        return LossOutput(((self.weight - batch) ** 2).mean(), len(batch))


class Batches:
    def __len__(self):
        return 8

    def batches(self, epoch):
        return iter([torch.ones(4)] * 8)


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_signalled_run_saves_then_exits_128_plus_the_signal(tmp_path, monkeypatch, number, code):
    def train_forecaster(*args, **kwargs):  # stands in for the real one: the trainer is what is tested
        return Trainer(SignalsItself(number), TrainConfig(epochs=2, quiet=True), tmp_path / "run", Batches()).fit()

    monkeypatch.setattr(forecast_cli, "train_forecaster", train_forecaster)
    args = ["forecast", "train", "--csv", "any.csv", "--time-col", "t", "--target", "y", "--horizon", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == code, result.output
    report = result.stdout  # the report comes before the exit
    assert report.startswith("3 steps in ") and "; stopped when interrupted; --resume continues it" in report
    assert checkpoint.load_state(tmp_path / "run" / checkpoint.RESUME_FILE)["position"]["step"] == 3
    assert stopped_by_signal() is None  # the group cleared it: a later command in this process exits as usual
