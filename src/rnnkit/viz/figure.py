"""Making and saving figures: PNG or SVG chosen by the file's suffix, headless (no screen needed).

matplotlib is imported on the first figure, not with this module: it takes half a second to load, and every
``rnnkit`` command, ``--help`` and a one-line error included, would pay for it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rnnkit.errors import RnnkitError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = {".png": "png", ".svg": "svg"}
DPI = 100  # pixels per inch of a PNG: a (w, h)-inch figure is (100 w, 100 h) pixels


def check_path(out: Path | str) -> Path:
    """``out`` as a Path, or a one-line :class:`RnnkitError` unless it names a PNG or SVG file; commands call it
    before their work, so that a mistyped name does not cost the run."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise RnnkitError(f"cannot draw {out.name}: give a file name ending in .png or .svg.")
    return out


def literal(text: str) -> str:
    """``text`` as matplotlib should draw it, character for character: labels and titles come from the user's data
    (class names like ``$$``, tokens, translations), where a pair of ``$`` would start TeX math, drawn wrongly or
    failing the whole figure."""
    return str(text).replace("$", r"\$")


def pyplot():
    """``matplotlib.pyplot``: on the headless Agg backend (figures go straight to files), unless the process
    already drew with pyplot (a notebook), whose backend and open figures are left alone."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure: Figure, out: Path | str, *, dpi: int = DPI) -> Figure:
    """Write ``figure`` to ``out`` (``.png`` or ``.svg``), release pyplot's hold on it, and return it.

    The figure is saved at its own size (no tight cropping) so a PNG has a predictable pixel size:
    ``figsize * dpi``.
    """
    out = check_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=dpi, format=FORMATS[out.suffix.lower()])
    pyplot().close(figure)
    return figure


def new_figure(width: float, height: float, **subplots) -> tuple[Figure, object]:
    """A pyplot figure of ``width`` x ``height`` inches with ``plt.subplots(**subplots)``."""
    return pyplot().subplots(figsize=(width, height), **subplots)
