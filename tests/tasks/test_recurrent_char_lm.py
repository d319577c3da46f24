"""A recurrent character LM in CTC beam search: its distributions are the network's, renormalised over the
recogniser's alphabet; batching prefixes changes nothing; wrong LMs are refused in one line."""

import math

import numpy as np
import pytest
import torch

from rnnkit.data.text import CharTokenizer, WordTokenizer
from rnnkit.errors import RnnkitError
from rnnkit.tasks.ctc_decode import prefix_beam_search
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig
from rnnkit.tasks.recurrent_char_lm import MAX_CACHED, RecurrentCharLM

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
TEXT = "the cat sat\na dog ran\nthe dog sat on the mat\n"  # no apostrophe: one alphabet character the LM lacks


def make_lm(cell="lstm", layers=2, seed=0):
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.fit(TEXT)
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, cell=cell, embedding_size=8, hidden_size=8,
                                 num_layers=layers, tie_weights=False)  # fmt: skip
    return LanguageModel(config).eval(), tokenizer


def reference(model, tokenizer, history):
    """log P(. | history) by a whole-sequence forward, restricted to the alphabet + line break."""
    ids = torch.tensor([tokenizer.encode("\n" + history)])
    with torch.no_grad():
        hidden, _ = model(ids)
        full = model.log_probs(hidden[0, -1]).double()
    support = [tokenizer.encode(c)[0] if c in tokenizer.chars else None for c in ALPHABET + "\n"]
    logits = torch.tensor([full[i].item() if i is not None else -math.inf for i in support])
    return (logits - logits.logsumexp(0)).numpy()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_distribution_is_the_networks_over_the_alphabet(cell):
    model, tokenizer = make_lm(cell)
    lm = RecurrentCharLM(model, tokenizer, ALPHABET)
    for history in ("", "t", "the c", "the cat sat", "zz'q"):
        got = lm.distribution(history)
        assert got.shape == (len(ALPHABET) + 1,)
        np.testing.assert_allclose(got, reference(model, tokenizer, history), atol=1e-5)
        assert math.isclose(np.exp(got).sum(), 1.0, rel_tol=1e-9)
        assert got[ALPHABET.index("'")] == -math.inf  # the LM never saw an apostrophe


def test_prepared_batches_equal_one_prefix_at_a_time():
    model, tokenizer = make_lm()
    batched, alone = RecurrentCharLM(model, tokenizer, ALPHABET), RecurrentCharLM(model, tokenizer, ALPHABET)
    prefixes = ["", "t", "th", "a", "the", "a d", "the "]
    batched.prepare(prefixes)
    for prefix in reversed(prefixes):  # reversed: each one computed from an empty cache, parents recursively
        alone._cache.clear()
        np.testing.assert_allclose(batched.distribution(prefix), alone.distribution(prefix), atol=1e-6)


class DistributionOnly:
    """The same LM seen through ``distribution`` alone: the beam search cannot batch it."""

    def __init__(self, lm):
        self.lm = lm

    def distribution(self, history):
        return self.lm.distribution(history)


def test_beam_search_fusion_does_not_depend_on_batching():
    model, tokenizer = make_lm(seed=3)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((30, len(ALPHABET) + 1)) * 2
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    options = {"alpha": 0.8, "beta": 0.5}
    fused = prefix_beam_search(log_probs, ALPHABET, 8, lm=RecurrentCharLM(model, tokenizer, ALPHABET), **options)
    unbatched = DistributionOnly(RecurrentCharLM(model, tokenizer, ALPHABET))
    assert fused == prefix_beam_search(log_probs, ALPHABET, 8, lm=unbatched, **options)
    assert fused != prefix_beam_search(log_probs, ALPHABET, 8)  # the LM does change this search


def test_a_full_cache_starts_again(monkeypatch):
    monkeypatch.setattr("rnnkit.tasks.recurrent_char_lm.MAX_CACHED", 4)
    model, tokenizer = make_lm()
    lm = RecurrentCharLM(model, tokenizer, ALPHABET)
    for history in ("the", "the c", "a dog"):
        np.testing.assert_allclose(lm.distribution(history), reference(model, tokenizer, history), atol=1e-5)
        assert len(lm._cache) <= 6
    assert MAX_CACHED > 1000  # the real bound holds every prefix of a long utterance's beam


def test_an_uncached_prefix_longer_than_the_recursion_limit_is_built_from_the_root():
    # after the cache starts again (MAX_CACHED), a long recording's prefixes (thousands of characters) are rebuilt
    # from the root: one recursive call per character raised RecursionError past about 1,000
    model, tokenizer = make_lm()
    lm = RecurrentCharLM(model, tokenizer, ALPHABET)
    history = "the dog sat on the mat " * 100  # 2,300 characters
    np.testing.assert_allclose(lm.distribution(history), reference(model, tokenizer, history), atol=1e-4)
    assert len(lm._cache) == len(history) + 1  # every prefix, each computed once


def test_refuses_a_word_model_and_one_that_never_saw_a_line_break():
    model, _ = make_lm()
    with pytest.raises(RnnkitError, match="character language model"):
        RecurrentCharLM(model, WordTokenizer.fit("the cat sat\n"), ALPHABET)
    with pytest.raises(RnnkitError, match="line break"):
        RecurrentCharLM(model, CharTokenizer.fit("the cat sat"), ALPHABET)
