"""MkDocs hook: ``<!-- bench: NAME -->`` in a page becomes tables of ``bench/results/NAME.json``.

The figures come from the files the benchmarks write, so the site shows what was last measured; a file that
is missing says so on the page instead of failing the build (a fresh clone has them all).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).parents[1] / "bench" / "results"
MARKER = re.compile(r"<!-- bench: ([\w-]+) -->")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _short_list(value) -> bool:
    """A list a table cell can hold: up to 8 plain values (a shape, a few repeats' figures)."""
    return isinstance(value, list) and len(value) <= 8 and all(not isinstance(v, dict | list) for v in value)


def _rows_table(rows: list[dict]) -> str:
    def shown(value) -> bool:
        return not isinstance(value, dict | list) or _short_list(value)

    def cell(value) -> str:
        # a shape's sizes bare (1,000 would read as two sizes), joined by slashes
        plain = (_cell(v) if isinstance(v, float) else str(v) for v in value) if isinstance(value, list) else None
        return " / ".join(plain) if plain is not None else _cell(value)

    columns = list(dict.fromkeys(key for row in rows for key in row if shown(row[key])))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in _flatten(inner, f"{prefix}{key}.")]
    if isinstance(value, list):
        if _short_list(value):
            return [(prefix.rstrip("."), ", ".join(_cell(v) for v in value))]
        return [(prefix.rstrip("."), f"{len(value)} entries (see the JSON file)")]
    return [(prefix.rstrip("."), value)]


def render(name: str) -> str:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return f"*`bench/results/{name}.json` has not been written yet: run `bench/{name}.py`.*"
    results = json.loads(path.read_text())
    parts = []
    machine = results.pop("machine", None)
    if isinstance(results.get("rows"), list) and all(isinstance(r, dict) for r in results["rows"]):
        parts.append(_rows_table(results.pop("rows")))
    figures = _flatten(results)
    if figures:
        table = ["| figure | value |", "|---|---|"] + [f"| `{k}` | {_cell(v)} |" for k, v in figures]
        parts.append("\n".join(table))
    if isinstance(machine, dict):
        parts.append("Machine: " + ", ".join(f"{k} {_cell(v)}" for k, v in machine.items()) + ".")
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return MARKER.sub(lambda match: render(match.group(1)), markdown)
