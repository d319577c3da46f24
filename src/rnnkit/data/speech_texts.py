"""Texts to synthesise for the speech corpus: three small grammars, real sentences (fortunes) or a file.

Every text comes out in the recogniser's alphabet (``a-z``, space, apostrophe): lowercase, numbers written
as words ("ten", not "10"), other punctuation dropped. Grammars draw from a seeded ``random.Random``:

* ``digits``: 3 to 8 digits, "four oh seven two" ("zero" or "oh" for 0);
* ``cards``: "the ten of clubs", "ace of spades and two of hearts";
* ``commands``: a robot's orders, "go forward ten meters", "turn left by forty five degrees".

``fortunes`` reads Debian's ``fortunes`` files (records between ``%`` lines, attributions dropped) and
keeps sentences of 4 to 12 words; a FILE gives one text per non-empty line.
"""

from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path

from rnnkit.errors import RnnkitError

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # what transcripts may hold (CTC's blank comes on top)
FORTUNES_DIR = Path("/usr/share/games/fortunes")
# right and left single quotation marks and the modifier letter apostrophe: "don’t" is "don't"
APOSTROPHES = str.maketrans("\u2019\u2018\u02bc", "'''")

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()  # fmt: skip
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0 <= n < 10**9 in words: 342 -> "three hundred forty two"."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_words(head)} {name}" + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def normalise_text(text: str) -> str:
    """Lowercase, numbers as words, '&' as "and", accented letters as their base letter ("café" -> "cafe"),
    typographic apostrophes as "'", anything else outside the alphabet dropped, spaces squeezed."""
    # split each accented letter into its base and combining marks and drop the marks: filtering alone would
    # drop the whole letter ("résumé" -> "rsum"), a word the synthesiser then speaks and the LM learns
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.translate(APOSTROPHES).lower().replace("&", " and ").replace("%", " percent ")
    text = re.sub(r"\d{1,9}", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"[-_/]", " ", text)
    text = "".join(c for c in text if c in ALPHABET or c.isspace())
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not apostrophes inside words
    return " ".join(text.split())


# --- grammars ----------------------------------------------------------------------------------------------

RANKS = "ace two three four five six seven eight nine ten jack queen king".split()
SUITS = "clubs diamonds hearts spades".split()
DIRECTIONS = ("forward", "backward", "back", "left", "right", "up", "down")
UNITS = ("meters", "steps", "centimeters", "feet")
OBJECTS = ("block", "ball", "box", "cup", "cone", "bottle")
COLOURS = ("red", "green", "blue", "yellow", "black", "white", "orange")


def digits(rng: random.Random) -> str:
    words = [
        ONES[d] if d or rng.random() < 0.5 else "oh" for d in (rng.randrange(10) for _ in range(rng.randint(3, 8)))
    ]
    return " ".join(words)


def card(rng: random.Random) -> str:
    return f"{rng.choice(RANKS)} of {rng.choice(SUITS)}"


def cards(rng: random.Random) -> str:
    form = rng.randrange(4)
    if form == 0:
        return f"the {card(rng)}"
    if form == 1:
        return f"{card(rng)} and {card(rng)}"
    if form == 2:
        return f"play the {card(rng)}"
    return f"{rng.choice(('draw', 'discard', 'show me'))} {number_words(rng.randint(1, 5))} {rng.choice(SUITS)}"


def commands(rng: random.Random) -> str:
    form = rng.randrange(6)
    amount = number_words(rng.randint(1, 99))
    if form == 0:
        return f"go {rng.choice(DIRECTIONS[:3])} {amount} {rng.choice(UNITS)}"
    if form == 1:
        return f"turn {rng.choice(('left', 'right'))}" + (f" by {amount} degrees" if rng.random() < 0.6 else "")
    if form == 2:
        return f"pick up the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}"
    if form == 3:
        return f"put the {rng.choice(COLOURS)} {rng.choice(OBJECTS)} on the {rng.choice(COLOURS)} {rng.choice(OBJECTS)}"
    if form == 4:
        return f"move {rng.choice(DIRECTIONS)} {amount} {rng.choice(UNITS)} and stop"
    return rng.choice(("stop", "stop now", "wait here", "come back", "go home", "speed up", "slow down"))


GRAMMARS = {"digits": digits, "cards": cards, "commands": commands}


# --- real sentences ----------------------------------------------------------------------------------------


def fortune_sentences(directory: Path = FORTUNES_DIR, *, min_words: int = 4, max_words: int = 12) -> list[str]:
    """Distinct normalised sentences of ``min_words`` to ``max_words`` words from a fortunes directory's
    plain files (``.dat`` indexes and the ``off/`` subdirectory skipped), sorted."""
    if not directory.is_dir():
        raise RnnkitError(f"{directory} does not exist; install Debian's fortunes package or give a text FILE.")
    sentences = set()
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix in (".dat", ".u8") or path.is_symlink():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for record in text.split("\n%\n"):
            lines = [line for line in record.splitlines() if not re.match(r"^\s*(--|\u2014)", line)]
            body = re.sub(r"\b[QA]:", " ", " ".join(lines))  # riddles' "Q: ... A: ..." markers
            for sentence in re.split(r"(?<=[.!?])\s+", body):
                words = normalise_text(sentence).split()
                if min_words <= len(words) <= max_words:
                    sentences.add(" ".join(words))
    return sorted(sentences)


def file_sentences(path: Path | str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"--texts {path}: no such grammar ({', '.join(GRAMMARS)}, fortunes) or file.")
    texts = [normalise_text(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    texts = sorted({t for t in texts if t})
    if not texts:
        raise RnnkitError(f"{path} holds no text with letters; give one sentence per line.")
    return texts


def make_texts(name: str, count: int, seed: int = 0) -> list[str]:
    """``count`` texts: from a grammar (or '+'-joined grammars, 'digits+cards+commands'), each drawn with its
    own generator ``Random(seed, i)``; or from 'fortunes' or a FILE, a seeded permutation of the distinct
    sentences, cycled when ``count`` is larger."""
    parts = name.split("+")
    if all(part in GRAMMARS for part in parts):
        grammars = [GRAMMARS[part] for part in parts]
        texts = []
        for i in range(count):
            rng = random.Random(f"{seed}:{i}")
            texts.append(rng.choice(grammars)(rng))
        return texts
    sentences = fortune_sentences() if name == "fortunes" else file_sentences(name)
    random.Random(seed).shuffle(sentences)
    return [sentences[i % len(sentences)] for i in range(count)]
