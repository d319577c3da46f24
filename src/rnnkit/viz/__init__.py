"""Pictures of what a recurrent network does inside: the unfolded graph of a real run, hidden states and
gates over time, and how far gradients reach back (:mod:`rnnkit.viz.gradient_flow`).

Every drawing function takes arrays (no models, no run directories), saves PNG or SVG by the file's suffix
and returns the matplotlib ``Figure`` so callers and tests can read its axes. What turns a trained model and
an input into those arrays lives in :mod:`rnnkit.tasks.inspection`.
"""

from rnnkit.viz.gradient_flow import gradient_flow_plot, gradient_norms, open_gates
from rnnkit.viz.heatmaps import state_heatmaps
from rnnkit.viz.unfolded import unfolded_graph

__all__ = ["gradient_flow_plot", "gradient_norms", "open_gates", "state_heatmaps", "unfolded_graph"]
