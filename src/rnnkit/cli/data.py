"""``rnnkit data fetch``: bring the built-in corpora into the local cache, so later runs need no network;
``rnnkit data tokenize``: a corpus of any size into a token file a language model trains from."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.data.sentiment import SENTIMENT_SETS, glove_vectors
from rnnkit.data.series_sources import SERIES, builtin_csv
from rnnkit.data.sources import cache_dir
from rnnkit.data.token_file import tokenize_corpus
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm_training import CORPORA

app = typer.Typer(help="Built-in corpora: fetch them ahead of time; tokenize big corpora once.", no_args_is_help=True)


@app.command()
def fetch(
    names: Annotated[
        list[str],
        typer.Argument(help=f"Corpora to fetch: {', '.join([*CORPORA, *SENTIMENT_SETS, 'glove', *SERIES])}."),
    ],
    json_output: o.Json = False,
) -> None:
    """Download (once, checked by sha256) and split the named corpora.

    Example: rnnkit data fetch shakespeare wikitext2
    """
    sizes = {}
    for name in names:
        if name in SENTIMENT_SETS:  # labelled texts: sizes in texts, not chars
            splits = SENTIMENT_SETS[name]()
            sizes[name] = {split: len(getattr(splits, split)) for split in ("train", "valid", "test")}
            continue
        if name == "glove":
            sizes[name] = {"words": len(glove_vectors(["the", "good", "bad"]))}
            continue
        if name in SERIES:  # forecasting's built-in series: a CSV file (co2's comes out of a PyPI wheel once)
            with builtin_csv(name).open(encoding="utf-8") as lines:
                sizes[name] = {"rows": sum(1 for _ in lines) - 1}  # less the header
            continue
        if name not in CORPORA:
            known = ", ".join([*CORPORA, *SENTIMENT_SETS, "glove", *SERIES])
            raise RnnkitError(f"Unknown corpus {name!r}. Select from {known}.")
        splits = CORPORA[name]()
        sizes[name] = {split: len(getattr(splits, split)) for split in ("train", "valid", "test")}
    if json_output:
        o.print_json({"task": "data", "metrics": sizes, "n": len(sizes), "cache": str(cache_dir())})
        return
    for name, size in sizes.items():
        if name == "glove":  # a check that the vectors load: how many of three test words they hold
            typer.echo(f"glove: {size['words']} of 3 test words found")
            continue
        if name in SERIES:
            typer.echo(f"{name}: {size['rows']:,} rows")
            continue
        unit = "chars" if name in CORPORA else "texts"
        typer.echo(f"{name}: " + ", ".join(f"{split} {count:,} {unit}" for split, count in size.items()))


@app.command()
def tokenize(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Text, JSON, Parquet or Arrow files, or directories (datasets' save_to_disk)."),
    ],
    out: Annotated[Path, typer.Option(help="The token file to write.")],
    tokenizer: Annotated[str, typer.Option(help="char, word or subword, fitted on the corpus' start.")] = "char",
    tokenizer_from: Annotated[
        Path | None, typer.Option(help="Use the tokenizer of this run directory or token file instead.")
    ] = None,
    text_field: Annotated[str, typer.Option(help="The text column of JSON, Parquet and Arrow records.")] = "text",
    fit_chars: Annotated[int, typer.Option(help="Characters the tokenizer is fitted on.")] = 20_000_000,
    holdout: Annotated[float, typer.Option(help="Fraction of tokens at the end for each of valid, test.")] = 0.005,
    subword_vocab_size: Annotated[int, typer.Option(help="Vocabulary size of a subword tokenizer.")] = 4096,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Tokenize a corpus once, streaming, into a token file (memory stays flat however big the corpus);
    then train with `rnnkit lm train --data FILE`.

    Example: rnnkit data tokenize books/ wiki.jsonl --tokenizer char --out corpus.tokens
    """
    start = time.perf_counter()
    corpus = tokenize_corpus(
        inputs, out, tokenizer=tokenizer, tokenizer_from=tokenizer_from, text_field=text_field, fit_chars=fit_chars,
        holdout=holdout, subword_vocab_size=subword_vocab_size, quiet=quiet,
    )  # fmt: skip
    splits = {name: stop - begin for name, (begin, stop) in corpus.header["splits"].items()}
    result = {
        "task": "data",
        "metrics": {"tokens": corpus.count, **{f"{name}_tokens": n for name, n in splits.items()}},
        "n": corpus.count,
        "out": str(out),
        "dtype": corpus.header["dtype"],
        "vocab_size": corpus.tokenizer.vocab_size,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if json_output:
        o.print_json(result)
        return
    typer.echo(
        f"{corpus.count:,} tokens ({result['dtype']}, vocabulary {result['vocab_size']:,}) in {out}; "
        f"valid {splits['valid']:,}, test {splits['test']:,}; {result['seconds']} s, "
        f"peak RSS {result['peak_rss_mb']} MB"
    )
