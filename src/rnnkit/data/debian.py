"""The Ding German-English dictionary of Debian's ``trans-de-en``: example sentences and word entries.

One file, ``/usr/share/trans/de-en`` (GPL-2+, loaded from the installed package at run time, never copied
into the repository). Each line is ``German :: English``; both sides split by ``" | "`` into aligned parts,
synonyms within a part are separated by ``"; "``, annotations sit in ``{}`` (gender, part of speech),
``[]`` (register, field) and ``<>`` (spelling variants)::

    Abhilfe {f}; Mittel {n} | Um diese Probleme zu lösen, gibt es kein einfaches Rezept. :: remedy | These ...

Each aligned part, first synonym only, annotations stripped, becomes

- a **sentence pair** when both sides look like full sentences (capitalised, ending in ``.?!``, at least 3
  words) and neither has ``" / "`` or ``"("`` (alternatives and glosses, not translations): 17,622 distinct
  pairs in the 2023-01-30 file (DATA.md counts 17,617 by a slightly different rule); translations are
  idiomatic, not literal;
- otherwise a **phrase pair** (a word or phrase with its translation), the file's bilingual dictionary:
  word-by-word baseline and, optionally, extra training pairs (Sennrich & Zhang 2019).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rnnkit.errors import RnnkitError

DING_PATH = Path("/usr/share/trans/de-en")
_ANNOTATION = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\]|<[^>]*>)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class DingEntries:
    sentences: list[tuple[str, str]]  # (German, English) full sentences, distinct, in file order
    phrases: list[tuple[str, str]]  # (German, English) words and phrases, distinct, in file order


def strip_annotations(text: str) -> str:
    """``"Aal {m} [cook.]"`` -> ``"Aal"``: drop ``{}``/``[]``/``<>`` annotations, squeeze spaces."""
    return _SPACES.sub(" ", _ANNOTATION.sub("", text)).strip()


def is_sentence(text: str) -> bool:
    """Capitalised, ends in ``.``, ``?`` or ``!``, at least three words."""
    return text[:1].isupper() and text[-1:] in ".?!" and len(text.split()) >= 3


def parse_ding(lines) -> DingEntries:
    """Sentence and phrase pairs from the lines of a Ding file (see the module docstring); comment lines
    (``#``) and lines without ``" :: "`` or with unaligned parts are skipped."""
    sentences: dict[tuple[str, str], None] = {}
    phrases: dict[tuple[str, str], None] = {}
    for line in lines:
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.rstrip("\n").split(" :: ", 1)
        german_parts, english_parts = german.split(" | "), english.split(" | ")
        if len(german_parts) != len(english_parts):
            continue
        for de, en in zip(german_parts, english_parts, strict=True):
            de, en = de.split("; ")[0], en.split("; ")[0]  # first synonym
            if " / " in de + en or "(" in de + en:
                continue
            de, en = strip_annotations(de), strip_annotations(en)
            if not de or not en:
                continue
            if is_sentence(de) and is_sentence(en):
                sentences[(de, en)] = None
            elif "…" not in de + en and "..." not in de + en:  # "etw. ... tun": templates, not phrases
                phrases[(de, en)] = None
    return DingEntries(list(sentences), list(phrases))


def read_ding(path: Path | str = DING_PATH) -> DingEntries:
    """Parse the installed Ding file (Debian ``trans-de-en``); a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(
            f"{path} does not exist; install the Debian package trans-de-en (`make system-deps` or "
            "`apt-get install trans-de-en`), or train on your own --pairs FILE.tsv."
        )
    with path.open(encoding="utf-8", errors="replace") as f:
        return parse_ding(f)
