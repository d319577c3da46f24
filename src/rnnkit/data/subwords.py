"""Subword vocabularies for translation: byte-level BPE (:class:`rnnkit.data.text.SubwordTokenizer`) plus
the three ids a sequence-to-sequence model needs.

Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``; BPE token ``i`` is id ``i + 3``. Byte-level BPE has no unknown
token: any character (accents, emoji, other scripts) encodes to bytes, so a word never seen in training still
reaches the model, as rare subwords. ``decode`` gives detokenised text (the exact round trip of the bytes), the
form sacrebleu scores.

A **shared** vocabulary (one BPE model trained on both languages) lets German and English share the pieces
they share (names, numbers, cognates); **separate** ones give each language the whole budget. Small
vocabularies (2-4k) suit small data (Sennrich & Zhang 2019).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rnnkit.data.text import SubwordTokenizer
from rnnkit.errors import RnnkitError

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class SubwordVocabulary:
    """``encode(text) -> ids`` (no ``<bos>``/``<eos>``), ``decode(ids) -> text`` (stops at ``<eos>``, skips
    ``<pad>``/``<bos>``), ``vocab_size`` including the three special ids, ``to_config``/``from_config``."""

    def __init__(self, tokenizer: SubwordTokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int = 4000) -> SubwordVocabulary:
        """Train BPE on ``texts`` (one sentence a line) up to ``vocab_size`` ids in all."""
        if vocab_size < 256 + NUM_SPECIAL:
            raise RnnkitError(f"vocab_size must be at least {256 + NUM_SPECIAL} (bytes + specials), got {vocab_size}.")
        return cls(SubwordTokenizer.fit("\n".join(texts), vocab_size=vocab_size - NUM_SPECIAL))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size + NUM_SPECIAL

    def encode(self, text: str) -> list[int]:
        return [i + NUM_SPECIAL for i in self.tokenizer.encode(text)]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        encodings = self.tokenizer.tokenizer.encode_batch(texts)
        return [[i + NUM_SPECIAL for i in encoding.ids] for encoding in encodings]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= NUM_SPECIAL:
                pieces.append(i - NUM_SPECIAL)
        # an undertrained model can emit any bytes: control characters (a newline would break line-by-line
        # output) become spaces
        return _CONTROL.sub(" ", self.tokenizer.decode(pieces)).strip()

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """Readable token strings (for attention plots): each piece's own characters, ``Ġ`` marking a leading
        space; a piece that holds only some of a character's bytes shows as ``�``."""
        names = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>"}
        # decoded one by one: the raw tokens spell each byte as a character, so "groß" would read "groÃŁ"
        decode = self.tokenizer.tokenizer.decode
        pieces = []
        for i in map(int, ids):
            piece = names.get(i) or decode([i - NUM_SPECIAL])
            pieces.append("Ġ" + piece[1:] if piece.startswith(" ") else piece)
        return [_CONTROL.sub("?", piece) for piece in pieces]

    def to_config(self) -> dict[str, Any]:
        return {"kind": "translation-subwords", "subwords": self.tokenizer.to_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SubwordVocabulary:
        return cls(SubwordTokenizer.from_config(config["subwords"]))
