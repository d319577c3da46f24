"""Sentence pairs: TSV reading with clear errors, the German-side hash split, subword vocabularies."""

import pytest

from rnnkit.data.debian import DING_PATH
from rnnkit.data.pairs import load_pairs, read_tsv, split_by_hash
from rnnkit.data.sentiment import hash_bucket
from rnnkit.data.subwords import BOS, EOS, PAD, SubwordVocabulary
from rnnkit.errors import RnnkitError


def test_tsv_reads_source_and_target(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("\ufeffHallo Welt.\tHello world.\nDanke.\tThanks.\n", encoding="utf-8")
    pairs = read_tsv(path)
    assert pairs.sources == ["Hallo Welt.", "Danke."] and pairs.targets == ["Hello world.", "Thanks."]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a\tb\nc\td\te\n", "line 2 has 3 tab-separated columns"),
        (b"a\tb\n\nc\td\n", "line 2 is empty"),
        (b"a\tb\nno tab here\n", "line 2 has 1 tab-separated columns"),
        (b"a\t \n", "line 1 has an empty target"),
        (b"a\tb\n\xff\xfe\tx\n", "line 2 is not UTF-8"),
        (b"", "has no lines"),
    ],
)
def test_tsv_mistakes_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(RnnkitError, match=message):
        read_tsv(path)


def test_split_is_by_hash_of_the_key_and_disjoint():
    keys = [f"Satz Nummer {i}." for i in range(2000)]
    train, valid, test = split_by_hash(keys, keys, [k.upper() for k in keys])
    assert len(train) + len(valid) + len(test) == 2000
    assert all(hash_bucket(k) < 5 for k in test.sources)
    assert all(5 <= hash_bucket(k) < 10 for k in valid.sources)
    assert 50 < len(test) < 150  # about 5%
    assert test.targets == [k.upper() for k in test.sources]


@pytest.mark.skipif(not DING_PATH.is_file(), reason="Debian trans-de-en is not installed (make system-deps)")
def test_both_directions_test_on_the_same_pairs():
    de_en, en_de = load_pairs("ding-de-en", "de-en"), load_pairs("ding-de-en", "en-de")
    assert de_en.test.sources == en_de.test.targets and de_en.test.targets == en_de.test.sources
    assert len(de_en.test) == 822 and len(de_en.valid) == 908


def test_unknown_direction_and_data_are_refused(tmp_path):
    with pytest.raises(RnnkitError, match="Unknown direction"):
        load_pairs("ding-de-en", "de-fr")
    with pytest.raises(RnnkitError, match="Unknown pairs"):
        load_pairs("ding-de-fr", "de-en")


def test_subwords_round_trip_any_text_and_reserve_special_ids():
    vocabulary = SubwordVocabulary.fit(["Das Haus ist alt.", "The house is old."] * 20, vocab_size=300)
    text = "Grüße aus Köln, 😀 ça va?"  # characters never seen in training still encode (bytes)
    ids = vocabulary.encode(text)
    assert min(ids) > max(PAD, BOS, EOS)
    assert vocabulary.decode(ids) == text
    assert vocabulary.decode([BOS, *ids, EOS, *ids]) == text  # stops at <eos>
    again = SubwordVocabulary.from_config(vocabulary.to_config())
    assert again.encode(text) == ids and again.vocab_size == vocabulary.vocab_size


def test_subword_pieces_read_as_the_text_they_hold():
    """Attention plots label their axes with these: umlauts as umlauts, not as the bytes' stand-in characters."""
    vocabulary = SubwordVocabulary.fit(["Der Hund ist groß und müde.", "Grüße aus Köln."] * 20, vocab_size=300)
    ids = vocabulary.encode("Grüße, groß und müde!")
    pieces = vocabulary.pieces([BOS, *ids, EOS])
    assert pieces[0] == "<bos>" and pieces[-1] == "<eos>"
    assert "".join(pieces[1:-1]).replace("Ġ", " ") == "Grüße, groß und müde!"  # Ġ: a leading space
    assert "Ġgroß" in pieces and not any("Ã" in piece for piece in pieces)
    assert vocabulary.pieces(vocabulary.encode("😀"))[0] == "�"  # a piece of a character's bytes


def test_a_file_too_small_to_fill_every_split_says_so(tmp_path):
    path = tmp_path / "two.tsv"
    path.write_text("a b\tc d\ne f\tg h\n", encoding="utf-8")
    with pytest.raises(RnnkitError, match=r"has 2 pair\(s\) and none falls in the (training|validation|test) split"):
        load_pairs(str(path))
