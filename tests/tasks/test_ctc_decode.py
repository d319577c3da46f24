"""CTC decoding: greedy collapse rules, prefix beam search against brute force over every path, LM fusion,
Viterbi alignment and word times; the character n-gram's distributions."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.tasks.char_ngram import CharNgram
from rnnkit.tasks.ctc_decode import PrefixBeamSearch, align, greedy, prefix_beam_search, word_times

ALPHABET = "ab"  # ids: blank 0, a 1, b 2


def _one_hot_path(path: list[int], vocab: int = 3, peak: float = 0.98) -> np.ndarray:
    log_probs = np.full((len(path), vocab), np.log((1 - peak) / (vocab - 1)))
    log_probs[np.arange(len(path)), path] = np.log(peak)
    return log_probs


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ([1, 1, 0, 1, 2, 2], "aab"),  # a blank between repeats keeps both
        ([1, 1, 1, 2], "ab"),  # repeats merge
        ([0, 0, 0], ""),  # only blanks
        ([2, 0, 2, 0, 0, 1], "bba"),
    ],
)
def test_greedy_merges_repeats_then_drops_blanks(path, text):
    decoded, frames = greedy(_one_hot_path(path), ALPHABET)
    assert decoded == text
    assert len(frames) == len(text) and all(path[f] != 0 for f in frames)


def _brute_force(log_probs: np.ndarray) -> dict[str, float]:
    """P(text) = sum over every frame path that collapses to it (V^T paths)."""
    totals: dict[str, float] = {}
    for path in itertools.product(range(log_probs.shape[1]), repeat=len(log_probs)):
        text = "".join(ALPHABET[k - 1] for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k))
        totals[text] = totals.get(text, 0.0) + math.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
    return totals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unbounded_prefix_beam_gives_every_texts_exact_probability(seed):
    rng = np.random.default_rng(seed)
    log_probs = np.log(rng.dirichlet(np.ones(3), size=6))  # T = 6, V = 3: 729 paths
    exact = _brute_force(log_probs)
    search = PrefixBeamSearch(ALPHABET, beam=10_000, prune=-np.inf)
    search.advance(log_probs)
    scores = search.scores()
    assert set(scores) == set(exact)
    for text, probability in exact.items():
        assert math.exp(scores[text]) == pytest.approx(probability, rel=1e-9, abs=1e-15)
    best = max(exact, key=exact.get)
    assert prefix_beam_search(log_probs, ALPHABET, beam=8, prune=-np.inf) == best
    # the exact probability of a text is what torch's CTC loss computes
    for text in list(exact)[:5]:
        if text:
            targets = torch.tensor([[ALPHABET.index(c) + 1 for c in text]])
            nll = F.ctc_loss(torch.from_numpy(log_probs)[:, None], targets, [6], [len(text)], reduction="sum")
            assert math.exp(-nll.item()) == pytest.approx(exact[text], rel=1e-9)


def test_pruned_search_is_exact_over_the_characters_it_tries():
    # frames 1 and 3 are near-certain blanks: every character falls below the pruning threshold there
    rng = np.random.default_rng(3)
    log_probs = np.log(rng.dirichlet(np.ones(3), size=5))
    log_probs[[1, 3]] = np.log([1 - 2e-5, 1e-5, 1e-5])
    search = PrefixBeamSearch(ALPHABET, beam=10_000, prune=-8.0)
    search.advance(log_probs)
    tried = np.where((log_probs < -8.0) & (np.arange(3) > 0), -np.inf, log_probs)  # pruned: probability 0
    exact = {text: p for text, p in _brute_force(tried).items() if p > 0}
    scores = search.scores()
    assert set(scores) == set(exact)
    for text, probability in exact.items():
        assert math.exp(scores[text]) == pytest.approx(probability, rel=1e-9, abs=1e-15)


def test_beam_can_beat_greedy_when_many_paths_share_a_text():
    # frame-wise, blank wins every frame (greedy says ""), but "a" collects more mass over its paths
    log_probs = np.log(np.array([[0.4, 0.35, 0.25]] * 3))
    assert greedy(log_probs, ALPHABET)[0] == ""
    exact = _brute_force(log_probs)
    best = max(exact, key=exact.get)
    assert best != "" and prefix_beam_search(log_probs, ALPHABET, beam=4, prune=-np.inf) == best


def test_streaming_the_frames_in_chunks_gives_the_same_beam():
    log_probs = np.log(np.random.default_rng(3).dirichlet(np.ones(3), size=12))
    whole = PrefixBeamSearch(ALPHABET, beam=4)
    whole.advance(log_probs)
    chunked = PrefixBeamSearch(ALPHABET, beam=4)
    for start in range(0, 12, 5):
        chunked.advance(log_probs[start : start + 5])
    assert whole.scores() == chunked.scores()


def test_language_model_fusion_breaks_an_acoustic_tie_towards_the_text_it_knows():
    frame = np.log([0.02, 0.49, 0.49])  # blank, a, b: "ab" and "ba" equally likely, "a" and "b" more so
    log_probs = np.array([frame, frame])
    plain = PrefixBeamSearch(ALPHABET, beam=16)
    plain.advance(log_probs)
    assert plain.scores()["ab"] == pytest.approx(plain.scores()["ba"]) and plain.best() in ("a", "b")
    for known in ("ab", "ba"):
        lm = CharNgram.fit([known] * 20, ALPHABET, order=3)
        assert prefix_beam_search(log_probs, ALPHABET, beam=16, lm=lm, alpha=1.0, beta=0.0) == known


def test_char_ngram_distributions_sum_to_one_and_favour_seen_text():
    alphabet = " abc"
    lm = CharNgram.fit(["abc abc", "cab"], alphabet, order=4)
    for history in ["", "a", "ab", "abc ", "zzz", "cccc"]:
        assert np.exp(lm.distribution(history)).sum() == pytest.approx(1.0, abs=1e-12)
    assert lm.sentence_log_prob("abc abc") > lm.sentence_log_prob("cba cba")
    again = CharNgram.from_config(lm.to_config())
    np.testing.assert_allclose(again.distribution("ab"), lm.distribution("ab"))


def test_alignment_finds_each_characters_frames_and_word_times():
    # frames: blank, a, a, blank, blank(space?) ... build "ab a": ids a=1, b=2, space=3 in alphabet "ab "
    alphabet = "ab "
    path = [0, 1, 1, 2, 0, 3, 0, 0, 1, 0]
    log_probs = _one_hot_path(path, vocab=4)
    spans = align(log_probs, [1, 2, 3, 1])
    assert spans == [(1, 2), (3, 3), (5, 5), (8, 8)]
    words = word_times("ab a", spans, 0.04)
    assert words == [{"word": "ab", "start": 0.04, "end": 0.16}, {"word": "a", "start": 0.32, "end": 0.36}]
    assert greedy(log_probs, alphabet)[0] == "ab a"
    assert align(log_probs[:2], [1, 2, 3, 1]) is None  # 4 characters cannot fit in 2 frames
    assert align(_one_hot_path([1, 0, 1]), [1, 1]) == [(0, 0), (2, 2)]  # a repeat needs its blank
