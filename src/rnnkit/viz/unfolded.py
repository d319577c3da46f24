r"""The network unfolded in time, drawn from a real run, beside its folded (recurrent) form.

One box per cell and time step; inputs below, outputs above; the recurrent arrow carries
:math:`h_{t-1}` (and an LSTM's :math:`c_{t-1}`) from box to box, left to right for a forward direction and
right to left for a reverse one. Each box shows :math:`\|h_t\|` and a strip of its first units as a
heatmap, so the picture is of *this* input, not a textbook diagram. Layers stack upwards; the two
directions of a bidirectional layer sit one above the other and both read the layer below.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from rnnkit.errors import RnnkitError
from rnnkit.viz.figure import new_figure, save
from rnnkit.viz.heatmaps import _visible

BOX_WIDTH, BOX_HEIGHT = 0.78, 0.62
STRIP_UNITS = 16  # units shown in each box's heatmap strip


def unfolded_graph(
    rows: dict[str, dict[str, np.ndarray]],
    input_labels: list[str],
    out: Path | str,
    *,
    output_labels: list[str] | None = None,
    cell: str = "cell",
    max_steps: int = 24,
    title: str = "",
) -> Figure:
    """Draw the unfolded graph (left) and the folded one (right).

    Args:
        rows: bottom to top, one entry per layer and direction, named like ``"layer 0"`` or
            ``"layer 0 reverse"``; each maps ``"h"`` (and optionally ``"c"``, gates) to ``(L, H)`` values of
            one sequence.
        input_labels: ``L`` strings drawn under the steps.
        output_labels: strings drawn over the steps (``L`` of them, or fewer: aligned to the last steps,
            e.g. one label for a classifier that reads only the end); ``None`` draws ``y_t``.
        cell: the cell's name for the boxes ("LSTM", "GRU", ...).
        max_steps: draw at most the first this many steps (an ellipsis marks the rest).
    """
    if not rows:
        raise RnnkitError("nothing to draw: the trace has no layers.")
    num_steps = next(iter(rows.values()))["h"].shape[0]
    if len(input_labels) != num_steps:
        raise RnnkitError(f"got {len(input_labels)} input labels for {num_steps} time steps; give one per step.")
    shown = min(num_steps, max_steps)
    names = list(rows)
    height_rows = len(names) + 2
    width = 1.6 + 0.62 * (shown + (1 if shown < num_steps else 0))
    figure, (axis, folded) = new_figure(
        width + 3.0, 0.9 + 0.85 * height_rows, ncols=2, gridspec_kw={"width_ratios": [width, 3.0]}
    )
    norms = {name: np.linalg.norm(np.asarray(rows[name]["h"]), axis=-1) for name in names}
    top_norm = max(float(n[:shown].max()) for n in norms.values()) or 1.0

    # --- inputs, boxes and the arrows between them ---------------------------------------------------------
    for t in range(shown):
        axis.text(
            t,
            0,
            _visible(input_labels[t]),
            ha="center",
            va="center",
            fontsize=9,
            family="monospace",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "#f2f2f2", "edgecolor": "#999999"},
        )
    top = len(names) + 1
    feeds = _feeds(names)
    for t in range(shown):
        for below, above in feeds:
            if above < top:
                _feed_arrow(axis, t, below, above, top)
    for row, name in enumerate(names, start=1):
        values = np.asarray(rows[name]["h"])
        reverse = "reverse" in name
        for t in range(shown):
            _box(axis, t, row, values[t], norms[name][t], top_norm)
            # the recurrent connection: h_{t-1} -> step t (a reverse direction runs right to left)
            if t + 1 < shown:
                start, end = (t + 1, t) if reverse else (t, t + 1)
                _arrow(
                    axis,
                    (start + np.sign(end - start) * BOX_WIDTH / 2, row),
                    (end - np.sign(end - start) * BOX_WIDTH / 2, row),
                    colour="tab:red",
                )
        axis.text(-0.65, row, name.replace(" reverse", "\n(reverse)"), ha="right", va="center", fontsize=8)
    labels = _output_labels(output_labels, num_steps)
    # a model that emits only at the end (a classifier's label, a forecast) past the last drawn step: its output
    # goes over the ellipsis that stands for the steps left out, rather than off the picture
    end_only = shown < num_steps and all(label is None for label in labels[:shown])
    if end_only:
        labels = [*labels[:shown], labels[-1]]
    for t in range(len(labels) if end_only else shown):
        if labels[t] is None:
            continue
        for below, above in feeds:
            if above == top:
                _feed_arrow(axis, t, below, above, top)
        axis.text(
            t,
            top,
            _visible(labels[t]),
            ha="center",
            va="center",
            fontsize=9,
            family="monospace",
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "#e8f0fb", "edgecolor": "tab:blue"},
        )
    if shown < num_steps:
        for row in range(0, top if end_only else top + 1):
            axis.text(shown, row, "…", ha="center", va="center", fontsize=14)
    axis.text(-0.65, 0, "input", ha="right", va="center", fontsize=8)
    axis.text(-0.65, top, "output", ha="right", va="center", fontsize=8)
    axis.set_xlim(-1.9, shown + (0.6 if shown < num_steps else -0.3))
    axis.set_ylim(-0.6, top + 0.6)
    axis.set_xticks(range(shown), [str(t + 1) for t in range(shown)], fontsize=7)
    axis.set_xlabel("time step t (each box: ‖h_t‖ and its first units)")
    axis.set_yticks([])
    for side in ("top", "right", "left"):
        axis.spines[side].set_visible(False)
    axis.set_title(title or f"{cell} unfolded over {num_steps} steps")

    _folded(folded, names, cell)
    figure.tight_layout()
    return save(figure, out)


def _feeds(names: list[str]) -> list[tuple[int, int]]:
    """The rows each row reads, as ``(below, above)`` pairs: row 0 is the input, rows 1.. the layers and
    directions in ``names`` (bottom to top), ``len(names) + 1`` the output. Both directions of a bidirectional
    layer read the whole layer below (its two directions' states side by side), and both feed what is above."""
    levels: list[list[int]] = [[0]]
    for row, name in enumerate(names, start=1):
        layer = name.replace(" reverse", "")
        if len(levels) > 1 and names[levels[-1][0] - 1].replace(" reverse", "") == layer:
            levels[-1].append(row)
        else:
            levels.append([row])
    levels.append([len(names) + 1])
    return [(a, b) for lower, upper in pairwise(levels) for a in lower for b in upper]


def _feed_arrow(axis, t: int, below: int, above: int, top: int) -> None:
    """The arrow from row ``below`` up to row ``above`` at step ``t``: straight between neighbours, else an arc
    through the gap left of the boxes it passes (the forward direction's state reaching past the reverse one)."""
    start = below + (BOX_HEIGHT / 2 if below > 0 else 0.25)
    end = above - (BOX_HEIGHT / 2 if above < top else 0.25)
    if above - below == 1:
        _arrow(axis, (t, start), (t, end))
        return
    x = t - BOX_WIDTH / 2 + 0.1
    # arc3 bends the midpoint by rad x length / 2 in display units, to the left for a negative rad on an upward
    # path; with a step 0.62 inch wide and a row 0.85 inch high, about 0.28 step: into the gap between the boxes
    axis.add_patch(
        FancyArrowPatch(
            (x, start), (x, end), connectionstyle=f"arc3,rad={-0.41 / (end - start):.3f}", arrowstyle="-|>",
            mutation_scale=8, color="#555555", linewidth=0.9,
        )
    )  # fmt: skip


def _output_labels(labels: list[str] | None, num_steps: int) -> list[str | None]:
    """``L`` labels, ``None`` where nothing is emitted; fewer labels than steps align to the end."""
    if labels is None:
        return [f"y{t + 1}" for t in range(num_steps)]
    if len(labels) > num_steps:
        raise RnnkitError(f"got {len(labels)} output labels for {num_steps} time steps.")
    return [None] * (num_steps - len(labels)) + list(labels)


def _box(axis, t: int, row: int, h: np.ndarray, norm: float, top_norm: float) -> None:
    """One cell at one step: a frame shaded by ‖h_t‖, the norm written in, a heatmap strip of h_t."""
    shade = 0.15 + 0.55 * norm / top_norm
    axis.add_patch(
        FancyBboxPatch(
            (t - BOX_WIDTH / 2, row - BOX_HEIGHT / 2),
            BOX_WIDTH,
            BOX_HEIGHT,
            boxstyle="round,pad=0.02",
            facecolor=(1.0, 1.0 - 0.4 * shade, 0.6 - 0.4 * shade),
            edgecolor="#555555",
            linewidth=0.8,
        )
    )
    axis.text(t, row + 0.14, f"{norm:.2f}", ha="center", va="center", fontsize=7)
    strip = h[:STRIP_UNITS][None, :]
    scale = float(np.abs(strip).max()) or 1.0
    axis.imshow(
        strip,
        cmap="RdBu_r",
        vmin=-scale,
        vmax=scale,
        aspect="auto",
        interpolation="nearest",
        extent=(t - BOX_WIDTH / 2 + 0.06, t + BOX_WIDTH / 2 - 0.06, row - 0.24, row - 0.06),
        zorder=3,
    )


def _arrow(axis, start, end, *, colour: str = "#555555") -> None:
    axis.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, color=colour, linewidth=0.9))


def _folded(axis, names: list[str], cell: str) -> None:
    """The same network folded: one box per layer and direction with its loop back to itself."""
    layers = sorted({name.replace(" reverse", "") for name in names}, key=names.index)
    axis.set_xlim(-2.0, 2.2)
    axis.set_ylim(-0.6, len(layers) + 1.6)
    axis.set_axis_off()
    axis.set_title("folded")
    axis.text(0, 0, "$x_t$", ha="center", va="center", fontsize=10)
    below = [0.0]  # where the level below sits: x_t, then each layer's boxes
    for level, layer in enumerate(layers, start=1):
        directions = [name for name in names if name.replace(" reverse", "") == layer]
        offsets = [0.0] if len(directions) == 1 else [-0.75, 0.75]
        for offset, name in zip(offsets, directions, strict=True):
            width = 1.0 if len(directions) == 1 else 0.8
            axis.add_patch(
                FancyBboxPatch(
                    (offset - width / 2, level - 0.3),
                    width,
                    0.6,
                    boxstyle="round,pad=0.02",
                    facecolor="#fff2cc",
                    edgecolor="#555555",
                )
            )
            arrow = "←" if "reverse" in name else "→"
            axis.text(offset, level, f"{cell}\n{layer} {arrow}", ha="center", va="center", fontsize=7)
            # the loop: h_{t-1} fed back into the same cell
            axis.add_patch(
                FancyArrowPatch(
                    (offset + width / 2, level + 0.1),
                    (offset + width / 2, level - 0.1),
                    connectionstyle="arc3,rad=-1.6",
                    arrowstyle="-|>",
                    mutation_scale=8,
                    color="tab:red",
                )
            )
            for source in below:  # each direction reads the whole level below
                _arrow(axis, (source, level - 0.7), (offset, level - 0.32))
            axis.text(offset + width / 2 + 0.3, level + 0.32, "$h_{t-1}$", ha="center", fontsize=7, color="tab:red")
        below = offsets
    for source in below:
        _arrow(axis, (source, len(layers) + 0.32), (0, len(layers) + 0.7))
    axis.text(0, len(layers) + 1, "$y_t$", ha="center", va="center", fontsize=10)
