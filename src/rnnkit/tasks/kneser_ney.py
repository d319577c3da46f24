r"""Interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998), shared by the character and word n-grams.

.. math::
    P(w \mid h) = \frac{\max(c(h w) - D_{|h|}(c(h w)), 0)}{\sum_v c(h v)} + \gamma(h)\, P(w \mid h'),
    \qquad \gamma(h) = \frac{\sum_v D_{|h|}(c(h v))}{\sum_v c(h v)}

where :math:`h'` is :math:`h` without its oldest unit. :math:`c` is the raw count for the longest contexts and
for contexts that begin at the sentence start (nothing can precede them). For every other context it is the
*continuation count* :math:`N_{1+}(\bullet\, h w)`: after how many distinct one-unit-longer contexts
:math:`x h` the unit :math:`w` was seen. A lower order is only asked when the longer context did not settle
the matter, so it should say how readily :math:`w` follows *new* contexts: "francisco" is frequent, but only
ever after "san".

Three discounts per context length, for counts 1, 2 and 3+, from the count-of-counts :math:`n_1 .. n_4` of
that length: :math:`Y = n_1 / (n_1 + 2 n_2)`, :math:`D(k) = k - (k + 1)\, Y\, n_{k+1} / n_k`.
Every distribution sums to one, since what the discounts take from the seen units :math:`\gamma` gives to the
lower order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

# when a length has too few counts to estimate its discounts (tiny corpora)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def kneser_ney_counts(
    counts: dict[str, dict[str, int]], order: int, shorter: Callable[[str], str], length: Callable[[str], int],
    at_start: Callable[[str], bool],
) -> dict[str, dict[str, int]]:  # fmt: skip
    """The counts each context's distribution is made of: raw for the longest contexts and those at the
    sentence start, continuation counts for the others. ``shorter`` drops a context's oldest unit."""
    continuation: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for context, following in counts.items():
        if length(context) >= 1:
            parent = continuation[shorter(context)]
            for unit in following:
                parent[unit] += 1
    return {
        context: following if length(context) == order - 1 or at_start(context) else dict(continuation[context])
        for context, following in counts.items()
    }


def discounts(table: dict[str, dict[str, int]], length: Callable[[str], int]) -> dict[int, tuple[float, ...]]:
    """:math:`(D(1), D(2), D(3+))` for each context length, from the count-of-counts of ``table``."""
    count_of_counts: dict[int, list[int]] = defaultdict(lambda: [0] * 5)
    for context, following in table.items():
        histogram = count_of_counts[length(context)]
        for n in following.values():
            if n <= 4:
                histogram[n] += 1
    result = {}
    for size, (_, n1, n2, n3, n4) in count_of_counts.items():
        if min(n1, n2, n3, n4) == 0:
            result[size] = FALLBACK_DISCOUNTS
            continue
        y = n1 / (n1 + 2 * n2)
        estimated = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        # keep 0 <= D(k) < k, so that a seen unit keeps some probability of its own
        result[size] = tuple(min(max(d, 0.0), k - 0.05) for k, d in zip((1, 2, 3), estimated, strict=True))
    return result


def discount(n: int, by_count: tuple[float, ...]) -> float:
    """:math:`D(n)` for a count ``n`` (0 for an unseen unit)."""
    return 0.0 if n <= 0 else by_count[min(n, 3) - 1]


def discount_each(counts: np.ndarray, by_count: tuple[float, ...]) -> np.ndarray:
    """:func:`discount` of every count in ``counts`` at once (a character n-gram scores a whole alphabet)."""
    one, two, more = by_count
    return np.select([counts <= 0, counts == 1, counts == 2], [0.0, one, two], more)
