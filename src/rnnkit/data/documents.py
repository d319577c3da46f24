"""Text from local files, document by document, never the whole corpus in memory.

Reads what people keep corpora in, including the files Hugging Face ``datasets`` writes:

- plain text (``.txt``, ``.text``, ``.md``, ``.raw``): read in blocks of whole lines;
- JSON lines (``.jsonl``, ``.json``; ``Dataset.to_json``'s default): one record per line, text in ``text_field``;
- Parquet (``.parquet``; ``Dataset.to_parquet``) and Arrow (``.arrow``; the shards of ``save_to_disk``), read
  batch by batch with ``pyarrow`` (the reader ``datasets`` itself uses);
- a directory: a ``save_to_disk`` directory (its ``state.json`` lists the shards, in order), or else every
  readable file in it, sorted by name.

The ``datasets`` package itself is not needed. Each record's text ends with a newline (one is added where
it has none), so documents never run into each other and :func:`text_chunks` can cut between any two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from rnnkit.errors import RnnkitError, first_line

TEXT_SUFFIXES = (".txt", ".text", ".md", ".raw")
RECORD_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
CHUNK_CHARS = 1 << 20  # ~1 M characters per chunk: big enough for fast encoding, small next to memory


def documents(path: Path | str, text_field: str = "text") -> Iterator[str]:
    """The texts in ``path`` (a file or a directory, see the module docstring), each ending with ``\\n``."""
    path = Path(path)
    if path.is_dir():
        for file in _directory_files(path):
            yield from documents(file, text_field)
        return
    if not path.is_file():
        raise RnnkitError(f"{str(path)!r} is neither a file nor a directory; give a corpus file or directory.")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        yield from _text_blocks(path)
    elif suffix in (".jsonl", ".json"):
        yield from _json_lines(path, text_field)
    elif suffix in (".parquet", ".arrow"):
        yield from _arrow_records(path, text_field)
    else:
        known = ", ".join(TEXT_SUFFIXES + RECORD_SUFFIXES)
        raise RnnkitError(f"cannot read {path.name!r}: unknown kind of file; give one of {known}, or a directory.")


def text_chunks(texts: Iterable[str], chunk_chars: int = CHUNK_CHARS) -> Iterator[str]:
    """Texts joined into chunks of about ``chunk_chars`` characters, cut only between texts."""
    parts, size = [], 0
    for text in texts:
        parts.append(text)
        size += len(text)
        if size >= chunk_chars:
            yield "".join(parts)
            parts, size = [], 0
    if parts:
        yield "".join(parts)


def _directory_files(directory: Path) -> list[Path]:
    state = directory / "state.json"
    if state.is_file():  # datasets' save_to_disk: the Arrow shards in their order
        try:
            return [directory / entry["filename"] for entry in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError) as error:  # not JSON, or not the list save_to_disk writes
            raise RnnkitError(
                f"{state} does not list the Arrow shards as save_to_disk writes them ({first_line(error)}); "
                "save the dataset again, or give its .arrow files."
            ) from None
    readable = TEXT_SUFFIXES + RECORD_SUFFIXES
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in readable)
    if not files:
        raise RnnkitError(f"directory {str(directory)!r} holds no text, JSON lines, Parquet or Arrow files.")
    return files


def _text_blocks(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as file:
        try:
            while block := file.read(CHUNK_CHARS):
                # finish the line the block stopped in, so no chunk ends inside a word
                block += file.readline() if not block.endswith("\n") else ""
                yield block if block.endswith("\n") else block + "\n"  # the file's last line too
        except UnicodeDecodeError as error:
            raise RnnkitError(f"{str(path)!r} is not UTF-8 text ({error.reason}); convert it to UTF-8.") from None


def _as_document(text, path: Path, text_field: str) -> str:
    if not isinstance(text, str):
        kind = type(text).__name__
        raise RnnkitError(f"{path.name}: field {text_field!r} holds {kind}, not text; pick another --text-field.")
    return text if text.endswith("\n") else text + "\n"


def _json_lines(path: Path, text_field: str) -> Iterator[str]:
    # bytes, decoded line by line: a line that is not UTF-8 is then named by its number
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise RnnkitError(
                    f"{path.name}, line {number}: not UTF-8 ({error.reason}); convert it to UTF-8."
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise RnnkitError(f"{path.name}, line {number}: not a JSON record ({error.msg}).") from None
            if not isinstance(record, dict) or text_field not in record:
                found = ", ".join(record) if isinstance(record, dict) else type(record).__name__
                message = f"{path.name}, line {number}: no field {text_field!r} (found {found}); pick --text-field."
                raise RnnkitError(message)
            yield _as_document(record[text_field], path, text_field)


def _arrow_records(path: Path, text_field: str) -> Iterator[str]:
    try:
        import pyarrow as pa
    except ImportError:
        raise RnnkitError(f"reading {path.name} needs pyarrow: pip install pyarrow (or give JSON lines).") from None
    try:
        yield from _arrow_texts(path, text_field)
    except (pa.ArrowException, OSError) as error:  # pyarrow's word for a cut or foreign file, as one line
        kind = "Parquet" if path.suffix.lower() == ".parquet" else "Arrow"
        raise RnnkitError(
            f"cannot read {path.name} as {kind} ({first_line(error)}); the file is truncated or corrupt."
        ) from None


def _arrow_texts(path: Path, text_field: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        source = pq.ParquetFile(path)
        names = source.schema_arrow.names
        batches = source.iter_batches(batch_size=1024, columns=[text_field]) if text_field in names else None
    else:
        stream = pa.memory_map(str(path))
        try:  # save_to_disk writes the Arrow stream format; the file format is read too
            source = pa.ipc.open_stream(stream)
            batches = iter(source)
        except pa.ArrowInvalid:
            source = pa.ipc.open_file(stream)
            batches = (source.get_batch(i) for i in range(source.num_record_batches))
        names = source.schema.names
    if text_field not in names:
        raise RnnkitError(f"{path.name} has no column {text_field!r} (found {', '.join(names)}); pick --text-field.")
    for batch in batches:
        for text in batch.column(batch.schema.get_field_index(text_field)).to_pylist():
            yield _as_document(text, path, text_field)
