"""The README's Python snippets run as printed, on the inputs their comments describe, and do what they say."""

import re
from pathlib import Path

import torch
from torch import nn

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def _run(snippet: str, **given) -> dict:
    namespace = dict(given)
    exec(compile(snippet, "README.md", "exec"), namespace)
    return namespace


def test_the_readme_has_the_three_snippets_these_tests_run():
    assert len(SNIPPETS) == 3
    assert "LSTM.from_torch" in SNIPPETS[0] and "unroll" in SNIPPETS[1] and "tbptt_windows" in SNIPPETS[2]


def test_drop_in_layer_gives_torch_nn_outputs():
    torch.manual_seed(0)
    torch_lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
    x = torch.randn(3, 10, 128)
    done = _run(SNIPPETS[0], torch_lstm=torch_lstm, x=x)
    expected, (h_n, c_n) = torch_lstm(x)
    torch.testing.assert_close(done["output"], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close((done["h_n"], done["c_n"]), (h_n, c_n), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(done["lstm"](x)[0], expected, rtol=1e-5, atol=1e-5)  # the converted one too


def test_unroll_traces_the_forget_gate_of_every_step():
    x, lengths = torch.randn(6, 3, 5), torch.tensor([6, 4, 2])
    done = _run(SNIPPETS[1], rnnkit=__import__("rnnkit"), x=x, lengths=lengths)
    assert done["trace"]["f"].shape == (6, 3, 8) and done["outputs"].shape == (6, 3, 8)


def test_tbptt_windows_cut_the_time_axis_of_the_batch_first_layer():
    torch.manual_seed(0)
    done = _run(SNIPPETS[0], torch_lstm=nn.LSTM(128, 256, num_layers=2, batch_first=True), x=torch.randn(3, 10, 128))
    x, y = torch.randn(3, 100, 128), torch.randn(3, 100, 1)
    windows = _run(SNIPPETS[2], rnnkit=done["rnnkit"], lstm=done["lstm"], x=x, y=y)
    assert windows["x_window"].shape == (3, 100 - 2 * 35, 128)  # the last window: the batch is whole
    assert windows["output"].shape == (3, 30, 256) and windows["state"][0].shape == (2, 3, 256)
