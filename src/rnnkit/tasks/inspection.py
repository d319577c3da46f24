"""Look inside a trained task model on one input: what every recurrent layer held and gated at every step.

The model runs as usual on the input (a text, a series file); a forward pre-hook on each of its rnnkit
recurrent layers records what that layer read, and the layer runs again on it with ``return_trace=True``
(the reference unrolling, which gives the same numbers as the fast path). So one mechanism serves every
task model, whatever sits around its layers; a task only says how its input becomes a model call
(:data:`INSPECTORS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit import checkpoint
from rnnkit.cells import RecurrentCell
from rnnkit.errors import RnnkitError, a_task, counted
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer
from rnnkit.tasks import load

CELL_NAMES = {LSTM: "LSTM", GRU: "GRU", RNN: "RNN"}


@dataclass
class Inspection:
    """One input through one model.

    Attributes:
        rows: bottom to top, ``"layer 0"``, ``"layer 0 reverse"``, ... -> traced name (``h``, ``c``, gates) ->
            ``(L, H)`` values.
        input_labels: ``L`` strings, the input at each step (tokens, characters, values).
        output_labels: what the model emits, aligned to the last steps (``L`` labels, or one for a model
            that reads only the end).
        first_input: ``(L, 1, H_in)``, what the first recurrent layer read (embeddings, scaled values).
        first_cell: that layer's first cell (for :func:`rnnkit.viz.gradient_flow.gradient_norms`).
    """

    task: str
    cell: str
    rows: dict[str, dict[str, np.ndarray]]
    input_labels: list[str]
    output_labels: list[str]
    first_input: Tensor
    first_cell: RecurrentCell
    summary: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class _Captured:
    layer: RecurrentLayer
    args: tuple
    kwargs: dict


def trace_layers(model: nn.Module, call: Callable[[], object]) -> tuple[object, list[_Captured]]:
    """Run ``call()`` (which runs ``model``) and return its result with the first input of every recurrent
    layer of ``model``, in module order."""
    captured: dict[int, _Captured] = {}

    def hook(layer, args, kwargs):
        # the first call only: an autoregressive decoder calls its layer again at every step
        captured.setdefault(id(layer), _Captured(layer, args, dict(kwargs)))

    layers = [module for module in model.modules() if isinstance(module, RecurrentLayer)]
    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in layers]
    try:
        with torch.no_grad():
            result = call()
    finally:
        for handle in handles:
            handle.remove()
    if not captured:
        raise RnnkitError("the model ran no rnnkit recurrent layer on this input, so there is nothing to trace.")
    return result, [captured[id(layer)] for layer in layers if id(layer) in captured]


def _rows(captured: list[_Captured]) -> dict[str, dict[str, np.ndarray]]:
    """Each captured layer re-run with its trace; one row per layer and direction, numbered across layers."""
    rows: dict[str, dict[str, np.ndarray]] = {}
    offset = 0
    for item in captured:
        with torch.no_grad():
            *_, trace = item.layer(*item.args, **item.kwargs, return_trace=True)
        for key, values in trace.items():  # "l0", "l0_reverse", ...: (L, N, ·) time first
            layer = offset + int(key[1:].split("_")[0])
            name = f"layer {layer}" + (" reverse" if key.endswith("reverse") else "")
            rows[name] = {quantity: v[:, 0].float().cpu().numpy() for quantity, v in values.items()}
        offset += item.layer.num_layers
    return rows


def _first(captured: list[_Captured]) -> tuple[Tensor, RecurrentCell]:
    first = captured[0]
    x = first.args[0].detach()
    x = x.transpose(0, 1) if first.layer.batch_first else x  # -> (L, N, H_in)
    return x[:, :1].float().cpu(), first.layer.cells[0]


def _cell_name(captured: list[_Captured]) -> str:
    layer = captured[0].layer
    name = next((n for cls, n in CELL_NAMES.items() if isinstance(layer, cls)), type(layer).__name__)
    return ("LayerNorm-" if getattr(layer, "layer_norm", False) else "") + name


# --- one function per task: input -> model call and labels -------------------------------------------------


def _language_model(model, *, text: str | None = None, **_) -> Inspection:
    from rnnkit.data.text import tokenizer_from_config

    tokenizer = tokenizer_from_config(model.run_config["tokenizer"])
    ids = tokenizer.encode(text or "")
    if not ids:
        raise RnnkitError("the text has no tokens for this model's tokenizer; give some text with --text.")
    device = next(model.parameters()).device
    (hidden, _), captured = trace_layers(model, lambda: model(torch.tensor([ids], device=device)))
    predicted = model.log_probs(hidden)[0].argmax(-1).tolist()  # the likeliest next token after each step
    return Inspection(
        task="lm",
        cell=_cell_name(captured),
        rows=_rows(captured),
        input_labels=[tokenizer.decode([i]) for i in ids],
        output_labels=[tokenizer.decode([i]) for i in predicted],
        first_input=_first(captured)[0],
        first_cell=_first(captured)[1],
        summary="outputs: the likeliest next token after each step",
    )


def _classifier(model, *, text: str | None = None, **_) -> Inspection:
    from rnnkit.data.sentiment import normalise
    from rnnkit.data.text import tokenizer_from_config

    tokenizer = tokenizer_from_config(model.run_config["tokenizer"])
    ids = tokenizer.encode(normalise(text or ""))
    if not ids:
        raise RnnkitError("the text has no words to classify; give some text with --text.")
    device = next(model.parameters()).device
    call = lambda: model(torch.tensor([ids], device=device), torch.tensor([len(ids)]))  # noqa: E731
    # one member's layers: an ensemble's members are side by side, not stacked
    logits, captured = trace_layers(model.members[0], call)
    probabilities = torch.softmax(logits[0].float() / model.temperature.cpu(), dim=-1)
    classes = model.run_config["classes"]
    label = classes[int(probabilities.argmax())]
    return Inspection(
        task="classify",
        cell=_cell_name(captured),
        rows=_rows(captured),
        input_labels=[tokenizer.decode([i]) for i in ids],
        output_labels=[label],
        first_input=_first(captured)[0],
        first_cell=_first(captured)[1],
        summary=f"predicted {label} ({float(probabilities.max()):.3f}) from the pooled states",
    )


def _forecaster(model, *, csv: Path | str | None = None, **_) -> Inspection:
    from rnnkit.data.series import load_series_as_trained
    from rnnkit.data.windows import Scaler, make_windows

    if csv is None:
        raise RnnkitError("a forecaster reads a series: give the CSV file with --csv.")
    run_config, config = model.run_config, model.config
    series_set = load_series_as_trained(csv, run_config["series"])
    spec = series_set.spec
    series = series_set.series[0]  # the first series, forecast from its end
    # or from where the file's known future runs out: a training file gives none after its last target
    origin = min(len(series), len(series.future) - config.horizon) if spec.future_covariates else len(series)
    if origin < config.context_length:
        raise RnnkitError(f"the model reads a context of {config.context_length} steps; {csv} has {origin}.")
    scaler = Scaler.from_config(run_config["scaler"])
    first = replace(series_set, series=[series])
    windows = make_windows(first, scaler, config.context_length, config.horizon, lambda s: [origin], batch_size=1)
    batch = {k: v.to(model.levels.device) for k, v in next(iter(windows.batches(0))).items()}
    # one member's layers: an ensemble's members are side by side, not stacked (and may read other lookbacks)
    quantiles, captured = trace_layers(model.members[0], lambda: model.forecast(batch))
    rows = _rows(captured)
    steps = next(iter(rows.values()))["h"].shape[0]
    context = series.target[origin - config.context_length : origin, 0]
    # a direct member reads the last `steps` values (its lookback); the autoregressive context pass reads every
    # value but the last, which is the first horizon step's input
    labels = [f"{v:.3g}" for v in (context[:steps] if config.decoder == "autoregressive" else context[-steps:])]
    mean, std = scaler.moments(series, series_set)
    median = quantiles[0, :, 0, config.quantiles.index(0.5)].cpu().numpy() * std[0] + mean[0]
    return Inspection(
        task="forecast",
        cell=_cell_name(captured),
        rows=rows,
        input_labels=labels,
        output_labels=["forecast"],
        first_input=_first(captured)[0],
        first_cell=_first(captured)[1],
        summary=f"{spec.targets[0]}: median forecast " + ", ".join(f"{v:.3g}" for v in median),
    )


def _speech(model, *, wav: Path | str | None = None, **_) -> Inspection:
    from rnnkit.data.audio import read_audio

    if wav is None:
        raise RnnkitError("a speech model reads audio: give the file with --wav.")
    features = model.features(read_audio(wav))  # (L, F), normalised as in training
    device = next(model.parameters()).device
    call = lambda: model(features[None].to(device), torch.tensor([features.shape[0]]))  # noqa: E731
    (log_probs, _), captured = trace_layers(model, call)
    rows = _rows(captured)
    steps = next(iter(rows.values()))["h"].shape[0]  # encoder frames, after the front end's subsampling
    per_step = model.config.upsampling  # CTC output frames each encoder frame writes
    seconds = model.frame_seconds * per_step
    # the likeliest symbol at each output frame, an encoder frame's in a row: "_" is CTC's blank
    symbols = ["_", *model.config.alphabet]
    best = log_probs[0, : steps * per_step].argmax(-1).view(steps, per_step).tolist()
    return Inspection(
        task="asr",
        cell=_cell_name(captured),
        rows=rows,
        input_labels=[f"{t * seconds:.2f}s" for t in range(steps)],
        output_labels=["".join(symbols[i] for i in frame) for frame in best],
        first_input=_first(captured)[0],
        first_cell=_first(captured)[1],
        summary="inputs: the convolutional front end's frames (time in seconds); outputs: the likeliest "
        "symbol at each frame, or each of its output frames in a row (_ is CTC's blank)",
    )


# task -> (the input it reads, how to inspect it)
INSPECTORS: dict[str, tuple[str, Callable[..., Inspection]]] = {
    "lm": ("text", _language_model),
    "classify": ("text", _classifier),
    "forecast": ("csv", _forecaster),
    "asr": ("wav", _speech),
}
INPUT_KINDS = ("text", "csv", "wav")


def inspect_run(directory: Path | str, **inputs) -> Inspection:
    """Inspect the model of a run directory on one input: ``text=...`` (language models, classifiers) or
    ``csv=...`` (forecasters) or ``wav=...`` (speech recognisers)."""
    given = {kind: value for kind, value in inputs.items() if value is not None}
    unknown = set(given) - set(INPUT_KINDS)
    if unknown:
        raise RnnkitError(f"unknown input {sorted(unknown)[0]!r}; give one of {', '.join(INPUT_KINDS)}.")
    task = checkpoint.read_config(directory).get("task")
    if task not in INSPECTORS:
        raise RnnkitError(f"cannot inspect a {task!r} run yet; inspectable tasks: {', '.join(INSPECTORS)}.")
    kind, inspector = INSPECTORS[task]
    if set(given) != {kind}:
        raise RnnkitError(f"{a_task(task)} run reads --{kind}; give exactly that input.")
    return inspector(load(directory), **given)


def gradient_flow(inspection: Inspection, *, seed: int = 0) -> dict[str, np.ndarray]:
    """‖∂loss/∂h_t‖ of the trained model's first layer on its own input, beside untrained RNN, LSTM and GRU
    cells of the same width on the same input (see :mod:`rnnkit.viz.gradient_flow`)."""
    from rnnkit.viz.gradient_flow import compare_cells, gradient_norms

    x, cell = inspection.first_input, inspection.first_cell
    norms = {f"trained {inspection.cell} (layer 0)": gradient_norms(cell, x, seed=seed)}
    return norms | compare_cells(x, cell.hidden_size, seed=seed)


def draw_inspection(inspection: Inspection, out: Path | str, *, suffix: str = ".png") -> dict[str, Path]:
    """Draw the unfolded graph, one heatmap figure per layer and direction, and the gradient flow into the
    folder ``out``; returns ``{picture name: file}``."""
    from rnnkit.viz import gradient_flow_plot, state_heatmaps, unfolded_graph

    out = Path(out)
    files = {"unfolded": out / f"unfolded{suffix}"}
    unfolded_graph(
        inspection.rows,
        inspection.input_labels,
        files["unfolded"],
        output_labels=inspection.output_labels,
        cell=inspection.cell,
    )
    for name, trace in inspection.rows.items():
        key = "states-" + name.replace(" ", "-")
        files[key] = out / f"{key}{suffix}"
        state_heatmaps(trace, inspection.input_labels, files[key], title=f"{inspection.cell} {name}")
    files["gradient-flow"] = out / f"gradient-flow{suffix}"
    gradient_flow_plot(
        gradient_flow(inspection),
        files["gradient-flow"],
        title=f"gradient flow on this input ({counted(len(inspection.input_labels), 'step')})",
    )
    return files


def to_json(inspection: Inspection, gradients: dict[str, np.ndarray] | None = None) -> dict:
    """The trace as numbers: per row and quantity a list of ``L`` lists of ``H`` floats."""
    report = {
        "task": "inspect",
        "run_task": inspection.task,
        "cell": inspection.cell,
        "input": inspection.input_labels,
        "output": inspection.output_labels,
        "summary": inspection.summary,
        "trace": {
            row: {q: np.round(v, 6).tolist() for q, v in values.items()} for row, values in inspection.rows.items()
        },
        "n": len(inspection.input_labels),
    }
    if gradients is not None:
        report["gradient_flow"] = {name: values.tolist() for name, values in gradients.items()}
    return report
