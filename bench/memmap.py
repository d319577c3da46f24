"""Peak memory of a language model trained from a token file, at 10 MB and 100 MB of text.

For each size: assemble a corpus of that many bytes from text on this machine (Debian ``fortunes`` and the
Ding German-English dictionary, cycled), then measure the peak resident set (``ru_maxrss`` of each child
process, from ``os.wait4``) of

* ``rnnkit data tokenize`` (streaming, char tokenizer) into a token file;
* ``rnnkit lm train --data FILE.tokens`` for the same wall-clock budget (a char LSTM, 1 x 256);
* for contrast, loading the same text the in-memory way (``text_file`` + ``encode`` + ``TokenStream``);
* one pass over the training split read through :class:`TokenWindows` against the same windows sliced from a
  long-lived ``numpy.memmap`` (its pages that were read stay resident).

Writes bench/results/memmap.json. Usage: python bench/memmap.py [--sizes 10 100] [--minutes 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from itertools import cycle
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe, merge_results

RESULTS = Path(__file__).parent / "results" / "memmap.json"
SOURCES = [Path("/usr/share/trans/de-en"), *sorted(Path("/usr/share/games/fortunes").glob("*"))]
MB = 1_000_000


def assemble(path: Path, size: int) -> None:
    """``size`` bytes of UTF-8 text, whole lines, cycling through the local sources."""
    sources = [p for p in SOURCES if p.is_file() and not p.suffix and p.stat().st_size > 10_000]
    if not sources:
        raise SystemExit("needs Debian trans-de-en or fortunes for text (make system-deps)")
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for source in cycle(sources):
            with source.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    if line.startswith("#"):
                        continue
                    out.write(line)
                    written += len(line.encode("utf-8"))
                    if written >= size:
                        return


def peak_rss_mb(command: list[str]) -> tuple[float, dict]:
    """Run ``command``; its peak resident set in MB and its JSON output."""
    # RNNKIT_NO_NATIVE: a plain LSTM runs torch's own loop either way; this skips waiting on a native build
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "RNNKIT_NO_NATIVE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with {process.returncode}")
    return round(usage.ru_maxrss / 1024, 1), json.loads(output or b"{}")


IN_MEMORY = """
import json, resource, sys
from rnnkit.data.corpora import text_file
from rnnkit.data.text import CharTokenizer
from rnnkit.tasks.lm import TokenStream
splits = text_file(sys.argv[1])
tokenizer = CharTokenizer.fit(splits.train)
stream = TokenStream(tokenizer.encode(splits.train), 32, 128)
print(json.dumps({"tokens": stream.batched.numel()}))
"""

READ_PASS = """
import json, resource, sys, time
import numpy as np
from rnnkit.data.token_file import TokenFile
corpus, how = TokenFile(sys.argv[1]), sys.argv[2]
windows = corpus.windows("train", 32, 128)
start, total = time.perf_counter(), 0
if how == "reads":
    for x, _ in windows.batches(0):
        total += x.numel()
else:  # the same windows sliced from a memmap kept open for the pass
    rows = corpus.tokens[: windows.steps * 32].reshape(32, windows.steps)
    for position in range(0, windows.steps - 1, 128):
        total += np.asarray(rows[:, position : position + 128], dtype=np.int64).size
print(json.dumps({"tokens": total, "seconds": round(time.perf_counter() - start, 1)}))
"""


def measure(size_mb: int, minutes: float, work: Path) -> dict:
    text, tokens = work / f"corpus-{size_mb}mb.txt", work / f"corpus-{size_mb}mb.tokens"
    assemble(text, size_mb * MB)
    python = [sys.executable, "-m", "rnnkit"]
    tokenize_rss, report = peak_rss_mb(
        [*python, "data", "tokenize", str(text), "--out", str(tokens), "--holdout", "0.0005", "--quiet", "--json"]
    )
    train = [*python, "lm", "train", "--data", str(tokens), "--out", str(work / f"run-{size_mb}"), "--layers", "1",
             "--hidden-size", "256", "--embedding-size", "64", "--no-tie", "--batch-size", "32", "--window", "128",
             "--max-minutes", str(minutes), "--epochs", "1", "--quiet", "--json"]  # fmt: skip
    train_rss, trained = peak_rss_mb(train)
    memory_rss, _ = peak_rss_mb([sys.executable, "-c", IN_MEMORY, str(text)])
    reads_rss, reads = peak_rss_mb([sys.executable, "-c", READ_PASS, str(tokens), "reads"])
    memmap_rss, mapped = peak_rss_mb([sys.executable, "-c", READ_PASS, str(tokens), "memmap"])
    return {
        "text_bytes": text.stat().st_size,
        "tokens": report["n"],
        "token_file_bytes": tokens.stat().st_size,
        "vocab_size": report["vocab_size"],
        "tokenize": {"peak_rss_mb": tokenize_rss, "seconds": report["seconds"]},
        "train": {
            "peak_rss_mb": train_rss,
            "minutes": minutes,
            "steps": trained["summary"]["steps"],
            "train_seconds": trained["summary"]["train_seconds"],
            "test_bits_per_char": round(trained["metrics"]["bits_per_token"], 3),
        },
        "in_memory_load": {"peak_rss_mb": memory_rss},
        "one_pass_reads": {"peak_rss_mb": reads_rss, **reads},
        "one_pass_memmap": {"peak_rss_mb": memmap_rss, **mapped},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="corpus sizes in MB")
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rnnkit-memmap-") as work:
        sizes = {f"{size}mb": measure(size, args.minutes, Path(work)) for size in args.sizes}
    for name, result in sizes.items():
        print(name, json.dumps(result))
    note = (
        "peak RSS (ru_maxrss) per child process; the token file is read by positioned reads (TokenWindows), "
        "so training memory does not grow with the corpus; in_memory_load is the plain --data FILE.txt path"
    )
    merge_results(RESULTS, {"machine": describe(), "note": note, "sizes": sizes})


if __name__ == "__main__":
    main()
