"""Text corpora as three strings, and the deterministic split for a text file the user brings.

Every loader returns a :class:`TextSplits` (``train``, ``valid``, ``test``); tokenisers and batching in
:mod:`rnnkit.data.text` take it from there. The real corpora live next door: :mod:`.plays` (Shakespeare) and
:mod:`.wikitext`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rnnkit.data.sources import read_text_file
from rnnkit.errors import RnnkitError


@dataclass(frozen=True)
class TextSplits:
    """A corpus split three ways; each part is plain text (lines end with ``\\n``)."""

    train: str
    valid: str
    test: str


def text_file(path: str | os.PathLike[str], *, valid_fraction: float = 0.05, test_fraction: float = 0.05) -> TextSplits:
    """A UTF-8 text file split into contiguous blocks: train first, then valid, then the last part test.

    The cut points sit at ``1 - valid_fraction - test_fraction`` and ``1 - test_fraction`` of the
    characters, each moved forward to just after the next newline so no line is cut in two (a file without
    newlines is cut mid-text). Contiguous blocks rather than a random sample, because a language model
    must be judged on text it has not seen any part of, not on lines interleaved with its training text.
    Deterministic. Raises :class:`RnnkitError` for a missing, empty or non-UTF-8 file, bad fractions, or a
    file too short to give every part some text.
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
    valid_start = _line_boundary(text, round(len(text) * (1 - valid_fraction - test_fraction)))
    test_start = _line_boundary(text, max(round(len(text) * (1 - test_fraction)), valid_start + 1))
    splits = TextSplits(text[:valid_start], text[valid_start:test_start], text[test_start:])
    if not (splits.train.strip() and splits.valid.strip() and splits.test.strip()):
        raise RnnkitError(
            f"text file {str(path)!r} has {len(text)} characters, too few to split into non-empty "
            "train/valid/test parts; give a longer file."
        )
    return splits


def _line_boundary(text: str, position: int) -> int:
    """``position`` if a line starts there, else the index just after the next newline (or ``position``)."""
    newline = text.find("\n", max(position - 1, 0))
    return newline + 1 if newline != -1 else position
