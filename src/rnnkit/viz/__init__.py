"""Pictures of what a recurrent network does inside: the unfolded graph of a real run, hidden states and
gates over time, and how far gradients reach back (:mod:`rnnkit.viz.gradient_flow`).

Every drawing function takes arrays (no models, no run directories), saves PNG or SVG by the file's suffix
and returns the matplotlib ``Figure`` so callers and tests can read its axes. What turns a trained model and
an input into those arrays lives in :mod:`rnnkit.tasks.inspection`.
"""

import importlib

# each name's module, imported on first use (they import matplotlib, which commands that draw nothing skip)
_HOMES = {
    "gradient_flow_plot": "gradient_flow",
    "gradient_norms": "gradient_flow",
    "open_gates": "gradient_flow",
    "state_heatmaps": "heatmaps",
    "unfolded_graph": "unfolded",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'rnnkit.viz' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rnnkit.viz.{_HOMES[name]}"), name)
