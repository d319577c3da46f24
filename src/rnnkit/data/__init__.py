"""Raw data to tensors: sources (PyPI archives, text files), text corpora, tokenisers, stream batching.

Language modelling in a few lines::

    from rnnkit.data import CharTokenizer, batchify, shakespeare, stream_windows

    splits = shakespeare()                       # .train / .valid / .test strings
    tokenizer = CharTokenizer.fit(splits.train)
    train = batchify(tokenizer.encode(splits.train), batch_size=32)   # (N, T_total)
    for x, y in stream_windows(train, window=128):                    # (N, L) each
        ...
"""

from rnnkit.data.corpora import TextSplits, text_file
from rnnkit.data.plays import Shakespeare, play_to_text, shakespeare
from rnnkit.data.sources import PypiArchive, cache_dir, fetch_archive, read_member, read_text_file
from rnnkit.data.text import (
    CharTokenizer,
    SubwordTokenizer,
    Tokenizer,
    WordTokenizer,
    batchify,
    stream_windows,
    tokenizer_from_config,
)
from rnnkit.data.wikitext import replace_rare_tokens, wikitext2

__all__ = [
    "CharTokenizer",
    "PypiArchive",
    "Shakespeare",
    "SubwordTokenizer",
    "TextSplits",
    "Tokenizer",
    "WordTokenizer",
    "batchify",
    "cache_dir",
    "fetch_archive",
    "play_to_text",
    "read_member",
    "read_text_file",
    "replace_rare_tokens",
    "shakespeare",
    "stream_windows",
    "text_file",
    "tokenizer_from_config",
    "wikitext2",
]
