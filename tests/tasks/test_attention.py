"""Attention: shapes, masking of padded source positions, and each score function against its equation."""

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.attention import KINDS, Attention

N, S, H = 3, 5, 6


@pytest.fixture
def inputs():
    torch.manual_seed(0)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    return torch.randn(N, H), torch.randn(N, S, H), mask


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_masking_and_normalisation(kind, inputs):
    query, memory, mask = inputs
    attention = Attention(H, kind)
    context, weights = attention(query, memory, attention.keys(memory), mask)
    assert context.shape == (N, H) and weights.shape == (N, S)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(N))
    torch.testing.assert_close(context, torch.einsum("ns,nsh->nh", weights, memory))
    torch.testing.assert_close(weights[2], torch.tensor([1.0, 0, 0, 0, 0]))  # one real token takes it all


def test_padding_does_not_change_the_result(inputs):
    query, memory, mask = inputs
    attention = Attention(H, "additive")
    context, _ = attention(query, memory, attention.keys(memory), mask)
    noisy = memory.clone()
    noisy[~mask] = 100.0  # whatever sits in padded positions
    context_noisy, _ = attention(query, noisy, attention.keys(noisy), mask)
    torch.testing.assert_close(context, context_noisy)


@pytest.mark.parametrize("kind", KINDS)
def test_scores_follow_the_equations(kind, inputs):
    query, memory, _ = inputs
    attention = Attention(H, kind)
    everything = torch.ones(N, S, dtype=torch.bool)
    _, weights = attention(query, memory, attention.keys(memory), everything)
    if kind == "dot":
        scores = torch.einsum("nh,nsh->ns", query, memory)
    elif kind == "general":
        scores = torch.einsum("nh,hk,nsk->ns", query, attention.key.weight, memory)
    else:
        hidden = torch.tanh(attention.query(query)[:, None] + memory @ attention.key.weight.T)
        scores = (hidden @ attention.score.weight.T).squeeze(-1)
    torch.testing.assert_close(weights, scores.softmax(-1))


def test_unknown_kind_is_refused():
    with pytest.raises(RnnkitError, match="Unknown attention 'cosine'"):
        Attention(H, "cosine")
