"""rnnkit's kernels vs torch.nn on a CPU: every acceptance ratio of the Performance issue in one run.

Ratios are torch.nn time / rnnkit time (above 1: rnnkit is faster), medians of interleaved repeats in one
process, forward+backward in fp32 unless said otherwise:

* ``fixed``: RNN (tanh), GRU, LSTM on five shapes (batch, steps, input, hidden);
* ``lengths``: lengths uniform in [1, 100] at (32, 100, 128, 256): torch.nn on a packed batch (pack, run,
  unpack) vs rnnkit's ``lengths=``;
* ``layer_norm``: rnnkit.LSTM(layer_norm=True) vs plain torch.nn.LSTM (the goal is at most 1.4x its time,
  i.e. ratio >= 0.714);
* ``streaming``: 1,000 calls of ``layer.step`` at batch 1, hidden 256, vs a Python loop of torch.nn's cell
  (no grad, as in generation);
* ``small``: RNN, GRU, LSTM at (32, 24, 1, 25), the size of a small forecaster (Darts' ``RNNModel`` with
  ``hidden_dim=25``, ``input_chunk_length=24``, ``batch_size=32``), where per-step overhead dominates (not an
  issue target: "never slower than torch.nn").

The chosen sections run ``--rounds`` times (default 3), one after another, and each row's figures are the medians
over the rounds, with every round's ratio beside them: on a shared host a whole minute can run slow for one side
(one full run measured the RNN at (128, 35, 650, 650) at 1.01, the next at 1.33), and a single pass lets that
minute decide a row.

Writes bench/results/kernels.json with the machine description. Run ``python bench/kernels.py`` (add
``--quick`` for fewer repeats and one round, or section names such as ``fixed lengths`` to run only those).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).parent))
import rnnkit
from machine import describe
from timing import compare, forward_backward

SHAPES = [(32, 100, 128, 256), (64, 50, 64, 128), (16, 200, 256, 512), (1, 1000, 32, 64), (128, 35, 650, 650)]
SMALL_SHAPE = (32, 24, 1, 25)
PAIRS = {"rnn": (nn.RNN, rnnkit.RNN), "gru": (nn.GRU, rnnkit.GRU), "lstm": (nn.LSTM, rnnkit.LSTM)}
# the targets: GRU 1.5 (1.1 on the widest shape), RNN 1.2, LSTM 1.0
FIXED_TARGETS = {
    "rnn": lambda shape: 1.2,
    "gru": lambda shape: 1.1 if shape[3] == 650 else 1.5,
    "lstm": lambda shape: 1.0,
}


def _pair(kind: str, input_size: int, hidden_size: int, **ours_options):
    torch.manual_seed(0)
    torch_class, ours_class = PAIRS[kind]
    reference = torch_class(input_size, hidden_size, batch_first=True)
    ours = ours_class(input_size, hidden_size, batch_first=True, **ours_options)
    if not ours_options:
        ours.load_state_dict(reference.state_dict())
    return reference, ours


def fixed(repeats: int) -> list[dict]:
    return [_fixed_row("fixed", kind, shape, FIXED_TARGETS[kind](shape), repeats) for kind in PAIRS for shape in SHAPES]


def small(repeats: int) -> list[dict]:
    return [_fixed_row("small", kind, SMALL_SHAPE, 1.0, repeats) for kind in PAIRS]


def _fixed_row(section: str, kind: str, shape: tuple[int, ...], target: float, repeats: int) -> dict:
    batch, steps, input_size, hidden_size = shape
    reference, ours = _pair(kind, input_size, hidden_size)
    x = torch.randn(batch, steps, input_size, requires_grad=True)
    result = compare(forward_backward(reference, x), forward_backward(ours, x), repeats=repeats)
    return {"section": section, "cell": kind, "shape": list(shape), **result, "target": target}


def lengths(repeats: int) -> list[dict]:
    batch, steps, input_size, hidden_size = SHAPES[0]
    generator = torch.Generator().manual_seed(0)
    sequence_lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    rows = []
    for kind in ("lstm", "gru"):
        reference, ours = _pair(kind, input_size, hidden_size)
        x = torch.randn(batch, steps, input_size, requires_grad=True)

        def packed(reference=reference, x=x):
            reference.zero_grad(set_to_none=True)
            data = pack_padded_sequence(x, sequence_lengths, batch_first=True, enforce_sorted=False)
            output, _ = pad_packed_sequence(reference(data)[0], batch_first=True, total_length=steps)
            output.sum().backward()

        result = compare(packed, forward_backward(ours, x, lengths=sequence_lengths), repeats=repeats)
        rows.append(
            {
                "section": "lengths",
                "cell": kind,
                "shape": [batch, steps, input_size, hidden_size],
                **result,
                "target": 2.0,
            }
        )
    return rows


def layer_norm(repeats: int) -> list[dict]:
    batch, steps, input_size, hidden_size = SHAPES[0]
    reference, ours = _pair("lstm", input_size, hidden_size, layer_norm=True)
    x = torch.randn(batch, steps, input_size, requires_grad=True)
    result = compare(forward_backward(reference, x), forward_backward(ours, x), repeats=repeats)
    return [{"section": "layer_norm", "cell": "lstm", "shape": list(SHAPES[0]), **result, "target": round(1 / 1.4, 3)}]


def streaming(repeats: int) -> list[dict]:
    rows = []
    hidden_size, num_calls = 256, 1000
    for kind, cell_class in (("lstm", nn.LSTMCell), ("gru", nn.GRUCell)):
        torch.manual_seed(0)
        reference = cell_class(hidden_size, hidden_size)
        ours = PAIRS[kind][1](hidden_size, hidden_size).eval()
        xs = torch.randn(num_calls, 1, hidden_size)

        def loop_reference(reference=reference, xs=xs):
            with torch.no_grad():
                state = None
                for x_t in xs:
                    state = reference(x_t, state)

        def loop_ours(ours=ours, xs=xs):
            with torch.no_grad():
                state = None
                for x_t in xs:
                    _, state = ours.step(x_t, state)

        result = compare(loop_reference, loop_ours, repeats=repeats)
        rows.append(
            {
                "section": "streaming",
                "cell": kind,
                "shape": [1, num_calls, hidden_size, hidden_size],
                **result,
                "target": 1.0,
            }
        )
    return rows


SECTIONS = {"fixed": fixed, "lengths": lengths, "layer_norm": layer_norm, "streaming": streaming, "small": small}


def _line(row: dict) -> str:
    return (
        f"{row['section']:>10} {row['cell']:>5} {row['shape']!s:>22}  torch {row['reference_ms']:9.2f} ms  "
        f"rnnkit {row['rnnkit_ms']:9.2f} ms  ratio {row['ratio']:5.2f}  target {row['target']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"run only these of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7, one round")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the sections; rows give their medians")
    args = parser.parse_args()
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    chosen = [name for name in SECTIONS if name in args.sections] or list(SECTIONS)
    repeats, rounds = (3, 1) if args.quick else (7, max(1, args.rounds))
    results = {
        "machine": describe(),
        "what": "torch.nn time / rnnkit time; forward+backward fp32 except streaming; medians over rounds",
        "rounds": rounds,
        "rows": [],
    }
    passes = []
    for number in range(rounds):
        rows = [row for name in chosen for row in SECTIONS[name](repeats)]
        for row in rows:
            print(f"round {number + 1}/{rounds} {_line(row)}", flush=True)
        passes.append(rows)
    for same_row in zip(*passes, strict=True):
        row = {**same_row[0]}
        for key in ("reference_ms", "rnnkit_ms", "ratio"):
            row[key] = round(statistics.median(r[key] for r in same_row), 3)
        row["round_ratios"] = [r["ratio"] for r in same_row]
        row["meets_target"] = row["ratio"] >= row["target"]
        results["rows"].append(row)
        print(f"median {_line(row)}  {'ok' if row['meets_target'] else 'BELOW'}", flush=True)
    results["all_targets_met"] = all(row["meets_target"] for row in results["rows"])
    out = Path(__file__).parent / "results" / "kernels.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} (all targets met: {results['all_targets_met']})")


if __name__ == "__main__":
    main()
