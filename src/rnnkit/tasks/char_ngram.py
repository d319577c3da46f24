r"""A character n-gram language model, for beam-search fusion.

Two smoothings, both interpolating each order with the next shorter one, :math:`h'` being :math:`h` without
its oldest character:

* ``kneser-ney`` (the default): interpolated modified Kneser-Ney, :mod:`rnnkit.tasks.kneser_ney`;
* ``witten-bell``: :math:`P(c \mid h) = \frac{C(h c) + T(h)\, P(c \mid h')}{C(h) + T(h)}`, :math:`C` counting
  training occurrences and :math:`T(h)` the distinct characters seen after :math:`h`.

On the fortunes sentences (``bench/asr.py``) Kneser-Ney 6-grams read the validation transcripts at 2.01 bits
per character against Witten-Bell's 2.09, and unlike Witten-Bell keep improving with the order (8-gram: 1.95;
Witten-Bell: 2.18). The recursion ends in the uniform distribution over the alphabet plus the end-of-sentence
symbol ``$``. A sentence's history starts with ``^``. Every distribution sums to one (the tests check it), so
the model's log-probabilities can be added to the acoustic model's in
:func:`rnnkit.tasks.ctc_decode.prefix_beam_search`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.tasks.kneser_ney import discount_each, discounts, kneser_ney_counts

START, END = "^", "$"
SMOOTHINGS = ("kneser-ney", "witten-bell")


class CharNgram:
    """``order``-gram character model over ``alphabet`` (plus ``$``), trained with :meth:`fit`."""

    def __init__(
        self, alphabet: str, order: int = 6, counts: dict | None = None, smoothing: str = "kneser-ney"
    ) -> None:
        if order < 1:
            raise RnnkitError(f"the n-gram order must be at least 1, got {order}.")
        if smoothing not in SMOOTHINGS:
            raise RnnkitError(f"unknown smoothing {smoothing!r}; use one of {', '.join(SMOOTHINGS)}.")
        self.alphabet, self.order, self.smoothing = alphabet, order, smoothing
        self.symbols = alphabet + END  # the distribution's support, in this order
        self.index = {c: i for i, c in enumerate(self.symbols)}
        self.counts: dict[str, dict[str, int]] = counts or {}
        self.table = self.counts  # what each context's distribution is made of
        if smoothing == "kneser-ney":
            self.table = kneser_ney_counts(self.counts, order, lambda h: h[1:], len, lambda h: h[:1] == START)
            self.discounts = discounts(self.table, len)
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def fit(cls, sentences: list[str], alphabet: str, order: int = 6, smoothing: str = "kneser-ney") -> CharNgram:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for sentence in sentences:
            sentence = "".join(c for c in sentence if c in alphabet)
            history = START
            for c in sentence + END:
                for k in range(min(order - 1, len(history)) + 1):
                    counts[history[len(history) - k :]][c] += 1
                history += c
        return cls(alphabet, order, {h: dict(following) for h, following in counts.items()}, smoothing)

    def distribution(self, history: str) -> np.ndarray:
        """:math:`\\log P(\\cdot \\mid h)` over ``alphabet + '$'`` for the last ``order - 1`` characters."""
        context = (START + history)[-(self.order - 1) :] if self.order > 1 else ""
        if context not in self._cache:
            self._cache[context] = np.log(self._probabilities(context))
        return self._cache[context]

    def _probabilities(self, context: str) -> np.ndarray:
        lower = np.full(len(self.symbols), 1 / len(self.symbols)) if not context else self._probabilities(context[1:])
        following = self.table.get(context)
        if not following:
            return lower
        seen = np.zeros(len(self.symbols))
        for c, n in following.items():
            seen[self.index[c]] = n
        total = seen.sum()
        if self.smoothing == "witten-bell":
            types = len(following)
            return (seen + types * lower) / (total + types)
        taken = discount_each(seen, self.discounts[len(context)])
        return (seen - taken) / total + taken.sum() / total * lower

    def sentence_log_prob(self, sentence: str) -> float:
        return float(sum(self.distribution(sentence[:i])[self.index[c]] for i, c in enumerate(sentence + END)))

    def to_config(self) -> dict:
        return {"alphabet": self.alphabet, "order": self.order, "smoothing": self.smoothing, "counts": self.counts}

    @classmethod
    def from_config(cls, config: dict) -> CharNgram:
        # files written before Kneser-Ney came were Witten-Bell
        return cls(config["alphabet"], config["order"], config["counts"], config.get("smoothing", "witten-bell"))
