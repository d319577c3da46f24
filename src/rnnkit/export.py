"""ONNX export of a trained run directory, for serving with onnxruntime (or anything that reads ONNX).

``rnnkit export DIR --format onnx`` writes ``DIR/model.onnx``. What each task exports is a small module
around the trained model (:data:`GRAPHS`: the one place a task maps to its graph; a task adds one line
there and one function like those below):

=========  ===================================================  =========================================
task       inputs                                               outputs
=========  ===================================================  =========================================
lm         ``token`` (N,), per layer ``state{i}_h`` [, ``_c``]  ``logits`` (N, V) and the next states
           (1, N, H_i): one step, for generation or streaming
classify   ``ids`` (N, L), ``lengths`` (N,)                     ``logits`` (N, C), ``probabilities`` (N, C)
                                                                (calibrated by the fitted temperature)
forecast   ``target`` (N, L_ctx, C_y), ``past`` (N, L_ctx, C_p),  ``quantiles`` (N, H, C_y, Q), scaled
           ``future`` (N, L_ctx + H, C_f), all scaled
=========  ===================================================  =========================================

N is dynamic everywhere and the classifier's L too; a forecaster's context and horizon are part of the
model. The recurrent layers export as ONNX's own LSTM / GRU / RNN nodes (:mod:`rnnkit.kernels.onnx_nodes`; a
layer with zoneout runs them a step at a time in an ONNX ``Loop``, for the blend of its eval expectation).

The exporter is torch's TorchScript-based one (``dynamo=False``): torch 2.13's ``dynamo=True`` exporter
traces ``torch.lstm`` into a graph whose reshapes keep the example's sequence length, so a model exported
at length 7 fails at length 11 in onnxruntime; the TorchScript exporter keeps the length dynamic.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import checkpoint
from rnnkit.errors import RnnkitError, first_line
from rnnkit.tasks import load

FORMATS = ("onnx",)
OPSET = 17


@dataclass(frozen=True)
class Graph:
    """What ``torch.onnx.export`` needs: a module, example inputs, names, and which axes may vary."""

    module: nn.Module
    inputs: tuple[Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


# --- language model: one step --------------------------------------------------------------------------


class LanguageModelStep(nn.Module):
    """One token and the layers' states in, next-token logits and the new states out (generation's loop)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.state_parts = len(model.layers[0]._state_sizes)  # 2 for an LSTM (h, c), else 1

    def forward(self, token: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        x = self.model.embedding(token).unsqueeze(1)  # -> (N, 1, E)
        new_states = []
        for index, layer in enumerate(self.model.layers):
            parts = states[index * self.state_parts : (index + 1) * self.state_parts]
            x, state = layer(x, parts if self.state_parts == 2 else parts[0])
            new_states += list(state) if self.state_parts == 2 else [state]
        hidden = x[:, 0]  # -> (N, H_top)
        output = self.model.output
        logits = output.log_prob(hidden) if isinstance(output, nn.AdaptiveLogSoftmaxWithLoss) else output(hidden)
        return (logits, *new_states)


def language_model_step(model: nn.Module) -> Graph:
    step = LanguageModelStep(model)
    batch = 2
    names, states = [], []
    for index, layer in enumerate(model.layers):
        for part, size in zip("hc", layer._state_sizes, strict=False):
            names.append(f"state{index}_{part}")
            states.append(torch.zeros(1, batch, size))
    outputs = ("logits", *(f"{name}_out" for name in names))
    dynamic = {name: {1: "batch"} for name in names + [f"{name}_out" for name in names]}
    return Graph(
        step,
        (torch.zeros(batch, dtype=torch.long), *states),
        ("token", *names),
        outputs,
        {"token": {0: "batch"}, "logits": {0: "batch"}, **dynamic},
    )


# --- classifier ------------------------------------------------------------------------------------------


class CalibratedClassifier(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(ids, lengths)
        return logits, F.softmax(logits / self.model.temperature, dim=-1)


def classifier(model: nn.Module) -> Graph:
    ids = torch.ones(2, 5, dtype=torch.long)
    lengths = torch.tensor([5, 3])
    axes = {"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    axes.update(logits={0: "batch"}, probabilities={0: "batch"})
    return Graph(CalibratedClassifier(model), (ids, lengths), ("ids", "lengths"), ("logits", "probabilities"), axes)


# --- forecaster ------------------------------------------------------------------------------------------


class Forecaster(nn.Module):
    """Scaled context (and known future) in, scaled quantiles of the horizon out (see ``model.forecast``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, target: Tensor, past: Tensor, future: Tensor) -> Tensor:
        return self.model.forecast({"target": target, "past": past, "future": future})


def forecaster(model: nn.Module) -> Graph:
    config = model.config
    if config.likelihood != "quantile":
        raise RnnkitError(
            "ONNX export needs a forecaster with likelihood='quantile' (a Gaussian's quantiles need erfinv or "
            "sampling, which ONNX lacks); train one with --likelihood quantile."
        )
    context, steps = config.context_length, config.context_length + config.horizon
    inputs = (torch.zeros(2, context, config.num_targets), torch.zeros(2, context, config.num_past),
              torch.zeros(2, steps, config.num_future))  # fmt: skip
    names = ("target", "past", "future")
    axes = {name: {0: "batch"} for name in (*names, "quantiles")}
    return Graph(Forecaster(model), inputs, names, ("quantiles",), axes)


# --- speech recogniser: the acoustic model ----------------------------------------------------------------


def speech_encoder(model: nn.Module) -> Graph:
    """Log-mel features ``(N, L, F)`` (normalised as the model was trained) and their lengths in, per-frame
    CTC log-probabilities ``(N, L', V)`` and the frame counts out; decoding (greedy or beam) stays outside."""
    features = torch.zeros(2, 40, model.config.num_mels)
    lengths = torch.tensor([40, 28])
    axes = {"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    axes.update(log_probs={0: "batch", 1: "frames"}, frame_lengths={0: "batch"})
    return Graph(model, (features, lengths), ("features", "lengths"), ("log_probs", "frame_lengths"), axes)


# The one place a task maps to its exported graph.
GRAPHS = {"lm": language_model_step, "classify": classifier, "forecast": forecaster, "asr": speech_encoder}


def graph_for(model: nn.Module) -> Graph:
    task = model.run_config.get("task")
    if task not in GRAPHS:
        raise RnnkitError(f"ONNX export knows tasks {', '.join(GRAPHS)}, not {task!r}.")
    return GRAPHS[task](model.float().eval())


def export_onnx(directory: Path | str, out: Path | str | None = None, *, opset: int = OPSET) -> dict:
    """Write the run directory's model as ONNX (``DIR/model.onnx`` unless ``out``); returns what was
    written: the path, the task, and each input and output with its shape (names of dynamic axes)."""
    low, high = opset_range()
    if not low <= opset <= high:
        raise RnnkitError(f"--opset must be between {low} and {high} (this torch's ONNX exporter), got {opset}.")
    model = load(directory)
    graph = graph_for(model)
    path = Path(out) if out is not None else Path(directory) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings(), _stdout_silenced():
        # the TorchScript exporter warns that it is the old one and about traced shape checks: both known
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                graph.module,
                graph.inputs,
                str(path),
                dynamo=False,
                input_names=list(graph.input_names),
                output_names=list(graph.output_names),
                dynamic_axes=graph.dynamic_axes,
                opset_version=opset,
            )
        except torch.onnx.errors.OnnxExporterError as error:  # an operator that this opset lacks
            raise RnnkitError(
                f"this model cannot be exported at opset {opset} ({first_line(error)}); try --opset {OPSET}."
            ) from None

    def shape(name: str, example: Tensor | None) -> list:
        axes = graph.dynamic_axes.get(name, {})
        return [axes.get(i, size) for i, size in enumerate(example.shape)] if example is not None else []

    outputs = graph.module(*graph.inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    _number_static_sizes(path, dict(zip(graph.output_names, outputs, strict=True)), graph.dynamic_axes)
    written = _input_names(path, graph.input_names)
    return {
        "path": str(path),
        "task": model.run_config["task"],
        "format": "onnx",
        "opset": opset,
        "inputs": {n: shape(n, t) for n, t in zip(graph.input_names, graph.inputs, strict=True) if n in written},
        "outputs": {n: shape(n, t) for n, t in zip(graph.output_names, outputs, strict=True)},
    }


@contextlib.contextmanager
def _stdout_silenced():
    """Standard output closed at the file descriptor: on failure the TorchScript exporter prints its whole graph
    there from C++, where ``--json`` promises one object."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def opset_range() -> tuple[int, int]:
    """The opsets this torch's TorchScript exporter writes (7-20 in torch 2.13)."""
    try:
        from torch.onnx import _constants  # private, so read defensively: the bounds are the exporter's own
    except ImportError:
        return OPSET, OPSET
    return getattr(_constants, "ONNX_MIN_OPSET", OPSET), getattr(
        _constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", OPSET
    )


def _number_static_sizes(path: Path, examples: dict[str, Tensor], dynamic_axes: dict[str, dict[int, str]]) -> None:
    """Write the outputs' fixed sizes into the file as numbers. The exporter's shape inference leaves some as
    made-up names (a forecaster's ``quantiles`` after its mean over the ensemble or its decoder's loop came out
    ``['batch', 'ReduceMeanquantiles_dim_1', ...]``), which a server reading the file's shapes takes for
    dynamic; the sizes are those of the traced call, as for the inputs."""
    try:
        import onnx
    except ImportError:  # the exporter itself ran without it; the file runs as it is
        return
    model = onnx.load(str(path), load_external_data=False)
    changed = False
    for output in model.graph.output:
        example, axes = examples.get(output.name), dynamic_axes.get(output.name, {})
        if example is None:
            continue
        for index, dim in enumerate(output.type.tensor_type.shape.dim):
            if index not in axes and index < example.dim() and dim.HasField("dim_param"):
                dim.dim_value = int(example.shape[index])  # clears the name: the two are one field
                changed = True
    if changed:
        checkpoint.write_atomic(path, model.SerializeToString())


def _input_names(path: Path, names: tuple[str, ...]) -> set[str]:
    """The inputs the file kept: the exporter drops one the graph never reads (an autoregressive forecaster
    without past covariates has no use for ``past``), and a server must not be told to feed it."""
    try:
        import onnx
    except ImportError:  # the exporter itself ran without it; report what was asked for
        return set(names)
    return {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
