import json
import random

import pytest
import torch

from rnnkit.data import (
    CharTokenizer,
    SubwordTokenizer,
    WordTokenizer,
    batchify,
    stream_windows,
    tokenizer_from_config,
)
from rnnkit.errors import RnnkitError

TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer\n" * 3


def _fit(kind: str):
    if kind == "char":
        return CharTokenizer.fit(TEXT)
    if kind == "word":
        return WordTokenizer.fit(TEXT)
    return SubwordTokenizer.fit(TEXT, vocab_size=300)


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_config_round_trip_gives_identical_ids(kind):
    tokenizer = _fit(kind)
    config = json.loads(json.dumps(tokenizer.to_config()))  # exactly what config.json will hold
    rebuilt = tokenizer_from_config(config)
    probe = TEXT + "Unseen words: Ωmega!\n"
    assert type(rebuilt) is type(tokenizer) and rebuilt.vocab_size == tokenizer.vocab_size
    assert rebuilt.encode(probe) == tokenizer.encode(probe)


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_encode_decode_round_trip(kind):
    tokenizer = _fit(kind)
    ids = tokenizer.encode(TEXT)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == TEXT


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_fit_is_deterministic(kind):
    assert _fit(kind).to_config() == _fit(kind).to_config()


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_decode_rejects_ids_outside_the_vocabulary(kind):
    tokenizer = _fit(kind)
    with pytest.raises(RnnkitError, match=f"token id {tokenizer.vocab_size} is outside the vocabulary"):
        tokenizer.decode([0, tokenizer.vocab_size])


def test_char_unknown_characters_map_to_id_zero():
    tokenizer = CharTokenizer.fit("abca")
    assert tokenizer.chars == ("a", "b", "c") and tokenizer.vocab_size == 4
    assert tokenizer.encode("abz") == [1, 2, 0]
    assert tokenizer.decode([1, 0]) == "a\ufffd"


def test_word_vocabulary_orders_by_count_then_first_appearance():
    tokenizer = WordTokenizer.fit("b a c a\nc d\n")
    assert tokenizer.vocab == ("<unk>", "<eos>", "a", "c", "b", "d")
    assert tokenizer.encode("a zebra d\nb") == [2, 0, 5, 1, 4]
    assert tokenizer.decode([2, 0, 5, 1, 4]) == "a <unk> d\nb"


def test_word_eos_marks_each_newline():
    tokenizer = WordTokenizer.fit("x y\n")
    assert tokenizer.encode("x  y \n\n") == [2, 3, 1, 1]
    assert tokenizer.encode("") == []


def test_word_min_count_and_max_size():
    text = "a a a b b c <unk> <unk>\n"
    assert WordTokenizer.fit(text, min_count=2).words == ("a", "b")  # <unk> in the text is the special
    assert WordTokenizer.fit(text, max_size=3).words == ("a",)
    with pytest.raises(RnnkitError, match="min_count must be at least 1, got 0"):
        WordTokenizer.fit(text, min_count=0)
    with pytest.raises(RnnkitError, match="max_size must leave room"):
        WordTokenizer.fit(text, max_size=2)


def test_subword_never_has_unknowns():
    tokenizer = SubwordTokenizer.fit(TEXT, vocab_size=300)
    unseen = "Ünïcödé 漢字 \t🎉\r\n"
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen


def test_subword_parallel_encode_equals_one_piece():
    # encode() cuts the text at newlines to encode in parallel; it must equal encoding the text whole.
    tokenizer = SubwordTokenizer.fit(TEXT, vocab_size=300)
    rng = random.Random(0)
    pieces = ["to", "be", "'s", " ", "  ", "\n", "\n\n", "\t", ".", "1", "é", " \n", "\n ", "\n  "]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        assert tokenizer.encode(text) == tokenizer.tokenizer.encode(text).ids, repr(text)


def test_tokenizer_from_config_rejects_unknown_kind():
    with pytest.raises(RnnkitError, match="unknown tokenizer kind 'bpe'; select from"):
        tokenizer_from_config({"kind": "bpe"})


def test_batchify_makes_parallel_contiguous_streams():
    batched = batchify(list(range(23)), batch_size=3)
    assert batched.dtype == torch.long and batched.shape == (3, 7)
    assert batched[1].tolist() == list(range(7, 14))  # row n continues where row n-1's slice ends


@pytest.mark.parametrize(("num_tokens", "batch_size"), [(5, 3), (10, 0)])
def test_batchify_rejects_too_few_tokens_or_bad_batch_size(num_tokens, batch_size):
    with pytest.raises(RnnkitError, match="batch_size"):
        batchify(list(range(num_tokens)), batch_size=batch_size)


@pytest.mark.parametrize("window", [1, 4, 6, 100])
def test_windows_tile_the_stream_exactly(window):
    batched = batchify(torch.arange(3 * 21), batch_size=3)  # (3, 21)
    windows = list(stream_windows(batched, window))
    assert all(x.shape == y.shape and x.size(0) == 3 for x, y in windows)
    assert all(x.size(1) == window for x, _ in windows[:-1]) and 1 <= windows[-1][0].size(1) <= window
    torch.testing.assert_close(torch.cat([x for x, _ in windows], dim=1), batched[:, :-1])
    torch.testing.assert_close(torch.cat([y for _, y in windows], dim=1), batched[:, 1:])


def test_windows_resume_from_a_saved_position():
    batched = batchify(torch.arange(2 * 30), batch_size=2)
    full = list(stream_windows(batched, window=7))
    position = sum(x.size(1) for x, _ in full[:2])  # what a trainer saves after two windows
    resumed = list(stream_windows(batched, window=7, start=position))
    assert len(resumed) == len(full) - 2
    for (x, y), (x_full, y_full) in zip(resumed, full[2:], strict=True):
        assert torch.equal(x, x_full) and torch.equal(y, y_full)
    assert list(stream_windows(batched, window=7, start=batched.size(1) - 1)) == []  # saved at the end


@pytest.mark.parametrize(
    ("shape", "window", "start", "message"),
    [((10,), 2, 0, r"must be \(N, T_total\)"), ((2, 10), 0, 0, "window must be"), ((2, 10), 2, 10, "start")],
)
def test_windows_reject_bad_arguments(shape, window, start, message):
    with pytest.raises(RnnkitError, match=message):
        next(stream_windows(torch.zeros(shape, dtype=torch.long), window, start))
