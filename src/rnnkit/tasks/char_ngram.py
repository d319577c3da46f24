r"""A character n-gram language model with interpolated Witten-Bell smoothing, for beam-search fusion.

.. math::
    P(c \mid h) = \frac{C(h c) + T(h)\, P(c \mid h')}{C(h) + T(h)}

where :math:`h'` is :math:`h` without its oldest character, :math:`C` counts training occurrences and
:math:`T(h)` is the number of distinct characters seen after :math:`h`; the recursion ends in the uniform
distribution over the alphabet plus the end-of-sentence symbol ``$``. A sentence's history starts with
``^``. Every distribution sums to one (the tests check it), so the model's log-probabilities can be added to
the acoustic model's in :func:`rnnkit.tasks.ctc_decode.prefix_beam_search`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from rnnkit.errors import RnnkitError

START, END = "^", "$"


class CharNgram:
    """``order``-gram character model over ``alphabet`` (plus ``$``), trained with :meth:`fit`."""

    def __init__(self, alphabet: str, order: int = 6, counts: dict | None = None) -> None:
        if order < 1:
            raise RnnkitError(f"the n-gram order must be at least 1, got {order}.")
        self.alphabet, self.order = alphabet, order
        self.symbols = alphabet + END  # the distribution's support, in this order
        self.index = {c: i for i, c in enumerate(self.symbols)}
        self.counts: dict[str, dict[str, int]] = counts or {}
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def fit(cls, sentences: list[str], alphabet: str, order: int = 6) -> CharNgram:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for sentence in sentences:
            sentence = "".join(c for c in sentence if c in alphabet)
            history = START
            for c in sentence + END:
                for k in range(min(order - 1, len(history)) + 1):
                    counts[history[len(history) - k :]][c] += 1
                history += c
        return cls(alphabet, order, {h: dict(following) for h, following in counts.items()})

    def distribution(self, history: str) -> np.ndarray:
        """:math:`\\log P(\\cdot \\mid h)` over ``alphabet + '$'`` for the last ``order - 1`` characters."""
        context = (START + history)[-(self.order - 1) :] if self.order > 1 else ""
        if context not in self._cache:
            self._cache[context] = np.log(self._probabilities(context))
        return self._cache[context]

    def _probabilities(self, context: str) -> np.ndarray:
        lower = np.full(len(self.symbols), 1 / len(self.symbols)) if not context else self._probabilities(context[1:])
        following = self.counts.get(context)
        if not following:
            return lower
        seen = np.zeros(len(self.symbols))
        for c, n in following.items():
            seen[self.index[c]] = n
        total, types = seen.sum(), len(following)
        return (seen + types * lower) / (total + types)

    def sentence_log_prob(self, sentence: str) -> float:
        return float(sum(self.distribution(sentence[:i])[self.index[c]] for i, c in enumerate(sentence + END)))

    def to_config(self) -> dict:
        return {"alphabet": self.alphabet, "order": self.order, "counts": self.counts}

    @classmethod
    def from_config(cls, config: dict) -> CharNgram:
        return cls(config["alphabet"], config["order"], config["counts"])
