"""Text corpora as three strings, and the deterministic split for a text file the user brings.

Every loader returns a :class:`TextSplits` (``train``, ``valid``, ``test``); tokenisers and batching in
:mod:`rnnkit.data.text` take it from there. The real corpora live next door: :mod:`.plays` (Shakespeare) and
:mod:`.wikitext`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from rnnkit.data.sources import read_text_file
from rnnkit.errors import RnnkitError

NEWLINE, WHITE_SPACE, VISIBLE = re.compile("\n"), re.compile(r"\s"), re.compile(r"\S")


@dataclass(frozen=True)
class TextSplits:
    """A corpus split three ways; each part is plain text (lines end with ``\\n``)."""

    train: str
    valid: str
    test: str


def text_file(path: str | os.PathLike[str], *, valid_fraction: float = 0.05, test_fraction: float = 0.05) -> TextSplits:
    """A UTF-8 text file split into contiguous blocks: train first, then valid, then the last part test.

    The cut points sit at ``1 - valid_fraction - test_fraction`` and ``1 - test_fraction`` of the
    characters, each moved forward to just after the next newline so no line is cut in two; where no newline
    comes before the end of the part that follows (a file of a few long lines), to just after the next white
    space, so no word is cut; failing that, the text is cut mid-word. Contiguous blocks rather than a random
    sample, because a language model must be judged on text it has not seen any part of, not on lines
    interleaved with its training text. Deterministic. Raises :class:`RnnkitError` for a missing, empty or
    non-UTF-8 file, bad fractions, or a file too short to give every part some text.
    """
    for name, fraction in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise RnnkitError(f"{name} must be between 0 and 1 (exclusive), got {fraction}.")
    if valid_fraction + test_fraction >= 1:
        raise RnnkitError(
            f"valid_fraction + test_fraction must leave some training text, got "
            f"{valid_fraction} + {test_fraction} >= 1; lower them."
        )
    text = read_text_file(path)
    test_cut = round(len(text) * (1 - test_fraction))
    valid_start = _boundary(text, round(len(text) * (1 - valid_fraction - test_fraction)), test_cut)
    test_start = _boundary(text, max(test_cut, valid_start + 1), len(text))
    splits = TextSplits(text[:valid_start], text[valid_start:test_start], text[test_start:])
    if not (splits.train.strip() and splits.valid.strip() and splits.test.strip()):
        raise RnnkitError(
            f"text file {str(path)!r} has {len(text)} characters, too few to split into non-empty "
            "train/valid/test parts; give a longer file."
        )
    return splits


def _boundary(text: str, position: int, stop: int) -> int:
    """Where to cut at or after ``position``: just after a newline, else after white space, else ``position``.

    Only a cut that leaves some text (not just white space) before ``stop`` counts, the end of the part it starts.
    """
    # a newline that comes only at the end of the file (one long line) would leave the part after it empty:
    # then the cut falls back to a space, so such a file splits rather than being refused as too short
    for separator in (NEWLINE, WHITE_SPACE):
        found = separator.search(text, max(position - 1, 0), stop)
        if found and VISIBLE.search(text, found.end(), stop):
            return found.end()
    return position
