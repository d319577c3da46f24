"""The Ding file parser: sentence pairs and phrase entries from a tiny fixture (and the real file if installed)."""

import pytest

from rnnkit.data.debian import DING_PATH, is_sentence, parse_ding, read_ding, strip_annotations
from rnnkit.errors import RnnkitError


@pytest.fixture
def entries(fixtures):
    return read_ding(fixtures / "tiny-ding.txt")


def test_sentences_are_aligned_first_synonym_parts_without_annotations(entries):
    assert entries.sentences == [
        ("Das Haus ist sehr alt.", "The house is very old."),
        ("Wir gehen nach Hause.", "We are going home."),
        ("Der Hund bellt laut.", "The dog barks loudly."),
        ("Der Baum ist groß.", "The tree is tall."),  # listed twice, kept once
        ("Er geht nach Hause.", "He goes home."),
    ]


def test_glosses_alternatives_and_unaligned_lines_are_dropped(entries):
    germans = {de for de, _ in entries.sentences + entries.phrases}
    assert "Das hilft (nicht) weiter." not in germans  # "(" marks a gloss
    assert "Da ist keine Abhilfe / Hilfe." not in germans  # " / " marks alternatives
    assert not any(de.startswith("Teil") or de == "unaligned" for de in germans)  # 2 German parts, 1 English


def test_phrases_are_the_other_parts(entries):
    assert ("Haus", "house") in entries.phrases
    assert ("Aalbestände", "eel stocks") in entries.phrases
    assert ("der große Hund", "the big dog") in entries.phrases
    assert ("Hund", "dog") in entries.phrases  # "[zool.]" stripped
    assert not any("…" in de for de, _ in entries.phrases)  # templates are no phrases


def test_sentence_rule():
    assert is_sentence("Der Hund bellt.") and not is_sentence("der Hund bellt.") and not is_sentence("Hund bellt")
    assert not is_sentence("Sleeps.")
    assert strip_annotations("Aal {m} [cook.] <Ael>  blau") == "Aal blau"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RnnkitError, match="trans-de-en"):
        read_ding(tmp_path / "nope")


def test_comment_lines_are_skipped():
    assert parse_ding(["# Version :: A b c. :: x", "A b c. :: D e f."]).sentences == [("A b c.", "D e f.")]


@pytest.mark.skipif(not DING_PATH.is_file(), reason="Debian trans-de-en is not installed (make system-deps)")
def test_real_file_counts():
    entries = read_ding()
    assert len(entries.sentences) == 17_622
    assert len(entries.phrases) > 300_000
