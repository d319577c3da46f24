"""Latency at batch 1: the exported ONNX graphs in onnxruntime against the same models in eager PyTorch.

Models at their tasks' default sizes, random weights (latency does not depend on training):

* language model, one generation step (char vocabulary 80, 2 LSTM layers 512 / 256 tied): eager through the
  exported module (``eager_ms``: each layer's forward over one step) and through the layers' ``step``
  (``eager_step_api_ms``: what ``generate`` runs, one native call per layer);
* sentiment classifier (bidirectional LSTM 128, attention pooling), texts of 20 and 200 words;
* forecaster (LSTM 64, direct decoder, context 56, horizon 7, 2 covariates).

Both runtimes on one thread (``torch.set_num_threads(1)``, ``intra_op_num_threads=1``); the median of
``--repeats`` calls after a warm-up. Writes bench/results/onnx.json. Usage: python bench/onnx_latency.py
(not bench/onnx.py: the script's directory comes first on sys.path, and that name would shadow the onnx package)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe, merge_results
from rnnkit import checkpoint
from rnnkit.export import export_onnx, graph_for
from rnnkit.tasks.classify import ClassifierConfig, TextClassifier
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

RESULTS = Path(__file__).parent / "results" / "onnx.json"


def median_ms(call, repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)


def exported(model, task: str, work: Path) -> ort.InferenceSession:
    directory = work / task
    checkpoint.save_model(directory, model, {"task": task, "model": dict(model.config.__dict__)})
    model.run_config = {"task": task}
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(export_onnx(directory)["path"], options)


def compare(name: str, model, task: str, feeds: dict[str, np.ndarray], work: Path, repeats: int, eager=None) -> dict:
    session = exported(model, task, work)
    graph = graph_for(model)
    inputs = tuple(torch.from_numpy(feeds[n]) for n in graph.input_names)
    with torch.no_grad():
        eager_ms = median_ms(lambda: graph.module(*inputs), repeats)
        result = {"eager_ms": eager_ms}
        if eager is not None:
            result["eager_step_api_ms"] = median_ms(eager, repeats)
        expected = graph.module(*inputs)
    onnx_ms = median_ms(lambda: session.run(None, feeds), repeats)
    first = session.run(None, feeds)[0]
    expected = expected[0] if isinstance(expected, tuple) else expected
    best_eager = min(v for k, v in result.items() if k.startswith("eager"))
    result.update(onnxruntime_ms=onnx_ms, speedup_over_fastest_eager=round(best_eager / onnx_ms, 2),
                  max_abs_difference=float(np.abs(first - expected.numpy()).max()))  # fmt: skip
    print(name, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory(prefix="rnnkit-onnx-") as work:
        work = Path(work)
        lm = LanguageModel(LanguageModelConfig(vocab_size=80)).eval()
        feeds = {"token": np.array([3])}
        for index, layer in enumerate(lm.layers):
            for part, size in zip("hc", layer._state_sizes, strict=True):
                feeds[f"state{index}_{part}"] = np.zeros((1, 1, size), np.float32)
        state = None

        def generate_step():
            # what LanguageModel.generate runs per token: embedding, each layer's step(), the output layer
            nonlocal state
            x = lm.embedding(torch.tensor([3]))
            states = []
            for layer, layer_state in zip(lm.layers, state or [None] * len(lm.layers), strict=True):
                x, layer_state = layer.step(x, layer_state)
                states.append(layer_state)
            lm.output(x)
            state = None  # each call from the zero state, as the exported graph is fed here

        results["lm_step"] = compare("lm step", lm, "lm", feeds, work, args.repeats, eager=generate_step)
        classifier = TextClassifier(ClassifierConfig(vocab_size=20_000, num_classes=2)).eval()
        for words in (20, 200):
            feeds = {"ids": np.random.default_rng(0).integers(1, 20_000, (1, words)), "lengths": np.array([words])}
            results[f"classify_{words}_words"] = compare(f"classify {words}", classifier, "classify", feeds, work,
                                                         args.repeats)  # fmt: skip
        forecaster = ForecastModel(ForecastConfig(num_targets=1, num_past=1, num_future=1, context_length=56)).eval()
        feeds = {"target": np.random.randn(1, 56, 1).astype(np.float32),
                 "past": np.random.randn(1, 56, 1).astype(np.float32),
                 "future": np.random.randn(1, 63, 1).astype(np.float32)}  # fmt: skip
        results["forecast"] = compare("forecast", forecaster, "forecast", feeds, work, args.repeats)
    note = "batch 1, one thread each, median milliseconds per call; random weights at the tasks' default sizes"
    merge_results(RESULTS, {"machine": describe(), "onnxruntime": ort.__version__, "note": note, **results})


if __name__ == "__main__":
    main()
