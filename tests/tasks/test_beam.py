"""Greedy and beam search: beam 1 equals greedy; on a hand-made model beam search finds the known best
sequence that greedy misses; n-best lists, the length penalty and the coverage penalty."""

import math
from typing import NamedTuple

import pytest
import torch

from rnnkit.data.subwords import BOS
from rnnkit.errors import RnnkitError
from rnnkit.tasks.beam import beam_search, coverage_penalty, greedy, length_penalty, translate_ids
from rnnkit.tasks.translate import Memory, Translator, TranslatorConfig

A, B = 3, 4
# next-token probabilities given the previous token (rows: PAD, BOS, EOS, A, B; columns the same)
TABLE = torch.tensor(
    [
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.6, 0.4],  # after <bos>: A is likelier ...
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.34, 0.33, 0.33],  # ... but after A nothing is likely
        [0.0, 0.0, 0.9, 0.05, 0.05],  # after B, <eos> almost surely: P(B <eos>) = 0.36 > P(A <eos>) = 0.204
    ]
).log()


class PrefixState(NamedTuple):
    last: torch.Tensor  # (N,)
    coverage: torch.Tensor  # (N, S)

    def select(self, index):
        return PrefixState(self.last[index], self.coverage[index])


class TableModel:
    """A language model of a table like the one above, shaped like a Translator for the decoders."""

    def __init__(self, table=TABLE):
        self.table = table

    def encode(self, source, lengths):
        mask = torch.arange(source.shape[1])[None] < lengths[:, None]
        return Memory(source[..., None].float(), source[..., None].float(), mask)

    def start(self, memory):
        N, S = memory.mask.shape
        return PrefixState(torch.full((N,), BOS), torch.zeros(N, S))

    def step(self, token, state, memory):
        attention = memory.mask.float() / memory.mask.sum(1, keepdim=True)
        return self.table[token].clone(), PrefixState(token, state.coverage + attention), attention


def test_beam_finds_the_best_sequence_greedy_misses():
    source, lengths = torch.tensor([[5, 6], [5, 6]]), torch.tensor([2, 2])
    [greedy_result, _] = greedy(TableModel(), source, lengths)
    assert greedy_result.tokens == [A]
    assert greedy_result.log_prob == pytest.approx(math.log(0.6 * 0.34), abs=1e-5)
    [best, second], _ = beam_search(TableModel(), source, lengths, beam_size=2, n_best=2, alpha=0.0)
    assert best.tokens == [B] and best.log_prob == pytest.approx(math.log(0.4 * 0.9), abs=1e-5)
    assert second.tokens == [A] and second.score <= best.score
    assert best.attention.shape == (2, 2)  # a row per output step (<eos> included), a column per source token


@pytest.mark.parametrize(("alpha", "beta"), [(math.nan, 0.0), (1.0, -0.5), (1.0, math.inf)])
def test_penalty_weights_must_be_numbers_that_rank(alpha, beta):
    source, lengths = torch.tensor([[5, 6]]), torch.tensor([2])
    with pytest.raises(RnnkitError, match="finite length penalty"):
        beam_search(TableModel(), source, lengths, beam_size=2, alpha=alpha, beta=beta)


def test_n_best_waits_for_hypotheses_that_beat_the_last_of_them():
    C = 5
    table = torch.tensor(
        [
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.5, 0.3, 0.2, 0.0],  # after <bos>: <eos> ends the best at once, A and B go on
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.1, 0.0, 0.0, 0.9],  # A <eos> (0.03) ends second at step 2 ...
            [0.0, 0.0, 0.05, 0.0, 0.0, 0.95],
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # ... but A C <eos> (0.27) and B C <eos> (0.19) end at step 3
        ]
    ).log()
    source, lengths = torch.tensor([[5, 6]]), torch.tensor([2])
    [hypotheses] = beam_search(TableModel(table), source, lengths, beam_size=3, n_best=2, alpha=0.0)
    assert [h.tokens for h in hypotheses] == [[], [A, C]]
    assert hypotheses[1].log_prob == pytest.approx(math.log(0.3 * 0.9), abs=1e-5)


def test_a_negative_length_penalty_does_not_stop_before_a_better_hypothesis_ends():
    # alpha < 0: lp shrinks with length, so the bound on what the beam can still reach is lp at the next length
    table = torch.tensor(
        [
            [0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.45, 0.55, 0.0],  # after <bos>: <eos> ends at once (score log 0.45) ...
            [0.0, 0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0, 0.0],  # ... A <eos> ends a step later: log 0.55 / lp(2) is higher
            [0.0, 0.0, 1.0, 0.0, 0.0],
        ]
    ).log()
    source, lengths = torch.tensor([[5, 6]]), torch.tensor([2])
    [[best]] = beam_search(TableModel(table), source, lengths, beam_size=2, alpha=-0.5)
    assert best.tokens == [A]
    assert best.score == pytest.approx(math.log(0.55) / length_penalty(2, -0.5), abs=1e-5)


def test_length_limit_ends_every_hypothesis():
    source, lengths = torch.tensor([[5]]), torch.tensor([1])
    [[result]] = beam_search(TableModel(), source, lengths, beam_size=2, alpha=0.0, max_lengths=torch.tensor([1]))
    assert len(result.tokens) == 1


def tiny_translator(seed=0):
    torch.manual_seed(seed)
    return Translator(TranslatorConfig(20, 20, embedding_size=8, hidden_size=8, dropout=0.0)).eval()


def test_beam_of_one_is_greedy():
    model = tiny_translator()
    torch.manual_seed(1)
    sources = [torch.randint(3, 20, (n,)).tolist() for n in (5, 3, 7, 1, 4)]
    by_greedy = translate_ids(model, sources, beam_size=1)
    source = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sources], batch_first=True)
    lengths = torch.tensor([len(s) for s in sources])
    by_beam = beam_search(model, source, lengths, beam_size=1, alpha=0.0, beta=0.0)
    for g, [b] in zip(by_greedy, by_beam, strict=True):
        assert g[0].tokens == b.tokens
        assert g[0].log_prob == pytest.approx(b.log_prob, abs=1e-4)


def test_more_best_than_the_beam_holds_is_refused_greedy_too():
    # as translate run --beam 1 --n-best 3 is: greedy finds one translation, not the three asked for
    for beam_size in (1, 2):
        with pytest.raises(RnnkitError, match="n_best <= beam_size"):
            translate_ids(tiny_translator(), [[4, 5]], beam_size=beam_size, n_best=3)


def test_n_best_is_sorted_and_beam_is_at_least_as_likely_as_greedy():
    model = tiny_translator(2)
    source, lengths = torch.tensor([[4, 5, 6, 7]]), torch.tensor([4])
    [g] = greedy(model, source, lengths)
    [hypotheses] = beam_search(model, source, lengths, beam_size=5, n_best=3, alpha=0.0)
    assert len(hypotheses) == 3
    assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)
    assert hypotheses[0].log_prob >= g.log_prob - 1e-5


def test_penalties():
    assert length_penalty(1, 0.0) == 1.0 and length_penalty(7, 1.0) == pytest.approx(2.0)
    assert coverage_penalty(torch.tensor([1.0, 2.0]), 0.2) == 0.0  # fully covered: no penalty
    assert coverage_penalty(torch.tensor([0.5, 1.0]), 0.2) == pytest.approx(0.2 * math.log(0.5))
