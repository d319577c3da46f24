"""The tied adaptive input: a word's embedding is read from the adaptive softmax's own matrices."""

import math

import torch
from torch import nn
from torch.testing import assert_close

from rnnkit import checkpoint
from rnnkit.tasks import load
from rnnkit.tasks.adaptive_input import TiedAdaptiveEmbedding
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

VOCAB, CUTOFFS, E = 40, (6, 20), 16


def tied_model(**overrides) -> LanguageModel:
    torch.manual_seed(0)
    options = {"embedding_size": E, "hidden_size": 24, "adaptive_cutoffs": CUTOFFS} | overrides
    config = LanguageModelConfig(vocab_size=VOCAB, **options)
    return LanguageModel(config)


def test_each_band_embeds_with_the_softmax_matrices_read_backwards():
    model = tied_model()
    softmax = model.output
    assert isinstance(model.embedding, TiedAdaptiveEmbedding)
    ids = torch.tensor([[0, 5, 6, 19], [20, 39, 3, 25]])
    got = model.embedding(ids)
    scale = math.sqrt(E)
    for row, col in [(0, 0), (0, 1), (1, 2)]:  # shortlist: rows of the head
        assert_close(got[row, col], softmax.head.weight[ids[row, col]] * scale)
    for row, col, cluster, low in [(0, 2, 0, 6), (0, 3, 0, 6), (1, 0, 1, 20), (1, 1, 1, 20), (1, 3, 1, 20)]:
        project, score = softmax.tail[cluster]
        assert_close(got[row, col], score.weight[ids[row, col] - low] @ project.weight * scale)
    assert got.shape == (2, 4, E)


def test_the_tie_adds_no_parameters_and_gradients_reach_the_shared_matrices_from_both_sides():
    model = tied_model()
    own = {id(p) for p in model.embedding.parameters()}
    assert own <= {id(p) for p in model.output.parameters()}
    # input side alone: the cluster-1 word 30 only ever appears as an input here
    model.embedding(torch.tensor([30])).sum().backward()
    project, score = model.output.tail[1]
    assert score.weight.grad[10].abs().sum() > 0 and score.weight.grad[:10].abs().sum() == 0
    assert project.weight.grad.abs().sum() > 0


def test_word_dropout_drops_whole_word_types_and_keeps_the_expectation():
    model = tied_model()
    ids = torch.tensor([1, 1, 1, 25, 25, 8] * 50)
    torch.manual_seed(3)
    dropped = model.embedding(ids, word_dropout=0.5)
    kept = dropped.abs().sum(-1) > 0
    # one draw per call: every occurrence of a word shares its fate
    for word in (1, 25, 8):
        assert kept[ids == word].unique().numel() == 1
    full = model.embedding(ids)
    assert_close(dropped[kept], full[kept] * 2)


def test_a_saved_tied_model_loads_with_the_tie_intact(tmp_path):
    model = tied_model()
    checkpoint.save_model(tmp_path, model, {"task": "lm", "model": vars(model.config) | {"adaptive_cutoffs": CUTOFFS}})
    loaded = load(tmp_path)
    assert loaded.embedding.head is loaded.output.head
    ids = torch.randint(0, VOCAB, (2, 9))
    assert_close(loaded.eval().loss((ids, ids)).loss, model.eval().loss((ids, ids)).loss)
    with torch.no_grad():
        loaded.output.tail[0][1].weight.add_(1.0)
    assert_close(
        loaded.embedding(torch.tensor([7])),
        loaded.embedding.tail[0][1].weight[1:2] @ loaded.output.tail[0][0].weight * math.sqrt(E),
    )


def test_the_tied_model_trains_and_generates():
    model = tied_model(input_dropout=0.0, hidden_dropout=0.0, output_dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    ids = torch.arange(VOCAB).repeat(3)[None]  # a cycle through every band
    first = None
    for _ in range(200):
        loss = model.train().loss((ids[:, :-1], ids[:, 1:])).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.35 * first  # (a 1-dimensional last cluster, E / 16, keeps it above zero)
    assert len(list(model.eval().generate([0, 1], 5, generator=torch.Generator().manual_seed(0)))) == 5
    assert not any(isinstance(m, nn.Embedding) for m in model.modules())


def test_a_batch_without_tail_tokens_leaves_a_tail_gradient_only_when_tied():
    """Tied, the embedding runs every band, so each weight has a gradient at every step and DDP need not look for
    unused ones; untied, the softmax skips a cluster no target falls in (``may_skip_parameters``)."""
    ids = torch.tensor([[0, 1, 2, 3, 4, 5]])  # the shortlist only
    for tie_weights in (True, False):
        model = tied_model(tie_weights=tie_weights)
        model.loss((ids[:, :-1], ids[:, 1:])).loss.backward()
        without = [name for name, p in model.named_parameters() if p.grad is None]
        assert model.may_skip_parameters == (not tie_weights) == bool(without), without
