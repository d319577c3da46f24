import pytest

from rnnkit.data import text_file
from rnnkit.errors import RnnkitError


def _write_lines(tmp_path, num_lines: int = 100):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line {i:03d} of the corpus\n" for i in range(num_lines)), encoding="utf-8")
    return path


def test_text_file_splits_into_contiguous_blocks_at_line_ends(tmp_path):
    path = _write_lines(tmp_path)
    splits = text_file(path)
    text = path.read_text(encoding="utf-8")
    assert splits.train + splits.valid + splits.test == text
    assert splits.valid.startswith("line 090 ") and splits.test.startswith("line 095 ")
    assert all(part.endswith("\n") for part in (splits.train, splits.valid, splits.test))


def test_text_file_is_deterministic_and_follows_fractions(tmp_path):
    path = _write_lines(tmp_path)
    assert text_file(path) == text_file(path)
    splits = text_file(path, valid_fraction=0.2, test_fraction=0.1)
    assert splits.valid.startswith("line 070 ") and splits.test.startswith("line 090 ")


def test_text_file_without_newlines_cuts_mid_text(tmp_path):
    path = tmp_path / "one-line.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")
    splits = text_file(path)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (90, 5, 5)


def test_text_file_of_one_long_line_is_cut_between_words(tmp_path):
    # one newline, at the very end: snapping to it would leave valid and test empty
    path = tmp_path / "one-line.txt"
    path.write_text("to be or not to be that is the question " * 400 + "\n", encoding="utf-8")
    splits = text_file(path)
    assert splits.train + splits.valid + splits.test == path.read_text(encoding="utf-8")
    assert 0.89 < len(splits.train) / 16001 < 0.91 and 0.04 < len(splits.test) / 16001 < 0.06
    for part in (splits.valid, splits.test):
        assert part[0] != " " and part.strip() and splits.train.endswith(" ")  # whole words on both sides
    # a file of a few long lines is still cut after newlines where they leave each part some text
    lines = ["word " * 897 + "word\n", "word " * 49 + "word\n", "word " * 49 + "word\n", "word word\n"]
    path.write_text("".join(lines), encoding="utf-8")
    splits = text_file(path)
    assert (splits.train, splits.valid, splits.test) == (lines[0] + lines[1], lines[2], lines[3])


@pytest.mark.parametrize(
    ("valid_fraction", "test_fraction", "message"),
    [(0.0, 0.1, "valid_fraction must be between 0 and 1"), (0.6, 0.5, "must leave some training text")],
)
def test_text_file_rejects_bad_fractions(tmp_path, valid_fraction, test_fraction, message):
    with pytest.raises(RnnkitError, match=message):
        text_file(_write_lines(tmp_path), valid_fraction=valid_fraction, test_fraction=test_fraction)


def test_text_file_too_short_to_split(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("just one line\n", encoding="utf-8")
    with pytest.raises(RnnkitError, match="too few to split"):
        text_file(path)


def test_text_file_missing(tmp_path):
    with pytest.raises(RnnkitError, match="does not exist"):
        text_file(tmp_path / "nope.txt")
