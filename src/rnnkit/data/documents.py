"""Text from local files, document by document, never the whole corpus in memory.

Reads what people keep corpora in, including the files Hugging Face ``datasets`` writes:

- plain text (``.txt``, ``.text``, ``.md``, ``.raw``): read in blocks of whole lines;
- JSON (``.jsonl``, ``.json``), text in ``text_field``: JSON lines (``Dataset.to_json``'s default), one record
  per line, or one JSON array of records (``to_json(lines=False)``, pandas' ``to_json(orient="records")``), read
  record by record as ``datasets`` reads a ``.json`` file;
- Parquet (``.parquet``; ``Dataset.to_parquet``) and Arrow (``.arrow``; the shards of ``save_to_disk``), read
  batch by batch with ``pyarrow`` (the reader ``datasets`` itself uses);
- a directory: a ``save_to_disk`` directory (its ``state.json`` lists the shards, in order), or else every
  readable file in it, sorted by name.

The ``datasets`` package itself is not needed. Each record's text ends with a newline (one is added where
it has none), so documents never run into each other and :func:`text_chunks` can cut between any two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from rnnkit.errors import RnnkitError, first_line

TEXT_SUFFIXES = (".txt", ".text", ".md", ".raw")
RECORD_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
CHUNK_CHARS = 1 << 20  # ~1 M characters per chunk: big enough for fast encoding, small next to memory
JSON_SPACE = re.compile(r"[ \t\n\r]*")  # white space as JSON has it (the json module's own pattern)


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
    elif suffix in (".jsonl", ".json") and _starts_with(path, "["):
        yield from _json_array(path, text_field)
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


def _as_document(text, where: str, text_field: str) -> str:
    # a null is one record's gap, not a wrong field: it is named by its place rather than skipped, as an empty
    # text is kept (as an empty line) rather than dropped, so every record of the input gives one document
    if text is None:
        raise RnnkitError(
            f"{where}: field {text_field!r} is null; drop or fill in the records without text "
            f"(datasets: .filter(lambda r: r[{text_field!r}] is not None))."
        )
    if not isinstance(text, str):
        kind = type(text).__name__
        raise RnnkitError(f"{where}: field {text_field!r} holds {kind}, not text; pick another --text-field.")
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
            yield _record_text(record, f"{path.name}, line {number}", text_field)


def _record_text(record, where: str, text_field: str) -> str:
    if not isinstance(record, dict) or text_field not in record:
        found = ", ".join(record) if isinstance(record, dict) else type(record).__name__
        raise RnnkitError(f"{where}: no field {text_field!r} (found {found}); pick --text-field.")
    return _as_document(record[text_field], where, text_field)


def _starts_with(path: Path, char: str) -> bool:
    with path.open("rb") as file:
        while block := file.read(1 << 16):
            if stripped := block.lstrip():
                return stripped[:1] == char.encode()
    return False


def _json_array(path: Path, text_field: str) -> Iterator[str]:
    # one array for the whole file: its records are decoded one at a time from a buffer that holds the text
    # from the current record on, so a large file is never in memory at once
    decoder = json.JSONDecoder()
    buffer, position, ended, number = "", 0, False, 0

    with path.open(encoding="utf-8") as file:

        def read_more() -> None:
            nonlocal buffer, position, ended
            try:  # doubling the read keeps a record larger than a chunk linear to decode
                more = file.read(max(CHUNK_CHARS, len(buffer) - position))
            except UnicodeDecodeError as error:
                raise RnnkitError(f"{str(path)!r} is not UTF-8 text ({error.reason}); convert it to UTF-8.") from None
            buffer, position, ended = buffer[position:] + more, 0, not more

        def next_char() -> str:  # the next character that is not white space, "" at the end of the file
            nonlocal position
            while True:
                position = JSON_SPACE.match(buffer, position).end()
                if position < len(buffer) or ended:
                    return buffer[position : position + 1]
                read_more()

        next_char()
        position += 1  # the opening "["
        if next_char() == "]":
            return
        while True:
            next_char()  # raw_decode starts at a value, not at white space
            number += 1
            where = f"{path.name}, record {number}"
            while True:
                try:
                    record, position = decoder.raw_decode(buffer, position)
                    break
                except json.JSONDecodeError as error:
                    if ended:
                        raise RnnkitError(f"{where}: not a JSON record ({error.msg}).") from None
                    read_more()  # the record may go on past the buffer
            yield _record_text(record, where, text_field)
            char = next_char()
            if char == "]":
                return
            if char != ",":
                found = repr(char) if char else "the end of the file, so the file is cut"
                raise RnnkitError(f"{where}: expected ',' or ']' after the record, found {found}.")
            position += 1


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
    row = 0
    for batch in batches:
        for text in batch.column(batch.schema.get_field_index(text_field)).to_pylist():
            row += 1
            yield _as_document(text, f"{path.name}, row {row}", text_field)
