"""Token files: streamed writing, the header, windows equal to the in-memory stream's, datasets' files."""

import json
import struct

import numpy as np
import pytest
import torch

from rnnkit import RnnkitError
from rnnkit.data.documents import documents, text_chunks
from rnnkit.data.text import CharTokenizer, WordTokenizer
from rnnkit.data.token_file import MAGIC, TokenFile, fit_tokenizer_on_prefix, tokenize_corpus, write_token_file
from rnnkit.tasks.lm import TokenStream

LINES = [f"line {i} of the quick brown fox, {'ab' * (i % 7)}\n" for i in range(400)]
TEXT = "".join(LINES)


def test_chunked_writing_stores_the_ids_of_the_whole_text_with_its_header(tmp_path):
    tokenizer = WordTokenizer.fit(TEXT)
    corpus = write_token_file(tmp_path / "c.tokens", tokenizer, text_chunks(LINES, chunk_chars=500), holdout=0.05)
    expected = tokenizer.encode(TEXT)
    assert corpus.count == len(expected) and corpus.tokens.tolist() == expected
    assert corpus.header["dtype"] == "uint16" and corpus.tokenizer.to_config() == tokenizer.to_config()
    (start, stop), (valid_start, valid_stop) = corpus.split("train"), corpus.split("valid")
    assert start == 0 and stop == valid_start and corpus.split("test") == (valid_stop, len(expected))
    assert valid_stop - valid_start == round(0.05 * len(expected))
    assert corpus.offset % 64 == 0
    with (tmp_path / "c.tokens").open("rb") as file:
        assert file.read(8) == MAGIC
        (size,) = struct.unpack("<Q", file.read(8))
        assert json.loads(file.read(size))["count"] == len(expected)  # plain JSON, padded with spaces


@pytest.mark.parametrize(("batch_size", "window"), [(4, 7), (3, 50)])
def test_windows_read_from_disk_equal_the_in_memory_stream(tmp_path, batch_size, window):
    tokenizer = CharTokenizer.fit(TEXT)
    corpus = write_token_file(tmp_path / "c.tokens", tokenizer, [TEXT], holdout=0.01)
    start, stop = corpus.split("train")
    disk = corpus.windows("train", batch_size, window)
    memory = TokenStream(torch.tensor(tokenizer.encode(TEXT)[start:stop]), batch_size, window)
    assert len(disk) == len(memory)
    for (x, y), (x_ref, y_ref) in zip(disk.batches(0), memory.batches(0), strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and x.dtype == torch.long
    if batch_size % 2 == 0:
        halves = [list(disk.shard(rank, 2).batches(0)) for rank in range(2)]
        for (x0, _), (x1, _), (x, _) in zip(*halves, memory.batches(0), strict=True):
            assert torch.equal(torch.cat([x0, x1]), x)  # two processes' rows make the global batch


def test_a_truncated_or_foreign_file_is_refused(tmp_path):
    corpus = write_token_file(tmp_path / "c.tokens", CharTokenizer.fit(TEXT), [TEXT])
    data = corpus.path.read_bytes()
    (tmp_path / "cut.tokens").write_bytes(data[:-3])
    with pytest.raises(RnnkitError, match="truncated"):
        TokenFile(tmp_path / "cut.tokens")
    with pytest.raises(RnnkitError, match="not a token file"):
        TokenFile(tmp_path / "nothing.txt")
    # cut inside the size field or the JSON header, or a header that is no longer JSON: refused, not a traceback
    spoilt = data[:16] + b"[" + data[17:]  # the header's opening brace
    for name, content in (("size.tokens", data[:12]), ("header.tokens", data[:100]), ("json.tokens", spoilt)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(RnnkitError, match="truncated or corrupt"):
            TokenFile(tmp_path / name)


def test_jsonl_and_text_inputs_stream_as_newline_ended_documents(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(["x y", "z\n"])))
    (tmp_path / "b.txt").write_text("last line without newline")
    assert list(documents(tmp_path)) == ["x y\n", "z\n", "last line without newline\n"]
    with pytest.raises(RnnkitError, match="no field 'body'"):
        list(documents(tmp_path / "a.jsonl", "body"))
    with pytest.raises(RnnkitError, match="unknown kind of file"):
        (tmp_path / "c.csv").write_text("x")
        list(documents(tmp_path / "c.csv"))


def test_a_json_array_of_records_is_read_as_its_records(tmp_path, monkeypatch):
    # what Dataset.to_json(lines=False) and pandas' to_json(orient="records") write, also pretty-printed
    records = [{"text": t, "id": i} for i, t in enumerate(["x y", "z\n", "long " * 50])]
    (tmp_path / "flat.json").write_text(json.dumps(records))
    (tmp_path / "pretty.json").write_text(json.dumps(records, indent=2))
    monkeypatch.setattr("rnnkit.data.documents.CHUNK_CHARS", 7)  # records cut across reads
    for name in ("flat.json", "pretty.json"):
        assert list(documents(tmp_path / name)) == ["x y\n", "z\n", "long " * 50 + "\n"]
    (tmp_path / "empty.json").write_text(" [ ]\n")
    assert list(documents(tmp_path / "empty.json")) == []
    with pytest.raises(RnnkitError, match="record 1: no field 'body'"):
        list(documents(tmp_path / "flat.json", "body"))
    (tmp_path / "cut.json").write_text(json.dumps(records)[:-30])
    with pytest.raises(RnnkitError, match="record 3: not a JSON record"):
        list(documents(tmp_path / "cut.json"))
    (tmp_path / "unclosed.json").write_text(json.dumps(records)[:-1])
    with pytest.raises(RnnkitError, match="record 3: expected ',' or ']' after the record, found the end of the file"):
        list(documents(tmp_path / "unclosed.json"))


def test_a_null_text_is_refused_by_its_record_not_blamed_on_the_field(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n{"text": null}\n')
    (tmp_path / "b.json").write_text('[{"text": "x"}, {"text": ""}, {"text": null}]')
    for name, where in (("a.jsonl", "line 2"), ("b.json", "record 3")):
        with pytest.raises(RnnkitError, match=f"{name}, {where}: field 'text' is null; drop or fill in") as error:
            list(documents(tmp_path / name))
        assert "--text-field" not in str(error.value)
    (tmp_path / "c.json").write_text('[{"text": "x"}, {"text": ""}]')
    assert list(documents(tmp_path / "c.json")) == ["x\n", "\n"]  # an empty text is kept, as an empty line
    pa = pytest.importorskip("pyarrow", reason="pyarrow reads Parquet and Arrow (datasets' own reader)")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["x", "y", None]}), tmp_path / "d.parquet", row_group_size=2)
    with pytest.raises(RnnkitError, match="parquet, row 3: field 'text' is null"):
        list(documents(tmp_path / "d.parquet"))


def test_json_lines_that_are_not_utf8_are_refused_in_one_line(tmp_path):
    (tmp_path / "latin.jsonl").write_bytes('{"text": "café"}\n'.encode("latin-1"))
    with pytest.raises(RnnkitError, match="not UTF-8"):
        list(documents(tmp_path / "latin.jsonl"))


def test_parquet_and_a_save_to_disk_directory_are_read(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow reads Parquet and Arrow (datasets' own reader)")
    import pyarrow.parquet as pq

    table = pa.table({"text": ["first doc", "second doc\n"], "label": [0, 1]})
    pq.write_table(table, tmp_path / "train.parquet")
    assert list(documents(tmp_path / "train.parquet")) == ["first doc\n", "second doc\n"]
    # save_to_disk: Arrow stream shards listed in state.json
    saved = tmp_path / "saved"
    saved.mkdir()
    for shard, rows in (
        ("data-00000-of-00002.arrow", table.slice(0, 1)),
        ("data-00001-of-00002.arrow", table.slice(1)),
    ):
        with pa.OSFile(str(saved / shard), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(rows)
    state = {"_data_files": [{"filename": "data-00000-of-00002.arrow"}, {"filename": "data-00001-of-00002.arrow"}]}
    (saved / "state.json").write_text(json.dumps(state))
    assert list(documents(saved)) == ["first doc\n", "second doc\n"]
    corpus = tokenize_corpus([saved], tmp_path / "s.tokens", tokenizer="char", holdout=0.1)
    assert corpus.tokenizer.decode(corpus.tokens.tolist()) == "first doc\nsecond doc\n"


@pytest.mark.parametrize("state", ["{cut", '{"splits": []}', '{"_data_files": ["data.arrow"]}'])
def test_a_save_to_disk_directory_with_an_unreadable_state_json_is_refused(tmp_path, state):
    (tmp_path / "state.json").write_text(state)
    with pytest.raises(RnnkitError, match="does not list the Arrow shards"):
        list(documents(tmp_path))


def test_a_cut_or_foreign_parquet_or_arrow_file_is_refused_in_one_line(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow reads Parquet and Arrow (datasets' own reader)")
    import pyarrow.parquet as pq

    table = pa.table({"text": [f"document number {i} " * 20 for i in range(200)]})
    pq.write_table(table, tmp_path / "whole.parquet")
    with pa.OSFile(str(tmp_path / "whole.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    for suffix, kind in ((".parquet", "Parquet"), (".arrow", "Arrow")):
        data = (tmp_path / f"whole{suffix}").read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
        (tmp_path / f"foreign{suffix}").write_bytes(b"not a table at all")
        for name in ("cut", "foreign"):
            with pytest.raises(RnnkitError, match=f"cannot read {name}{suffix} as {kind}"):
                list(documents(tmp_path / f"{name}{suffix}"))


def test_a_tokenizer_fitted_on_the_start_maps_later_unseen_characters_to_unknown(tmp_path):
    chunks = iter(["abab\n", "abc\n", "never read\n"])
    tokenizer, read = fit_tokenizer_on_prefix("char", chunks, fit_chars=5)
    assert tokenizer.chars == ("\n", "a", "b") and read == ["abab\n"] and next(chunks) == "abc\n"
    (tmp_path / "a.txt").write_text("abab\n" * 10)
    corpus = tokenize_corpus([tmp_path / "a.txt"], tmp_path / "a.tokens", holdout=0.1)
    (tmp_path / "b.txt").write_text("cab\n" * 20)
    reused = tokenize_corpus([tmp_path / "b.txt"], tmp_path / "b.tokens", tokenizer_from=corpus.path, holdout=0.1)
    assert np.asarray(reused.tokens[:4]).tolist() == [0, 2, 3, 1]  # c is unknown: id 0


def test_out_naming_an_input_file_is_refused_and_the_corpus_kept(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT)
    with pytest.raises(RnnkitError, match="is one of the files to tokenize"):
        tokenize_corpus([tmp_path / "a.txt"], tmp_path / "." / "a.txt", holdout=0.1)
    assert (tmp_path / "a.txt").read_text() == TEXT


@pytest.mark.parametrize("task", ["asr", "forecast"])
def test_a_run_without_a_tokenizer_is_refused_by_name_of_its_task(tmp_path, task):
    from rnnkit import checkpoint

    run = tmp_path / "run"
    run.mkdir()
    checkpoint.write_json(run / checkpoint.CONFIG_FILE, {"format": checkpoint.FORMAT_VERSION, "task": task})
    (tmp_path / "a.txt").write_text("abab\n" * 10)
    with pytest.raises(RnnkitError, match=f"is a run of task {task!r}, which has no tokenizer"):
        tokenize_corpus([tmp_path / "a.txt"], tmp_path / "a.tokens", tokenizer_from=run, holdout=0.1)
    assert not (tmp_path / "a.tokens").exists()
