"""The language model: regularisers, state carried across windows, generation through the step API."""

import math

import pytest
import torch
from torch.testing import assert_close

from rnnkit import RnnkitError
from rnnkit.tasks import lm
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig, TokenStream, locked_dropout, sample

VOCAB = 13


def small(**overrides):
    options = {"vocab_size": VOCAB, "embedding_size": 6, "hidden_size": 8, "num_layers": 2} | overrides
    return LanguageModel(LanguageModelConfig(**options))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_evaluation_carries_state_so_window_size_does_not_matter(cell):
    model = small(cell=cell)
    ids = torch.randint(0, VOCAB, (401,))
    short, long = model.evaluate(TokenStream(ids, 2, 7)), model.evaluate(TokenStream(ids, 2, 100))
    assert short["tokens"] == long["tokens"] == 398  # 2 rows of 200, the last of each only a target
    assert math.isclose(short["loss"], long["loss"], rel_tol=1e-5)
    assert math.isclose(short["bits_per_token"], short["loss"] / math.log(2))


def test_generation_through_the_step_api_follows_the_full_forward(monkeypatch):
    model = small(cell="lstm")
    seen = []
    original = lm.sample

    def recording_sample(logits, top_k, top_p, generator):
        seen.append(logits.clone())
        return original(logits, top_k, top_p, generator)

    monkeypatch.setattr(lm, "sample", recording_sample)
    prime = [1, 2, 3]
    generated = list(model.generate(prime, 6, generator=torch.Generator().manual_seed(0)))
    hidden, _ = model(torch.tensor([prime + generated]))
    expected = model.log_probs(hidden)[0, len(prime) - 1 : -1]
    assert_close(torch.stack(seen), expected, atol=1e-5, rtol=1e-5)


def test_generation_is_reproducible_with_a_seed():
    model = small()
    runs = [
        list(model.generate([0], 20, temperature=0.9, generator=torch.Generator().manual_seed(5))) for _ in range(2)
    ]
    assert runs[0] == runs[1] and all(0 <= t < VOCAB for t in runs[0])


def test_top_k_one_and_tiny_top_p_pick_the_likeliest_token():
    logits = torch.tensor([0.1, 2.0, 1.9, -1.0])
    for _ in range(20):
        assert int(sample(logits, 1, 1.0, None)) == 1
        assert int(sample(logits, 0, 0.01, None)) == 1
    draws = {int(sample(logits, 0, 0.75, torch.Generator().manual_seed(s))) for s in range(50)}
    assert draws == {1, 2}  # the nucleus holds exactly the two big tokens


def test_locked_dropout_uses_one_mask_for_all_steps():
    x = torch.ones(3, 50, 4)
    dropped = locked_dropout(x, 0.5, training=True)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_weight_drop_changes_training_but_not_the_parameters_or_eval():
    model = small(weight_drop=0.5, input_dropout=0, hidden_dropout=0, output_dropout=0)
    before = model.layers[0].weight_hh_l0.detach().clone()
    x = torch.randint(0, VOCAB, (2, 9))
    train_out = model.train()(x)[0]
    eval_out = model.eval()(x)[0]
    assert not torch.allclose(train_out, eval_out)
    assert torch.equal(model.layers[0].weight_hh_l0, before)
    loss = model.train().loss((x, x)).loss
    loss.backward()
    assert model.layers[0].weight_hh_l0.grad is not None


def test_tied_output_shares_the_embedding_and_the_last_layer_matches_it():
    model = small(tie_weights=True)
    assert model.output.weight is model.embedding.weight
    assert model.layers[-1].hidden_size == 6 and model.layers[0].hidden_size == 8


def test_adaptive_softmax_gives_normalised_log_probs_and_a_loss():
    model = small(tie_weights=False, adaptive_cutoffs=(4, 8), hidden_size=32)
    ids = torch.randint(0, VOCAB, (2, 5))
    hidden, _ = model(ids)
    assert_close(model.log_probs(hidden).exp().sum(-1), torch.ones(2, 5))
    assert model.loss((ids, ids)).loss.item() > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cell": "transformer"}, "Unknown cell 'transformer'"),
        ({"hidden_size": 0}, "hidden_size must be at least 1"),
        ({"weight_drop": 1.0}, r"weight_drop must be a probability in \[0, 1\)"),
        ({"adaptive_cutoffs": (8, 4), "tie_weights": False}, "adaptive_cutoffs must increase"),
    ],
)
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(RnnkitError, match=message):
        LanguageModelConfig(vocab_size=VOCAB, **overrides)


def test_generation_arguments_are_checked():
    with pytest.raises(RnnkitError, match="needs a prime"):
        list(small().generate([], 3))
    with pytest.raises(RnnkitError, match="temperature > 0"):
        list(small().generate([1], 3, temperature=0))
    with pytest.raises(RnnkitError, match="temperature > 0"):
        list(small().generate([1], 3, temperature=math.nan))


def test_token_stream_windows_tile_the_stream():
    stream = TokenStream(torch.arange(101), batch_size=4, window=10)
    windows = list(stream.batches(0))
    assert len(windows) == len(stream) == 3  # 25 steps per row, 24 predicted: 10 + 10 + 4
    x = torch.cat([w[0] for w in windows], dim=1)
    y = torch.cat([w[1] for w in windows], dim=1)
    assert torch.equal(y[:, :-1], x[:, 1:]) and x[1, 0] == 25
