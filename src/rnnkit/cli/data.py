"""``rnnkit data fetch``: bring the built-in corpora into the local cache, so later runs need no network."""

from __future__ import annotations

from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.data.sources import cache_dir
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm_training import CORPORA

app = typer.Typer(help="Built-in corpora: fetch them ahead of time.", no_args_is_help=True)


@app.command()
def fetch(
    names: Annotated[list[str], typer.Argument(help=f"Corpora to fetch: {', '.join(CORPORA)}.")],
    json_output: o.Json = False,
) -> None:
    """Download (once, checked by sha256) and split the named corpora.

    Example: rnnkit data fetch shakespeare wikitext2
    """
    sizes = {}
    for name in names:
        if name not in CORPORA:
            raise RnnkitError(f"Unknown corpus {name!r}. Select from {', '.join(CORPORA)}.")
        splits = CORPORA[name]()
        sizes[name] = {split: len(getattr(splits, split)) for split in ("train", "valid", "test")}
    if json_output:
        o.print_json({"task": "data", "metrics": sizes, "n": len(sizes), "cache": str(cache_dir())})
        return
    for name, size in sizes.items():
        typer.echo(f"{name}: " + ", ".join(f"{split} {chars:,} chars" for split, chars in size.items()))
