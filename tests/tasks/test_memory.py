"""The adding problem's data and the regressor's contract."""

import pytest
import torch

from rnnkit import RnnkitError
from rnnkit.tasks.memory import MEAN_BASELINE_MSE, AddingConfig, SequenceRegressor, adding_batch, train_adding


def test_adding_batch_marks_one_step_in_each_half_and_sums_them():
    x, y = adding_batch(500, 10, torch.Generator().manual_seed(0))
    markers = x[..., 1]
    assert torch.all(markers[:, :5].sum(1) == 1) and torch.all(markers[:, 5:].sum(1) == 1)
    torch.testing.assert_close(y, (x[..., 0] * markers).sum(1))
    # the mean answer scores about 2/12
    assert abs(((y - 1) ** 2).mean().item() - MEAN_BASELINE_MSE) < 0.03


def test_adding_needs_two_steps():
    with pytest.raises(RnnkitError, match="at least 2 steps"):
        adding_batch(2, 1, torch.Generator())


def test_lstm_regressor_starts_with_open_forget_gates():
    model = SequenceRegressor("lstm", 2, 4)
    assert torch.all(model.rnn.bias_ih_l0[4:8] == 1) and torch.all(model.rnn.bias_hh_l0[4:8] == 0)
    assert model(torch.randn(3, 7, 2)).shape == (3,)


def test_training_lowers_the_error_on_a_short_problem():
    result = train_adding(AddingConfig(cell="gru", num_steps=6, hidden_size=16, train_steps=400, seed=1), quiet=True)
    assert result["test_mse"] < 0.5 * MEAN_BASELINE_MSE
