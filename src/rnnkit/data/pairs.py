"""Parallel sentence pairs for translation: the built-in Ding set or a user's TSV, split by a stable hash.

**Sources.** ``ding-de-en`` is the Ding dictionary's 17,622 German-English sentence pairs
(:mod:`rnnkit.data.debian`); any UTF-8 file of ``source<TAB>target`` lines is the other. ``direction``
(``de-en`` or ``en-de``) says which side of Ding is the source; a TSV is always read as source, target.

**The split** hashes the German side of a Ding pair (the TSV's source column), so de->en and en->de test on
the same sentences and a sentence never sits in two splits::

    bucket = int(sha256(german.encode("utf-8")).hexdigest()[:8], 16) % 100
    test if bucket < 5  (880 Ding pairs),  valid if bucket < 10 (about 900),  train otherwise

**Extra pairs.** ``phrases=True`` adds the Ding phrase entries (words and phrases with their translation)
of at least ``min_phrase_words`` words a side to the *training* split only, skipping any whose German side
also appears in the test or validation split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.data.debian import read_ding
from rnnkit.data.sentiment import hash_bucket
from rnnkit.errors import RnnkitError

BUILT_IN = ("ding-de-en",)
DIRECTIONS = ("de-en", "en-de")
TEST_BUCKETS, VALID_BUCKETS = 5, 5  # of 100


@dataclass(frozen=True)
class Pairs:
    sources: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)


@dataclass(frozen=True)
class PairSplits:
    train: Pairs
    valid: Pairs
    test: Pairs
    split: str  # how it was made, for config.json and metrics.json
    extra: Pairs = field(default_factory=lambda: Pairs([], []))  # phrase pairs added to train


def read_tsv(path: Path | str) -> Pairs:
    """``source<TAB>target`` lines of a UTF-8 file; any empty line, a line without exactly two
    tab-separated non-empty columns, or bytes that are not UTF-8 stop reading with the line number."""
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist; give a UTF-8 file of source<TAB>target lines.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise RnnkitError(f"{path} line {line} is not UTF-8 ({error.reason}); save the file as UTF-8.") from None
    sources, targets = [], []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        columns = line.split("\t")
        if not line.strip():
            raise RnnkitError(f"{path} line {number} is empty; every line must be source<TAB>target.")
        if len(columns) != 2:
            raise RnnkitError(
                f"{path} line {number} has {len(columns)} tab-separated columns, expected 2 (source<TAB>target)."
            )
        source, target = columns[0].strip(), columns[1].strip()
        if not source or not target:
            raise RnnkitError(f"{path} line {number} has an empty {'source' if not source else 'target'} side.")
        sources.append(source)
        targets.append(target)
    if not sources:
        raise RnnkitError(f"{path} has no lines; give source<TAB>target pairs.")
    return Pairs(sources, targets)


def split_by_hash(keys: list[str], sources: list[str], targets: list[str]) -> tuple[Pairs, Pairs, Pairs]:
    """Train, valid, test by ``hash_bucket(key)`` (see the module docstring)."""
    parts = {name: ([], []) for name in ("train", "valid", "test")}
    for key, source, target in zip(keys, sources, targets, strict=True):
        bucket = hash_bucket(key)
        name = "test" if bucket < TEST_BUCKETS else "valid" if bucket < TEST_BUCKETS + VALID_BUCKETS else "train"
        parts[name][0].append(source)
        parts[name][1].append(target)
    return tuple(Pairs(*parts[name]) for name in ("train", "valid", "test"))


def check_direction(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise RnnkitError(f"Unknown direction {direction!r}. Select from {', '.join(DIRECTIONS)}.")
    source, target = direction.split("-")
    return source, target


def load_pairs(pairs: str, direction: str = "de-en", *, phrases: bool = False, min_phrase_words: int = 2) -> PairSplits:
    """The splits of ``pairs`` (``ding-de-en`` or a TSV path) in ``direction`` (see the module docstring)."""
    source_language, _ = check_direction(direction)
    split = f"sha256 of the German side mod 100: test < {TEST_BUCKETS}, valid < {TEST_BUCKETS + VALID_BUCKETS}"
    if pairs not in BUILT_IN:
        if pairs.startswith("ding"):
            raise RnnkitError(f"Unknown pairs {pairs!r}. Select from {', '.join(BUILT_IN)}, or give a TSV file.")
        data = read_tsv(pairs)
        train, valid, test = split_by_hash(data.sources, data.sources, data.targets)
        for name, part in (("training", train), ("validation", valid), ("test", test)):
            if not len(part):
                raise RnnkitError(
                    f"{pairs} has {len(data)} pair(s) and none falls in the {name} split (pairs are split by "
                    "a hash of their source side); give more pairs, hundreds at least."
                )
        return PairSplits(train, valid, test, split.replace("German side", "source column"))
    entries = read_ding()
    german = [de for de, _ in entries.sentences]
    english = [en for _, en in entries.sentences]
    sources, targets = (german, english) if source_language == "de" else (english, german)
    train, valid, test = split_by_hash(german, sources, targets)
    extra = Pairs([], [])
    if phrases:
        held_out = {de for de in german if hash_bucket(de) < TEST_BUCKETS + VALID_BUCKETS}
        kept = [
            (de, en)
            for de, en in entries.phrases
            if de not in held_out and min(len(de.split()), len(en.split())) >= min_phrase_words
        ]
        de_side, en_side = [de for de, _ in kept], [en for _, en in kept]
        extra = Pairs(de_side, en_side) if source_language == "de" else Pairs(en_side, de_side)
    return PairSplits(train, valid, test, split, extra)
