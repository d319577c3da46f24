"""Kneser-Ney smoothing: discounts from count-of-counts, continuation counts, a word bigram by hand; the
character and word n-grams sum to one with either smoothing, and files from before Kneser-Ney load as
Witten-Bell."""

import math

import numpy as np
import pytest

from rnnkit.errors import RnnkitError
from rnnkit.tasks.char_ngram import CharNgram
from rnnkit.tasks.kneser_ney import FALLBACK_DISCOUNTS, discount, discount_each, discounts, kneser_ney_counts
from rnnkit.tasks.word_ngram import UNKNOWN, WordNgram

SENTENCES = ["the cat sat", "the cat ran", "a dog sat"]


def test_discounts_follow_chen_and_goodman():
    # one context of length 1 with counts giving n1=4, n2=2, n3=1, n4=1: Y = 4 / (4 + 2 * 2) = 0.5
    table = {"x": {"a": 1, "b": 1, "c": 1, "d": 1, "e": 2, "f": 2, "g": 3, "h": 4, "i": 9}}
    assert discounts(table, len)[1] == pytest.approx((1 - 2 * 0.5 * 2 / 4, 2 - 3 * 0.5 * 1 / 2, 3 - 4 * 0.5 * 1))
    assert discounts({"": {"a": 1, "b": 2}}, len)[0] == FALLBACK_DISCOUNTS  # no n3, n4: too little to estimate
    assert [discount(n, (0.5, 1.0, 1.5)) for n in (0, 1, 2, 3, 7)] == [0.0, 0.5, 1.0, 1.5, 1.5]
    counts = np.array([0.0, 1.0, 2.0, 3.0, 7.0])
    assert discount_each(counts, (0.5, 1.0, 1.5)).tolist() == [0.0, 0.5, 1.0, 1.5, 1.5]


def test_lower_orders_count_distinct_left_contexts():
    counts = {"": {"a": 5, "b": 1}, "x": {"a": 4}, "y": {"a": 1, "b": 1}, "^": {"b": 9}}
    table = kneser_ney_counts(counts, 2, lambda h: h[1:], len, lambda h: h[:1] == "^")
    # "a" follows two contexts (x, y), "b" two (y, ^), whatever their raw counts
    assert table[""] == {"a": 2, "b": 2}
    assert table["x"] == counts["x"] and table["^"] == counts["^"]


def test_word_bigram_by_hand():
    lm = WordNgram.fit(SENTENCES, order=2)  # Kneser-Ney by default
    # distinct left contexts: the 1 (<s>), a 1, cat 1, sat 2 (cat, dog), ran 1, dog 1, </s> 2 (sat, ran): 9;
    # too few counts for estimated discounts, so 0.5 / 1.0 / 1.5, and the unigram's discounts sum to 4.5;
    # uniform over the 6 words, </s> and <unk>: 1/8
    unigram_cat = (1 - 0.5 + 4.5 / 8) / 9
    # after "the": cat twice, discounted by 1.0, which goes to the unigram
    assert math.exp(lm.log_prob("cat", ["the"])) == pytest.approx((2 - 1.0 + 1.0 * unigram_cat) / 2, abs=1e-12)
    unigram_unknown = (4.5 / 8) / 9
    assert math.exp(lm.log_prob("zebra", ["the"])) == pytest.approx(1.0 * unigram_unknown / 2, abs=1e-12)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "witten-bell"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_both_models_sum_to_one_with_either_smoothing(smoothing, order):
    words = WordNgram.fit(SENTENCES, order, smoothing)
    vocabulary = [*words.counts[""], UNKNOWN]
    for history in ([], ["the"], ["the", "cat"], ["a", "zebra"], ["cat", "sat", "the"]):
        assert sum(math.exp(words.log_prob(w, history)) for w in vocabulary) == pytest.approx(1.0, abs=1e-12)
    chars = CharNgram.fit(["abc abc", "cab", "aab ba"], " abc", order, smoothing)
    for history in ["", "a", "ab", "abc ", "zzz", "cccc"]:
        assert np.exp(chars.distribution(history)).sum() == pytest.approx(1.0, abs=1e-12)
    if order > 1:
        assert words.sentence_log_prob("the cat sat") > words.sentence_log_prob("sat cat the")
        assert chars.sentence_log_prob("abc abc") > chars.sentence_log_prob("cba cba")


def test_saved_models_keep_their_smoothing_and_old_files_read_as_witten_bell():
    for smoothing in ("kneser-ney", "witten-bell"):
        words = WordNgram.fit(SENTENCES, 3, smoothing)
        again = WordNgram.from_config(words.to_config())
        assert again.smoothing == smoothing and again.log_prob("cat", ["the"]) == words.log_prob("cat", ["the"])
        chars = CharNgram.fit(SENTENCES, " acdehnorst", 3, smoothing)
        np.testing.assert_array_equal(
            CharNgram.from_config(chars.to_config()).distribution("th"), chars.distribution("th")
        )
    old = {k: v for k, v in WordNgram.fit(SENTENCES, 2, "witten-bell").to_config().items() if k != "smoothing"}
    assert WordNgram.from_config(old).smoothing == "witten-bell"
    old = {k: v for k, v in CharNgram.fit(SENTENCES, " acdehnorst", 2).to_config().items() if k != "smoothing"}
    assert CharNgram.from_config(old).smoothing == "witten-bell"
    with pytest.raises(RnnkitError, match="smoothing"):
        WordNgram(2, smoothing="good-turing")
    with pytest.raises(RnnkitError, match="smoothing"):
        CharNgram(" ab", 2, smoothing="good-turing")
