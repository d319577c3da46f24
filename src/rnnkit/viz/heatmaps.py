"""Heatmaps of a recurrent layer over time: the hidden state, the cell state and every gate, one panel each,
units down and time steps across, the input's tokens (or values) along the time axis."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.viz.figure import literal, new_figure, save

if TYPE_CHECKING:  # matplotlib loads with the first figure (rnnkit.viz.figure)
    from matplotlib.figure import Figure

# what each traced name means, in the order the panels are drawn
QUANTITIES = {
    "h": "hidden state h",
    "c": "cell state c",
    "i": "input gate i",
    "f": "forget gate f",
    "g": "candidate g",
    "o": "output gate o",
    "r": "reset gate r",
    "z": "update gate z",
    "n": "candidate n",
}
TICK_POINTS = 11  # the width an upright 8-point tick label takes on the time axis
GATES = {"i", "f", "o", "r", "z"}  # sigmoids: drawn on [0, 1]; the rest on a symmetric scale around 0


def state_heatmaps(
    trace: dict[str, np.ndarray], labels: list[str], out: Path | str, *, title: str = "", max_units: int = 64
) -> Figure:
    """One heatmap per traced quantity of one layer and one sequence.

    Args:
        trace: name (``h``, ``c``, ``i``, ...) -> ``(L, H)`` values of one sequence.
        labels: ``L`` strings for the time axis (the input tokens or characters).
        max_units: show at most this many units (the first ones) so a wide layer stays readable.
    """
    names = [name for name in QUANTITIES if name in trace] + [n for n in trace if n not in QUANTITIES]
    if not names:
        raise RnnkitError("the trace holds no states to draw.")
    num_steps = trace[names[0]].shape[0]
    if len(labels) != num_steps:
        raise RnnkitError(f"got {len(labels)} labels for {num_steps} time steps; give one label per step.")
    units = min(max_units, trace[names[0]].shape[1])
    width = min(16.0, 2.5 + 0.28 * num_steps)
    height = 0.6 + len(names) * (0.9 + 0.02 * units)
    figure, axes = new_figure(width, height, nrows=len(names), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for axis, name in zip(axes, names, strict=True):
        values = np.asarray(trace[name])[:, :units].T  # -> (units, L)
        if name in GATES:
            image = axis.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            scale = float(np.abs(values).max()) or 1.0
            image = axis.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        axis.set_ylabel(f"{QUANTITIES.get(name, name)}\nunit", fontsize=8)
        figure.colorbar(image, ax=axis, fraction=0.025, pad=0.01)
    # one tick label per step while they fit side by side (8-point text, about 11 points of width each when
    # turned upright); past that, every k-th step's, so hundreds of characters don't print over each other
    every = max(1, -(-num_steps * TICK_POINTS // int((width - 2.0) * 72)))
    shown = range(0, num_steps, every)
    axes[-1].set_xticks(shown, [_visible(labels[step]) for step in shown], fontsize=8, rotation=90)
    axes[-1].set_xlabel("time step (input)")
    axes[0].set_title(title or "states and gates over time")
    figure.tight_layout()
    return save(figure, out)


def _visible(label: str) -> str:
    """Whitespace and control characters as something a reader can see on an axis, the rest as it is."""
    return {"\n": "\\n", " ": "␣", "\t": "\\t", "": "∅"}.get(label, literal(label))
