"""rnnkit layers vs torch.nn, forward+backward, fp32, no extras: time ratios on five shapes.

Writes bench/results/layers.json: per cell and shape (batch, steps, input, hidden) the median times and
ratio = torch.nn time / rnnkit time, measured in the same process, interleaved. Run: ``make bench``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import rnnkit
from machine import describe
from timing import compare, forward_backward

SHAPES = [(32, 100, 128, 256), (64, 50, 64, 128), (16, 200, 256, 512), (1, 1000, 32, 64), (128, 35, 650, 650)]
PAIRS = {"rnn": (nn.RNN, rnnkit.RNN), "lstm": (nn.LSTM, rnnkit.LSTM), "gru": (nn.GRU, rnnkit.GRU)}


def measure(kind: str, shape: tuple[int, int, int, int], repeats: int) -> dict:
    batch, steps, input_size, hidden_size = shape
    torch.manual_seed(0)
    torch_class, ours_class = PAIRS[kind]
    reference = torch_class(input_size, hidden_size, batch_first=True)
    ours = ours_class(input_size, hidden_size, batch_first=True)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(batch, steps, input_size, requires_grad=True)
    return compare(forward_backward(reference, x), forward_backward(ours, x), repeats=repeats)


def main() -> None:
    quick = "--quick" in sys.argv
    repeats = 3 if quick else 9
    results = {"machine": describe(), "what": "forward+backward fp32, torch.nn time / rnnkit time", "rows": []}
    for kind in PAIRS:
        for shape in SHAPES:
            row = {"cell": kind, "shape": list(shape), **measure(kind, shape, repeats)}
            results["rows"].append(row)
            print(
                f"{kind:>5} {shape!s:>22}  torch {row['reference_ms']:9.2f} ms  rnnkit {row['rnnkit_ms']:9.2f} ms"
                f"  ratio {row['ratio']:.2f}",
                flush=True,
            )
    results["min_ratio"] = min(r["ratio"] for r in results["rows"])
    out = Path(__file__).parent / "results" / "layers.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} (min ratio {results['min_ratio']:.2f})")


if __name__ == "__main__":
    main()
