"""The word n-gram: Witten-Bell by hand on a tiny corpus, distributions summing to one; its fusion into the
character beam search at word ends, and the decoder's checks."""

import math

import numpy as np
import pytest

from rnnkit.errors import RnnkitError
from rnnkit.tasks.asr_inference import Decoder
from rnnkit.tasks.char_ngram import CharNgram
from rnnkit.tasks.ctc_decode import prefix_beam_search
from rnnkit.tasks.word_ngram import END, UNKNOWN, WordFusion, WordNgram

SENTENCES = ["the cat sat", "the cat ran", "a dog sat"]


def test_witten_bell_by_hand():
    lm = WordNgram.fit(SENTENCES, order=2, smoothing="witten-bell")
    # unigram counts: the 2, cat 2, sat 2, ran 1, a 1, dog 1, </s> 3 (12 tokens, 7 types); uniform over
    # the 6 words, </s> and <unk>: 1/8
    unigram_cat = (2 + 7 / 8) / (12 + 7)
    # after "the": cat twice (1 type)
    assert math.exp(lm.log_prob("cat", ["the"])) == pytest.approx((2 + 1 * unigram_cat) / (2 + 1), abs=1e-12)
    unigram_unknown = (0 + 7 / 8) / (12 + 7)
    assert math.exp(lm.log_prob("zebra", ["the"])) == pytest.approx(unigram_unknown / 3, abs=1e-12)
    assert lm.log_prob("zebra", []) == lm.log_prob(UNKNOWN, []) == lm.log_prob("", [])


@pytest.mark.parametrize("order", [1, 2, 3])
def test_distributions_sum_to_one_and_favour_seen_word_orders(order):
    lm = WordNgram.fit(SENTENCES, order=order)
    vocabulary = [*lm.counts[""], UNKNOWN]
    assert END in vocabulary
    for history in ([], ["the"], ["the", "cat"], ["a", "zebra"]):
        assert sum(math.exp(lm.log_prob(w, history)) for w in vocabulary) == pytest.approx(1.0, abs=1e-12)
    if order > 1:
        assert lm.sentence_log_prob("the cat sat") > lm.sentence_log_prob("sat cat the")
    again = WordNgram.from_config(lm.to_config())
    assert again.log_prob("cat", ["the"]) == lm.log_prob("cat", ["the"])
    with pytest.raises(RnnkitError, match="order"):
        WordNgram(order=0)


def test_fusion_changes_only_the_space_and_the_end():
    alphabet = " acdegnorst"
    chars = CharNgram.fit(SENTENCES, alphabet, order=3)
    words = WordNgram.fit(SENTENCES, order=2)
    fused = WordFusion(chars, words, 0.7)
    for prefix in ["the ca", "the cat", "the cat ", "", "the  "]:
        plain, scores = chars.distribution(prefix), fused.distribution(prefix)
        same = np.ones(len(plain), dtype=bool)
        same[[alphabet.index(" "), len(alphabet)]] = False
        np.testing.assert_array_equal(scores[same], plain[same])
    word = words.log_prob("cat", ["the"])
    assert fused.distribution("the cat")[0] == pytest.approx(chars.distribution("the cat")[0] + 0.7 * word)
    ending = word + words.log_prob(END, ["the", "cat"])
    assert fused.distribution("the cat")[-1] == pytest.approx(chars.distribution("the cat")[-1] + 0.7 * ending)
    assert fused.distribution("the cat ")[-1] == pytest.approx(
        chars.distribution("the cat ")[-1] + 0.7 * words.log_prob(END, ["the", "cat"])
    )
    assert np.array_equal(WordFusion(chars, words, 0.0).distribution("the cat"), chars.distribution("the cat"))
    with pytest.raises(RnnkitError, match="space"):
        WordFusion(CharNgram.fit(["ab"], "ab"), words, 1.0)


def test_the_word_lm_picks_the_word_it_knows_where_the_characters_cannot():
    # "ab" and "ba" sound alike to the acoustic model and to a character LM that saw both; only the word
    # model knows that after "c" comes "ab"
    alphabet = " abc"
    sentences = ["c ab"] * 10 + ["ba"] * 10
    space, c = 1, 4  # ids: blank 0, then the alphabet from 1
    frames = []
    for k in (c, space):
        frame = np.full(5, np.log(0.01))
        frame[k] = np.log(0.96)
        frames.append(frame)
    tie = np.log([0.02, 0.001, 0.489, 0.489, 0.001])
    frames += [tie, tie]
    log_probs = np.array(frames)
    chars = CharNgram.fit(["ba"] * 12 + ["ab"] * 10 + ["c "] * 10, alphabet, order=2)  # leans to "ba"
    words = WordNgram.fit(sentences, order=2)
    plain = prefix_beam_search(log_probs, alphabet, 16, lm=chars, alpha=1.0, beta=0.5)
    fused = prefix_beam_search(log_probs, alphabet, 16, lm=WordFusion(chars, words, 1.0), alpha=1.0, beta=0.5)
    assert fused == "c ab" and plain != fused  # the characters alone settle on another text


def test_decoder_asks_for_both_language_models():
    chars = CharNgram.fit(SENTENCES, " acdegnorst", order=3)
    words = WordNgram.fit(SENTENCES)
    with pytest.raises(RnnkitError, match="word-weight"):
        Decoder(" acdegnorst", 16, chars, 0.5, 1.0, None, 0.5)
    with pytest.raises(RnnkitError, match="word-weight"):
        Decoder(" acdegnorst", 16, chars, 0.0, 1.0, words, 0.5)
    with pytest.raises(RnnkitError, match="LM weights must be finite"):
        Decoder(" acdegnorst", 16, chars, math.nan, 1.0, words, 0.5)
    decoder = Decoder(" acdegnorst", 16, chars, 0.5, 1.0, words, 0.5)
    assert "word 2-gram (weight 0.5)" in decoder.describe()
    assert isinstance(decoder.options["lm"], WordFusion)


def test_greedy_decoder_refuses_lm_weights_it_would_ignore():
    chars = CharNgram.fit(SENTENCES, " acdegnorst", order=3)
    words = WordNgram.fit(SENTENCES)
    for lm_weight, word_weight in [(0.5, 0.0), (0.5, 0.5)]:
        with pytest.raises(RnnkitError, match="act in beam search only; add --beam N"):
            Decoder(" acdegnorst", 0, chars, lm_weight, 1.0, words, word_weight)
    assert Decoder(" acdegnorst", 0, chars, 0.0, 0.0, words, 0.0).describe() == "greedy"  # LMs loaded, unused
