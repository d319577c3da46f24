"""Every picture drawn from a tiny real model: non-empty files of the expected pixel size, labelled axes."""

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.patches import FancyArrowPatch

from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM
from rnnkit.viz import state_heatmaps, unfolded_graph
from rnnkit.viz.memory import memory_plot

TEXT = "hello rnn"


def tiny_rows(layer, *, reverse_names=True):
    """Trace a tiny layer over TEXT's characters as the rows the figures take."""
    x = torch.randn(len(TEXT), 1, 5)
    _, _, trace = layer(x, return_trace=True)
    rows = {}
    for key, values in trace.items():
        name = f"layer {key[1]}" + (" reverse" if key.endswith("reverse") else "")
        rows[name] = {q: v[:, 0].detach().numpy() for q, v in values.items()}
    return rows


def test_unfolded_graph_of_a_stacked_bidirectional_lstm(tmp_path, png_size):
    rows = tiny_rows(LSTM(5, 6, num_layers=2, bidirectional=True))
    assert list(rows) == ["layer 0", "layer 0 reverse", "layer 1", "layer 1 reverse"]
    figure = unfolded_graph(rows, list(TEXT), tmp_path / "unfolded.png", output_labels=["positive"], cell="LSTM")
    unfolded, folded = figure.axes[:2]
    assert "time step" in unfolded.get_xlabel() and unfolded.get_title() == "LSTM unfolded over 9 steps"
    assert folded.get_title() == "folded"
    texts = [t.get_text() for t in unfolded.texts]
    assert "h" in texts and "␣" in texts and "positive" in texts  # inputs below (space made visible), output above
    norm = f"{np.linalg.norm(rows['layer 1']['h'][3]):.2f}"
    assert norm in texts  # each box carries its own ‖h_t‖
    assert len(unfolded.images) == 4 * len(TEXT)  # one heatmap strip per box
    size, coloured = png_size(tmp_path / "unfolded.png")
    width, height = figure.get_size_inches() * 100
    assert size == (round(width), round(height)) and coloured


def test_both_directions_of_a_bidirectional_layer_read_the_whole_layer_below(tmp_path):
    rows = tiny_rows(LSTM(5, 6, num_layers=2, bidirectional=True))  # rows 1-4: l0, l0 reverse, l1, l1 reverse
    figure = unfolded_graph(rows, list(TEXT), tmp_path / "unfolded.png", output_labels=["positive"], cell="LSTM")
    arrows = [p._posA_posB for p in figure.axes[0].patches if isinstance(p, FancyArrowPatch)]
    # each upward arrow as (step, row it leaves, row it enters): it leaves a box's top (row + 0.31) or the input's
    # (0.25) and enters a box's bottom (row - 0.31) or the output's (row 5 - 0.25)
    upward = {(round(start[0]), round(start[1] - 0.31) if start[1] > 0.3 else 0, round(end[1] + 0.31))
              for start, end in arrows if start[0] == end[0]}  # fmt: skip
    # the reverse direction reads the layer below, not the forward direction beside it
    assert {(a, b) for t, a, b in upward if t == 0} == {(0, 1), (0, 2), (1, 3), (1, 4), (2, 3), (2, 4)}
    assert {(t, a, b) for t, a, b in upward if b == 5} == {(8, 3, 5), (8, 4, 5)}  # both directions reach the label


def test_unfolded_graph_cuts_long_inputs_with_an_ellipsis(tmp_path):
    layer = GRU(5, 4)
    x = torch.randn(40, 1, 5)
    _, _, trace = layer(x, return_trace=True)
    rows = {"layer 0": {q: v[:, 0].detach().numpy() for q, v in trace["l0"].items()}}
    figure = unfolded_graph(rows, [str(i % 10) for i in range(40)], tmp_path / "long.svg", cell="GRU", max_steps=10)
    assert len(figure.axes[0].images) == 10 and "…" in [t.get_text() for t in figure.axes[0].texts]
    assert (tmp_path / "long.svg").read_text().lstrip().startswith("<?xml")


def test_a_label_at_the_end_of_a_long_input_stays_in_the_picture(tmp_path):
    layer = GRU(5, 4)
    _, _, trace = layer(torch.randn(40, 1, 5), return_trace=True)
    rows = {"layer 0": {q: v[:, 0].detach().numpy() for q, v in trace["l0"].items()}}
    labels = [str(i % 10) for i in range(40)]
    figure = unfolded_graph(rows, labels, tmp_path / "long.png", output_labels=["positive"], max_steps=10)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "positive" in texts  # a classifier's one label, though its step is past the drawn ones
    assert texts.count("…") == 2  # input and layer rows; the output row holds the label instead


def test_state_heatmaps_one_panel_per_state_and_gate(tmp_path, png_size):
    rows = tiny_rows(LSTM(5, 6))
    figure = state_heatmaps(rows["layer 0"], list(TEXT), tmp_path / "states.png", title="LSTM layer 0")
    labels = [axis.get_ylabel().split("\n")[0] for axis in figure.axes if axis.get_ylabel()]
    assert labels == ["hidden state h", "cell state c", "input gate i", "forget gate f", "candidate g", "output gate o"]
    bottom = figure.axes[len(labels) - 1]
    assert [t.get_text() for t in bottom.get_xticklabels()] == list("hello␣rnn") and "time step" in bottom.get_xlabel()
    size, coloured = png_size(tmp_path / "states.png")
    assert size == tuple(round(v) for v in figure.get_size_inches() * 100) and coloured


def test_gru_heatmaps_show_its_own_gates(tmp_path):
    rows = tiny_rows(GRU(5, 6))
    figure = state_heatmaps(rows["layer 0"], list(TEXT), tmp_path / "gru.png")
    labels = [axis.get_ylabel().split("\n")[0] for axis in figure.axes if axis.get_ylabel()]
    assert labels == ["hidden state h", "reset gate r", "update gate z", "candidate n"]


def test_memory_plot_has_a_panel_per_task(tmp_path, png_size):
    rows = [
        {"task": "adding", "length": t, "cell": c, "test_score": s, "metric": "mse", "baseline": 0.167,
         "threshold": 0.01}
        for c, s in (("rnn", 0.16), ("lstm", 0.002)) for t in (50, 100)
    ] + [{"task": "digits", "length": 64, "cell": "gru", "test_score": 0.93, "metric": "accuracy", "baseline": 0.1,
          "threshold": 0.9}]  # fmt: skip
    figure = memory_plot(rows, tmp_path / "memory.png")
    adding, digits = figure.axes
    assert adding.get_yscale() == "log" and adding.get_ylabel().startswith("test MSE")
    assert digits.get_ylabel() == "test accuracy" and "sequence length" in digits.get_xlabel()
    assert png_size(tmp_path / "memory.png")[1]


@pytest.mark.parametrize("name", ["picture.jpg", "picture"])
def test_other_suffixes_are_refused(tmp_path, name):
    rows = tiny_rows(GRU(5, 3))
    with pytest.raises(RnnkitError, match=r"ending in \.png or \.svg"):
        state_heatmaps(rows["layer 0"], list(TEXT), tmp_path / name)


def test_labels_must_match_the_steps(tmp_path):
    rows = tiny_rows(GRU(5, 3))
    with pytest.raises(RnnkitError, match="got 3 labels for 9 time steps"):
        state_heatmaps(rows["layer 0"], ["a", "b", "c"], tmp_path / "x.png")


def test_dollar_signs_in_the_data_are_drawn_as_they_are(tmp_path):
    """Class names like "$" and "$$" (price levels), tokens and titles from the data: a pair of $ is not TeX."""
    from rnnkit.plots import attention_heatmap, forecast_plot
    from rnnkit.text_plots import attribution_plot, confusion_plot

    classes = ["$", "$$", "$$$"]
    figure_file = confusion_plot(np.eye(3, dtype=int), classes, tmp_path / "confusion.png")
    assert figure_file.stat().st_size > 1000
    attribution_plot(["costs", "$5", "to", "$$"], np.array([0.1, -0.2, 0.0, 0.3]), tmp_path / "why.png", title="$$")
    attention_heatmap(np.eye(2), ["$x_{", "$"], ["{", "$"], tmp_path / "attention.png", title="cost $5 {or $6")
    times = pd.date_range("2021-01-01", periods=5, freq="D")
    forecast_plot(times[:3], np.zeros(3), times[3:], np.zeros((2, 3)), (0.1, 0.5, 0.9), tmp_path / "fc.png",
                  title="price_$ ($$)")  # fmt: skip
    rows = tiny_rows(GRU(5, 3))
    figure = unfolded_graph(rows, ["$", "$", *TEXT[2:]], tmp_path / "unfolded.png", output_labels=["$$"])
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert r"\$\$" in texts  # escaped for matplotlib, which draws it as $$
    state_heatmaps(rows["layer 0"], ["$$", "$_$", *TEXT[2:]], tmp_path / "states.png")


def test_attention_weights_are_drawn_on_one_hue_and_signed_scores_on_two(tmp_path):
    """Attention weights are never negative: drawn on the red-green scale, every token came out green (for the
    class). They are where the model looked, so they go from white to blue; signed scores keep red and green."""
    from rnnkit.text_plots import attribution_colours, attribution_plot

    blues = attribution_colours(np.array([0.0, 0.5, 1.0]), signed=False)
    assert all(b >= r and b >= g for r, g, b, _ in blues)  # no red or green cast
    assert blues[0][0] > blues[2][0]  # a zero weight pale, the largest dark
    red, _, green = attribution_colours(np.array([-1.0, 0.0, 1.0]), signed=True)
    assert red[0] > red[1] and green[1] > green[0]
    assert attribution_plot(["a", "b"], np.array([0.2, 0.8]), tmp_path / "why.png", signed=False).stat().st_size


def test_terminal_colours_follow_the_sign_only_for_signed_scores(monkeypatch):
    import sys

    from rnnkit.cli.classify import colour_tokens

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)

    signed = colour_tokens(["good", "bad"], [1.0, -1.0])
    assert "\x1b[32m" in signed and "\x1b[31m" in signed  # green, red
    weights = colour_tokens(["good", "bad"], [1.0, 0.6], signed=False)
    assert "\x1b[34m" in weights and "\x1b[32m" not in weights  # blue only


def test_state_heatmaps_of_a_long_input_label_every_kth_step_so_labels_do_not_overlap(tmp_path):
    """Hundreds of characters on a 16-inch axis printed over each other; past what fits, every k-th is shown."""
    steps = 400
    trace = {"h": np.random.default_rng(0).standard_normal((steps, 4))}
    labels = [chr(ord("a") + step % 26) for step in range(steps)]
    figure = state_heatmaps(trace, labels, tmp_path / "long.png")
    axis = figure.axes[0]
    ticks = axis.get_xticks()
    assert 1 < len(ticks) < steps and ticks[0] == 0
    assert figure.get_figwidth() * 72 / len(ticks) >= 11  # room for each upright 8-point label
    shown = [t.get_text() for t in axis.get_xticklabels()]
    assert shown[1] == labels[int(ticks[1])]
    short = state_heatmaps({"h": trace["h"][:20]}, labels[:20], tmp_path / "short.png")
    assert len(short.axes[0].get_xticks()) == 20  # a short input keeps a label per step
