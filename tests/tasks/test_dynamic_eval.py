"""Dynamic evaluation: every token scored before the model learns from it; the model is left unchanged."""

import copy
import math

import pytest
import torch

from rnnkit import RnnkitError
from rnnkit.tasks.dynamic_eval import dynamic_evaluate
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig, TokenStream
from rnnkit.tbptt import detach_state


def model(cell="lstm"):
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=11, cell=cell, embedding_size=8, hidden_size=16, num_layers=1)
    return LanguageModel(config)


def test_a_single_window_scores_exactly_as_the_static_model():
    lm, ids = model(), torch.randint(0, 11, (2 * 40 + 2,))
    stream = TokenStream(ids, 2, 100)  # one window: nothing is scored after an update
    assert len(stream) == 1
    static = lm.evaluate(stream)
    dynamic = dynamic_evaluate(lm, stream, learning_rate=1.0)
    assert math.isclose(dynamic["loss"], static["loss"], rel_tol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_adapting_to_a_repetitive_text_lowers_its_loss_and_restores_the_weights(cell):
    lm = model(cell)
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    ids = torch.tensor([1, 4, 2, 8, 5, 7, 3] * 60)  # a phrase the untrained model cannot know
    stream = TokenStream(ids, 1, 10)
    static = lm.evaluate(stream)
    dynamic = dynamic_evaluate(lm, stream, learning_rate=0.5, decay=0.01)
    assert dynamic["tokens"] == static["tokens"]
    assert dynamic["loss"] < 0.5 * static["loss"]
    for name, value in lm.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_the_update_is_the_docstrings_equation():
    # θ_1 = θ_0 - η∇ℓ_0 + λ(θ_0 - θ_0): the first step is the plain gradient step, whatever the decay
    lm, ids = model(), torch.randint(0, 11, (21,), generator=torch.Generator().manual_seed(1))
    stream = TokenStream(ids, 1, 10)
    first_window, second_window = stream.batches()
    lm.eval()
    first = lm.loss(first_window)
    grads = torch.autograd.grad(first.loss, list(lm.parameters()))
    stepped = copy.deepcopy(lm)
    with torch.no_grad():
        for param, grad in zip(stepped.parameters(), grads, strict=True):
            param.sub_(0.5 * grad)
    second = stepped.loss(second_window, detach_state(first.state))
    expected = (first.loss.item() * first.units + second.loss.item() * second.units) / (first.units + second.units)
    dynamic = dynamic_evaluate(lm, stream, learning_rate=0.5, decay=0.5)
    assert math.isclose(dynamic["loss"], expected, rel_tol=1e-6)


def test_bad_rates_are_refused():
    with pytest.raises(RnnkitError, match="learning_rate > 0"):
        dynamic_evaluate(model(), TokenStream(torch.arange(11), 1, 4), learning_rate=0.0)
    with pytest.raises(RnnkitError, match="learning_rate > 0"):
        dynamic_evaluate(model(), TokenStream(torch.arange(11), 1, 4), learning_rate=math.nan)
