"""Figures for text classification, drawn headless with matplotlib: confusion matrix, token attributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.viz.figure import literal, new_figure, pyplot, save


def confusion_plot(confusion: np.ndarray, classes: list[str], out: Path | str) -> Path:
    """The confusion matrix (rows true class, columns predicted), counts written in each cell."""
    out = Path(out)
    size = len(classes)
    figure, axis = new_figure(1.2 * size + 2.5, 1.2 * size + 2)
    axis.imshow(confusion, cmap="Blues")
    classes = [literal(name) for name in classes]
    axis.set_xticks(range(size), classes, rotation=45, ha="right")
    axis.set_yticks(range(size), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = confusion.max() / 2 if confusion.size else 0
    for row in range(size):
        for column in range(size):
            value = confusion[row, column]
            axis.text(column, row, str(value), ha="center", va="center",
                      color="white" if value > threshold else "black")  # fmt: skip
    axis.set_title(f"confusion matrix ({int(confusion.sum())} texts)")
    figure.tight_layout()
    save(figure, out, dpi=120)
    return out


def attribution_colours(scores: np.ndarray, *, signed: bool = True) -> list[tuple[float, float, float, float]]:
    """One RGBA background per score. ``signed`` scores (integrated gradients) go from red (against the class)
    through yellow to green (for it); unsigned ones (attention weights, never negative: where the model looked,
    not which way it pushed) from white to blue."""
    scale = float(np.abs(scores).max()) if len(scores) else 0.0
    scale = scale or 1.0
    if signed:
        colours, offset, span = pyplot().get_cmap("RdYlGn"), 0.5, 0.5
    else:
        colours, offset, span = pyplot().get_cmap("Blues"), 0.0, 0.8  # past 0.8 the blue hides black text
    return [colours(offset + span * float(score) / scale) for score in scores]


def attribution_plot(
    tokens: list[str], scores: np.ndarray, out: Path | str, *, title: str = "", signed: bool = True
) -> Path:
    """Tokens laid out as text, each on a background coloured by its attribution (:func:`attribution_colours`)."""
    out = Path(out)
    faces = attribution_colours(scores, signed=signed)
    per_line, width = 12, 10.0
    lines = max(1, -(-len(tokens) // per_line))
    figure, axis = new_figure(width, 0.45 * lines + 0.8)
    axis.set_axis_off()
    axis.set_xlim(0, per_line)
    axis.set_ylim(lines, -0.5)
    for index, (token, face) in enumerate(zip(tokens, faces, strict=True)):
        row, column = divmod(index, per_line)
        axis.text(column + 0.05, row + 0.2, literal(token), fontsize=9, va="center",
                  bbox={"facecolor": face, "edgecolor": "none", "pad": 1.5})  # fmt: skip
    axis.set_title(literal(title) or "token attributions")
    figure.tight_layout()
    save(figure, out, dpi=120)
    return out
