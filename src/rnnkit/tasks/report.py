"""``report.html``: one static page per run directory, readable in any browser with no server and no network.

It holds the run's config, its metrics, the training curves and the pictures of
:mod:`rnnkit.tasks.inspection` on a sample input, every image embedded as a base64 ``data:`` URI so the
file can be mailed or archived on its own. The sample input is remembered in ``inspect/input.json`` so
``rnnkit report DIR`` redraws the same pictures.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from rnnkit import checkpoint
from rnnkit.data.series_sources import resolve
from rnnkit.plots import training_curves
from rnnkit.tasks.inspection import draw_inspection, inspect_run

REPORT_FILE = "report.html"
INPUT_FILE = "inspect/input.json"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .9em; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
td:first-child { font-family: monospace; } figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: .9em; } pre { background: #f6f6f6; padding: .6em; white-space: pre-wrap; }
"""


def write_report(
    directory: Path | str,
    *,
    text: str | None = None,
    csv: Path | str | None = None,
    wav: Path | str | None = None,
) -> Path:
    """Write ``directory/report.html`` and return its path.

    ``text``, ``csv`` or ``wav`` is the sample input for the inspection pictures (a text for language models and
    classifiers, a series file for forecasters, an audio file for speech recognisers); without one, the sample
    of the last report is reused, and without that the page has no inspection pictures.
    """
    directory = Path(directory)
    config = checkpoint.read_config(directory)
    metrics_path = directory / "metrics.json"
    metrics = checkpoint.read_json(metrics_path) if metrics_path.is_file() else {}
    if (directory / "log.csv").is_file() and not (directory / "loss.png").is_file():
        training_curves(directory / "log.csv", directory / "loss.png", title=f"{config.get('task', '')} run")
    inputs = _sample_input(directory, text, csv, wav)
    pictures, note = [], ""
    if inputs:
        inspection = inspect_run(directory, **inputs)
        files = draw_inspection(inspection, directory / "inspect")
        checkpoint.write_json(directory / INPUT_FILE, {k: str(v) for k, v in inputs.items()})
        sample = inputs.get("text") or f"the file {inputs.get('csv') or inputs.get('wav')}"
        note = f"Input: <code>{html.escape(str(sample)[:300])}</code>. {html.escape(inspection.summary)}"
        pictures = [(name, path) for name, path in files.items()]
    else:
        note = (
            "No sample input: run <code>rnnkit report DIR --text ...</code> (or <code>--csv</code>, "
            "<code>--wav</code>) to add them."
        )
    curves = [(p.stem, p) for p in sorted(directory.glob("*.png"))]  # loss.png, confusion.png, forecasts...
    page = _page(directory, config, metrics, curves, pictures, note)
    path = directory / REPORT_FILE
    checkpoint.write_atomic(path, page.encode("utf-8"))
    return path


def _sample_input(directory: Path, text: str | None, csv: Path | str | None, wav: Path | str | None) -> dict:
    if text is not None:
        return {"text": text}
    # files are remembered whole: a built-in series' name or a relative path may not be found later
    if csv is not None:
        return {"csv": str(resolve(csv).absolute())}
    if wav is not None:
        return {"wav": str(Path(wav).absolute())}
    remembered = directory / INPUT_FILE
    if remembered.is_file():
        saved = checkpoint.read_json(remembered)
        if any(key in saved and not Path(saved[key]).is_file() for key in ("csv", "wav")):
            return {}  # the sample file has moved since: draw no inspection rather than fail the report
        return saved
    return {}


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(path.stem)}">'


def _flatten(obj, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as ``(dotted.key, value)`` rows; long lists (a history, a confusion matrix) summarised."""
    if isinstance(obj, dict):
        rows = []
        for key, value in obj.items():
            rows += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(obj, list) and (len(obj) > 12 or any(isinstance(v, dict | list) for v in obj)):
        return [(prefix, f"[{len(obj)} entries]")]
    if isinstance(obj, float):
        return [(prefix, f"{obj:.6g}")]
    return [(prefix, json.dumps(obj) if not isinstance(obj, str) else obj)]


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _page(directory, config, metrics, curves, pictures, note) -> str:
    task = config.get("task", "?")
    sections = [
        f"<h1>rnnkit run: {html.escape(str(task))}</h1>",
        f"<p>{html.escape(str(directory))} &middot; rnnkit {html.escape(str(config.get('rnnkit_version', '')))}</p>",
        "<h2>Metrics</h2>",
        _table(_flatten(metrics)) if metrics else "<p>No metrics.json yet.</p>",
        "<h2>Curves and plots</h2>",
    ]
    sections += [f"<figure>{_image(p)}<figcaption>{html.escape(name)}</figcaption></figure>" for name, p in curves]
    sections += ["<h2>Inside the network</h2>", f"<p>{note}</p>"]
    sections += [f"<figure>{_image(p)}<figcaption>{html.escape(name)}</figcaption></figure>" for name, p in pictures]
    shown = {k: v for k, v in config.items() if k not in ("tokenizer",)}  # a vocabulary is too long to list
    sections += ["<h2>Config</h2>", _table(_flatten(shown))]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rnnkit {html.escape(str(task))} run</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def sample_text(text: str, max_chars: int = 64) -> str:
    """The start of ``text``, at most ``max_chars`` characters, cut at a space when there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]  # one more: a space right after the limit ends a whole word
    return cut[: cut.rfind(" ")] if " " in cut else cut[:max_chars]
