"""``rnnkit data fetch``: bring the built-in corpora into the local cache, so later runs need no network."""

from __future__ import annotations

from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.data.sentiment import SENTIMENT_SETS, glove_vectors
from rnnkit.data.sources import cache_dir
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm_training import CORPORA

app = typer.Typer(help="Built-in corpora: fetch them ahead of time.", no_args_is_help=True)


@app.command()
def fetch(
    names: Annotated[
        list[str], typer.Argument(help=f"Corpora to fetch: {', '.join([*CORPORA, *SENTIMENT_SETS, 'glove'])}.")
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
        if name not in CORPORA:
            known = ", ".join([*CORPORA, *SENTIMENT_SETS, "glove"])
            raise RnnkitError(f"Unknown corpus {name!r}. Select from {known}.")
        splits = CORPORA[name]()
        sizes[name] = {split: len(getattr(splits, split)) for split in ("train", "valid", "test")}
    if json_output:
        o.print_json({"task": "data", "metrics": sizes, "n": len(sizes), "cache": str(cache_dir())})
        return
    for name, size in sizes.items():
        unit = "chars" if name in CORPORA else "texts" if name in SENTIMENT_SETS else "test words found"
        typer.echo(f"{name}: " + ", ".join(f"{split} {count:,} {unit}" for split, count in size.items()))
