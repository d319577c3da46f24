"""Two translation baselines a neural model must beat, scored with the same sacrebleu metrics.

- :class:`TranslationMemory`: the target side of the most similar training source, similarity being the
  cosine of character n-gram TF-IDF vectors (scikit-learn ``TfidfVectorizer(analyzer="char_wb",
  ngram_range=(2, 4), sublinear_tf=True)``), as a translator's fuzzy-match memory does.
- :class:`WordByWord`: each source word replaced by the dictionary's first translation of it (case-folded
  lookup; the first letter's case kept; punctuation kept; unknown words copied), the dictionary being the
  Ding file's one-word German entries (:mod:`rnnkit.data.debian`), reversed for English to German.
"""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from rnnkit.data.pairs import Pairs

_TOKENS = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")


class TranslationMemory:
    """Fit on training pairs; ``translate(texts)`` returns the target of each text's nearest source."""

    def __init__(self, train: Pairs) -> None:
        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.memory = self.vectorizer.fit_transform(train.sources)  # (n_train, features), rows L2-normalised
        self.targets = train.targets

    def translate(self, texts: list[str], *, chunk: int = 512) -> list[str]:
        found = []
        for start in range(0, len(texts), chunk):
            queries = self.vectorizer.transform(texts[start : start + chunk])
            similarity = queries @ self.memory.T  # cosine: both sides are unit vectors
            found += np.asarray(similarity.argmax(axis=1)).ravel().tolist()
        return [self.targets[i] for i in found]


def word_dictionary(phrases: list[tuple[str, str]], *, reverse: bool = False) -> dict[str, str]:
    """``{source word (lower case): first translation}`` from one-word source entries of ``(German,
    English)`` phrase pairs (English -> German with ``reverse``); the first entry of a word wins."""
    dictionary: dict[str, str] = {}
    for german, english in phrases:
        source, target = (english, german) if reverse else (german, english)
        if reverse and source.startswith("to "):  # "to litter": English verbs are listed with "to"
            source = source[3:]
        if " " in source or not source:
            continue
        dictionary.setdefault(source.lower(), target.removeprefix("to ") if not reverse else target)
    return dictionary


class WordByWord:
    """Translate token by token with a :func:`word_dictionary`."""

    def __init__(self, dictionary: dict[str, str]) -> None:
        self.dictionary = dictionary

    def translate_one(self, text: str) -> str:
        words = []
        for token in _TOKENS.findall(text):
            translation = self.dictionary.get(token.lower(), token)
            if token[:1].isupper() and not words:
                translation = translation[:1].upper() + translation[1:]
            words.append(translation)
        # -> detokenised: no space before punctuation
        return re.sub(r" ([^\w\s])", r"\1", " ".join(words))

    def translate(self, texts: list[str]) -> list[str]:
        return [self.translate_one(t) for t in texts]
