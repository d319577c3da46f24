r"""A word n-gram language model, and its fusion with a character LM in beam search.

Smoothed as in :mod:`rnnkit.tasks.char_ngram`, over words: interpolated modified Kneser-Ney
(:mod:`rnnkit.tasks.kneser_ney`, the default) or Witten-Bell,

.. math::
    P(w \mid h) = \frac{C(h w) + T(h)\, P(w \mid h')}{C(h) + T(h)}

:math:`h'` drops the oldest word of :math:`h`, the recursion ends in the uniform distribution over the
vocabulary, the end of sentence ``</s>`` and one unknown word
``<unk>``. A word never seen in training is ``<unk>``, so it gets only the uniform share: the model says how
likely a *known* word is here, and a misspelt word is unlikely.

A character beam search cannot ask a word model about a word until the word is finished.
:class:`WordFusion` therefore looks like a character LM to the beam search and adds the word LM's opinion at
word ends: the score of a space (or of the end of the text) after the word :math:`w` becomes

.. math::
    \log P_{char}(\text{" "} \mid \text{prefix}) + \lambda \log P_{word}(w \mid \text{previous words})

(and :math:`+ \lambda \log P_{word}(\langle/s\rangle \mid w)` at the end), so prefixes that spell known words
in likely orders rise in the beam. :math:`\lambda` is picked on validation, like the character LM's weight.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.tasks.kneser_ney import discount, discounts, kneser_ney_counts

START, END, UNKNOWN = "<s>", "</s>", "<unk>"
SMOOTHINGS = ("kneser-ney", "witten-bell")


def _words(context: str) -> int:
    return len(context.split(" ")) if context else 0


def _shorter(context: str) -> str:
    return context.partition(" ")[2]  # without its oldest word


def _at_start(context: str) -> bool:
    return context.partition(" ")[0] == START


class WordNgram:
    """``order``-gram word model, trained with :meth:`fit`; histories are stored as space-joined words."""

    def __init__(self, order: int = 2, counts: dict | None = None, smoothing: str = "kneser-ney") -> None:
        if order < 1:
            raise RnnkitError(f"the n-gram order must be at least 1, got {order}.")
        if smoothing not in SMOOTHINGS:
            raise RnnkitError(f"unknown smoothing {smoothing!r}; use one of {', '.join(SMOOTHINGS)}.")
        self.order, self.smoothing = order, smoothing
        self.counts: dict[str, dict[str, int]] = counts or {}
        vocabulary = set(self.counts.get("", {})) | {END, UNKNOWN}
        self.uniform = 1.0 / len(vocabulary)
        self._cache: dict[tuple[str, str], float] = {}
        self.table = self.counts  # what each context's distribution is made of
        if smoothing == "kneser-ney":
            self.table = kneser_ney_counts(self.counts, order, _shorter, _words, _at_start)
            self.discounts = discounts(self.table, _words)
        # per context: its total count, and the mass handed to the shorter context (Witten-Bell: the number of
        # distinct words seen after it; Kneser-Ney: the sum of the discounts)
        self._sizes = {context: (sum(following.values()), self._lower_mass(context, following))
                       for context, following in self.table.items()}  # fmt: skip

    def _lower_mass(self, context: str, following: dict[str, int]) -> float:
        if self.smoothing == "witten-bell":
            return len(following)
        by_count = self.discounts[_words(context)]
        return sum(discount(n, by_count) for n in following.values())

    @classmethod
    def fit(cls, sentences: list[str], order: int = 2, smoothing: str = "kneser-ney") -> WordNgram:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for sentence in sentences:
            words = sentence.split()
            if not words:
                continue
            history = [START]
            for word in [*words, END]:
                for k in range(min(order - 1, len(history)) + 1):
                    counts[" ".join(history[len(history) - k :])][word] += 1
                history.append(word)
        return cls(order, {h: dict(following) for h, following in counts.items()}, smoothing)

    def log_prob(self, word: str, history: list[str]) -> float:
        """:math:`\\log P(w \\mid h)`, ``history`` being the words before (the sentence start is implied)."""
        context = " ".join([START, *history][-(self.order - 1) :]) if self.order > 1 else ""
        key = (context, word)
        if key not in self._cache:
            if len(self._cache) >= 1_000_000:  # one model serves many utterances: keep the memory bounded
                self._cache.clear()
            self._cache[key] = float(np.log(self._probability(word if word else UNKNOWN, context)))
        return self._cache[key]

    def _probability(self, word: str, context: str) -> float:
        lower = self.uniform if not context else self._probability(word, context.partition(" ")[2])
        following = self.table.get(context)
        if not following:
            return lower
        total, mass = self._sizes[context]
        n = following.get(word, 0)
        if self.smoothing == "witten-bell":
            return (n + mass * lower) / (total + mass)
        return (n - discount(n, self.discounts[_words(context)]) + mass * lower) / total

    def sentence_log_prob(self, sentence: str) -> float:
        words = sentence.split()
        return sum(self.log_prob(w, words[:i]) for i, w in enumerate([*words, END]))

    def to_config(self) -> dict:
        return {"order": self.order, "smoothing": self.smoothing, "counts": self.counts}

    @classmethod
    def from_config(cls, config: dict) -> WordNgram:
        # files written before Kneser-Ney came were Witten-Bell
        return cls(config["order"], config["counts"], config.get("smoothing", "witten-bell"))


class WordFusion:
    """A character LM whose scores for a space and for the end of the text also carry the word LM's
    :math:`\\lambda \\log P(w \\mid h)` of the word just finished (see the module docstring); it offers the
    character LM's interface (``distribution``, and ``prepare`` for a recurrent one), so any beam search that
    fuses a character LM fuses this."""

    def __init__(self, char_lm, word_lm: WordNgram, weight: float) -> None:
        if " " not in char_lm.alphabet:
            raise RnnkitError("word fusion needs an alphabet with the space, which separates the words.")
        self.char_lm, self.word_lm, self.weight = char_lm, word_lm, weight
        self.alphabet = char_lm.alphabet
        self.space, self.end = self.alphabet.index(" "), len(self.alphabet)  # "$" follows the alphabet
        self._cache: dict[str, np.ndarray] = {}  # a prefix stays in the beam for many frames: score it once

    def prepare(self, prefixes: list[str]) -> None:
        prepare = getattr(self.char_lm, "prepare", None)
        if prepare is not None:
            prepare(prefixes)

    def distribution(self, prefix: str) -> np.ndarray:
        if self.weight == 0:
            return self.char_lm.distribution(prefix)
        cached = self._cache.get(prefix)
        if cached is not None:
            return cached
        if len(self._cache) >= 100_000:  # one decoder serves many utterances: keep the memory bounded
            self._cache.clear()
        scores = self.char_lm.distribution(prefix).copy()
        words = prefix.split(" ")
        finished, history = words[-1], [w for w in words[:-1] if w]
        word = self.word_lm.log_prob(finished, history)  # an empty word (two spaces in a row) is <unk>
        scores[self.space] += self.weight * word
        if finished:
            scores[self.end] += self.weight * (word + self.word_lm.log_prob(END, [*history, finished]))
        else:
            scores[self.end] += self.weight * self.word_lm.log_prob(END, history)
        self._cache[prefix] = scores
        return scores
