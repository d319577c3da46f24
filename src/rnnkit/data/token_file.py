"""Token files: a corpus tokenized once into a flat array on disk, for text larger than memory.

``rnnkit data tokenize`` writes one; ``rnnkit lm train --data FILE`` trains from it. The file (little-endian)::

    b"RNNKTOK1"        8 bytes
    header size        8 bytes, unsigned
    header             JSON, space-padded so the tokens start at a multiple of 64 bytes:
                       {"format": "rnnkit-tokens", "version": 1, "dtype": "uint16", "count": N,
                        "splits": {"train": [0, a], "valid": [a, b], "test": [b, N]},
                        "tokenizer": {...its to_config()...}, "sources": [...]}
    tokens             N ids, uint16 (vocabularies up to 65,536) or uint32

so ``numpy.memmap(path, dtype, offset=16 + header size)`` opens the tokens as they are
(:attr:`TokenFile.tokens`). Writing streams: the text is read and encoded chunk by chunk and the header's
counts are filled in at the end, in the space reserved for them, so memory stays flat however big the corpus.

Validation and test are the last ``holdout`` fractions of the tokens (contiguous, as
:func:`rnnkit.data.corpora.text_file` splits a text file: a language model is judged on text it has seen no
part of). Training reads windows with positioned reads rather than through a long-lived memory map: pages of
a map that have been read count in the process' resident set until it is unmapped, so a map would grow with
the corpus while reads leave the data in the page cache only (bench/memmap.py measures it).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from rnnkit.data.text import SubwordTokenizer, Tokenizer, tokenizer_from_config
from rnnkit.errors import RnnkitError

MAGIC = b"RNNKTOK1"
ALIGN = 64
_PLACEHOLDER = 10**15  # as wide as any real count: the header is written before the counts are known


def is_token_file(path: Path | str) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return file.read(len(MAGIC)) == MAGIC


def _padded_header(header: dict, size: int | None = None) -> bytes:
    data = json.dumps(header).encode()
    size = size or math.ceil((len(data) + 16 + 64) / ALIGN) * ALIGN - 16  # tokens start at a multiple of 64
    if len(data) > size:
        raise RnnkitError("the token file's header outgrew its reserved space; this is a bug, please report it.")
    return data.ljust(size)


def holdout_splits(count: int, holdout: float) -> dict[str, list[int]]:
    """``[start, stop)`` of train, valid and test: valid and test are each the last ``holdout`` of the tokens."""
    if not 0 < holdout < 0.5:
        raise RnnkitError(f"holdout must be between 0 and 0.5 (each of valid and test), got {holdout}.")
    held = max(2, round(count * holdout))
    if count - 2 * held < 2:
        raise RnnkitError(f"the corpus has {count} tokens, too few to hold out validation and test text; give more.")
    return {"train": [0, count - 2 * held], "valid": [count - 2 * held, count - held], "test": [count - held, count]}


def write_token_file(
    path: Path | str,
    tokenizer: Tokenizer,
    chunks: Iterable[str],
    *,
    holdout: float = 0.005,
    sources: list[str] | None = None,
    quiet: bool = True,
) -> TokenFile:
    """Encode ``chunks`` (texts cut between words: :func:`rnnkit.data.documents.text_chunks`) into a token
    file at ``path``, written to a temporary name and renamed when complete."""
    path = Path(path)
    dtype = np.dtype("<u2" if tokenizer.vocab_size <= 1 << 16 else "<u4")
    header = {
        "format": "rnnkit-tokens",
        "version": 1,
        "dtype": dtype.name,
        "count": _PLACEHOLDER,
        "splits": holdout_splits(_PLACEHOLDER, holdout),
        "holdout": holdout,
        "sources": sources or [],
        "tokenizer": tokenizer.to_config(),
    }
    reserved = _padded_header(header)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        bar = tqdm(desc="tokenizing", unit=" chars", unit_scale=True, disable=True if quiet else None, leave=False)
        with temp.open("wb") as file, bar:
            file.write(MAGIC + struct.pack("<Q", len(reserved)) + reserved)
            for chunk in chunks:
                ids = np.asarray(tokenizer.encode(chunk), dtype=dtype)
                ids.tofile(file)
                count += len(ids)
                bar.update(len(chunk))
            header.update(count=count, splits=holdout_splits(count, holdout))
            file.seek(len(MAGIC) + 8)
            file.write(_padded_header(header, len(reserved)))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return TokenFile(path)


def fit_tokenizer_on_prefix(kind: str, chunks: Iterator[str], fit_chars: int, subword_vocab_size: int = 4096):
    """A tokenizer of ``kind`` fitted on the first ``fit_chars`` characters of ``chunks``; returns it and the
    chunks read (to encode them too). Characters, words or bytes it has not seen become its unknown id
    (characters, words) or byte pieces (subwords)."""
    from rnnkit.data.text import TOKENIZERS

    if kind not in TOKENIZERS:
        raise RnnkitError(f"Unknown tokenizer {kind!r}. Select from {', '.join(TOKENIZERS)}.")
    read, size = [], 0
    for chunk in chunks:
        read.append(chunk)
        size += len(chunk)
        if size >= fit_chars:
            break
    sample = "".join(read)
    if not sample:
        raise RnnkitError("the corpus holds no text; give a non-empty file.")
    if kind == "subword":
        return SubwordTokenizer.fit(sample, vocab_size=subword_vocab_size), read
    return TOKENIZERS[kind].fit(sample), read


class TokenFile:
    """A token file opened for reading: its header, its tokenizer, its splits as windows or as a memmap.

    Attributes:
        path: the token file.
        header: its JSON header, as a dict.
        offset: bytes before the first token.
    """

    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if not is_token_file(path):
            raise RnnkitError(f"{str(path)!r} is not a token file; write one with `rnnkit data tokenize`.")
        try:
            with path.open("rb") as file:
                file.seek(len(MAGIC))
                (size,) = struct.unpack("<Q", file.read(8))
                header = json.loads(file.read(size))
            expected = len(MAGIC) + 8 + size + header["count"] * np.dtype(header["dtype"]).itemsize
        except (struct.error, ValueError, KeyError, TypeError) as error:  # cut or spoilt before the tokens
            raise RnnkitError(
                f"{str(path)!r} is truncated or corrupt in its header ({error}); tokenize the corpus again."
            ) from None
        if header["count"] == _PLACEHOLDER or path.stat().st_size != expected:
            raise RnnkitError(f"{str(path)!r} is truncated or was never finished; tokenize the corpus again.")
        self.path, self.header, self.offset = path, header, len(MAGIC) + 8 + size

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.header["dtype"]).newbyteorder("<")

    @property
    def count(self) -> int:
        return self.header["count"]

    @property
    def tokenizer(self) -> Tokenizer:
        return tokenizer_from_config(self.header["tokenizer"])

    @property
    def tokens(self) -> np.memmap:
        """All ``count`` ids, memory-mapped read-only (random access; nothing is read until indexed)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(self.count,))

    def split(self, name: str) -> tuple[int, int]:
        if name not in self.header["splits"]:
            raise RnnkitError(f"Unknown split {name!r}. Select from {', '.join(self.header['splits'])}.")
        start, stop = self.header["splits"][name]
        return start, stop

    def windows(self, split: str, batch_size: int, window: int) -> TokenWindows:
        return TokenWindows(self, *self.split(split), batch_size, window)


class TokenWindows:
    """A token file's split as training data: what :class:`rnnkit.tasks.lm.TokenStream` gives for the same
    tokens (``batch_size`` contiguous rows, truncated-BPTT windows, ``y`` one step ahead), read from disk
    window by window. Memory: one ``(N, L + 1)`` buffer.

    Shapes: x, y (N, L) int64.
    """

    def __init__(self, corpus: TokenFile, start: int, stop: int, batch_size: int, window: int) -> None:
        if batch_size < 1 or window < 1:
            raise RnnkitError(f"batch_size and window must be at least 1, got {batch_size} and {window}.")
        self.steps = (stop - start) // batch_size  # T_total: tokens per row
        if self.steps < 2:
            raise RnnkitError(
                f"{stop - start} tokens give fewer than 2 steps per stream at batch_size={batch_size}; "
                "use a smaller batch_size or more text."
            )
        self.corpus, self.window = corpus, window
        self.row_starts = start + self.steps * np.arange(batch_size)  # row n: tokens [n T, (n + 1) T) of the split

    def __len__(self) -> int:
        return math.ceil((self.steps - 1) / self.window)

    def shard(self, rank: int, world_size: int) -> TokenWindows:
        """Process ``rank``'s rows when ``world_size`` processes train together (as ``TokenStream.shard``)."""
        rows = len(self.row_starts)
        if rows % world_size:
            raise RnnkitError(
                f"{rows} parallel streams (batch size) do not split evenly over {world_size} processes; "
                f"use a batch size that is a multiple of {world_size}."
            )
        part = object.__new__(TokenWindows)
        part.__dict__.update(self.__dict__, row_starts=np.array_split(self.row_starts, world_size)[rank])
        return part

    def batches(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        dtype, itemsize = self.corpus.dtype, self.corpus.dtype.itemsize
        buffer = np.empty((len(self.row_starts), self.window + 1), dtype=dtype)
        with self.corpus.path.open("rb", buffering=0) as file:
            for position in range(0, self.steps - 1, self.window):
                length = min(self.window, self.steps - 1 - position)
                for row, row_start in enumerate(self.row_starts):
                    file.seek(self.corpus.offset + (int(row_start) + position) * itemsize)
                    file.readinto(memoryview(buffer[row, : length + 1]).cast("B"))
                rows = torch.from_numpy(buffer[:, : length + 1].astype(np.int64))  # -> (N, L + 1)
                yield rows[:, :-1], rows[:, 1:]


def tokenize_corpus(
    inputs: list[Path | str],
    out: Path | str,
    *,
    tokenizer: str = "char",
    tokenizer_from: Path | str | None = None,
    text_field: str = "text",
    fit_chars: int = 20_000_000,
    holdout: float = 0.005,
    subword_vocab_size: int = 4096,
    quiet: bool = True,
) -> TokenFile:
    """Read ``inputs`` (files or directories, :func:`rnnkit.data.documents.documents`) once, streaming, into
    the token file ``out``. The tokenizer is ``tokenizer_from``'s (a run directory or a token file), or one of
    kind ``tokenizer`` fitted on the corpus' first ``fit_chars`` characters."""
    from rnnkit import checkpoint
    from rnnkit.data.documents import documents, text_chunks

    if not inputs:
        raise RnnkitError("give at least one corpus file or directory to tokenize.")
    if Path(out).is_dir():  # found before the corpus is read, not at the final rename
        raise RnnkitError(
            f"--out {out} is a directory; give the token file's name, e.g. {Path(out) / 'corpus.tokens'}."
        )
    if Path(out).exists() and any(Path(source).is_file() and Path(source).samefile(out) for source in inputs):
        # the token file is renamed over --out once the corpus is read: the corpus itself would be gone
        raise RnnkitError(f"--out {out} is one of the files to tokenize; give the token file another name.")

    def texts():
        for source in inputs:
            yield from documents(source, text_field)

    chunks = text_chunks(texts())
    if tokenizer_from is None:
        fitted, read = fit_tokenizer_on_prefix(tokenizer, chunks, fit_chars, subword_vocab_size)
        chunks = _chain(read, chunks)  # the chunks the fit read are encoded too
    elif is_token_file(tokenizer_from):
        fitted = TokenFile(tokenizer_from).tokenizer
    else:
        run_config = checkpoint.read_config(tokenizer_from)
        if "tokenizer" not in run_config:
            raise RnnkitError(
                f"{tokenizer_from} is a run of task {run_config.get('task')!r}, which has no tokenizer; "
                "give an lm or classify run directory, or a token file."
            )
        fitted = tokenizer_from_config(run_config["tokenizer"])
    sources = [str(Path(source).resolve()) for source in inputs]
    return write_token_file(out, fitted, chunks, holdout=holdout, sources=sources, quiet=quiet)


def _chain(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    while first:
        yield first.pop(0)  # dropped once encoded: the fit's sample is not held to the end
    yield from rest
