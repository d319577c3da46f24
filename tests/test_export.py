"""ONNX export: onnxruntime gives the eager model's numbers (1e-4) at batch and sequence sizes other than the
example's, for the language model's step, the classifier, the forecaster and the speech recogniser's acoustic
model."""

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close
from typer.testing import CliRunner

import rnnkit
from rnnkit import checkpoint
from rnnkit.cli import app
from rnnkit.export import GRAPHS, export_onnx
from rnnkit.tasks.asr import SpeechRecognizer, SpeechRecognizerConfig
from rnnkit.tasks.classify import ClassifierConfig, TextClassifier
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

ort = pytest.importorskip("onnxruntime", reason="the parity tests run the exported graphs in onnxruntime")
onnx_package = pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")

TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}


def saved(tmp_path, task, model):
    config = model.config.__dict__
    checkpoint.save_model(tmp_path, model, {"task": task, "model": {k: v for k, v in config.items()}})
    return tmp_path


def recurrent_nodes(path) -> list[str]:
    return [node.op_type for node in onnx_package.load(path).graph.node if node.op_type in ("LSTM", "GRU", "RNN")]


def session(tmp_path, task, model):
    result = export_onnx(saved(tmp_path, task, model))
    return ort.InferenceSession(result["path"]), result


def assert_steps_match(onnx, result, ids, expected):
    """Feed ``ids`` ``(3, T)`` to the exported step one column at a time, states carried, against ``expected``."""
    names = [i.name for i in onnx.get_inputs()][1:]
    states = {name: np.zeros([3 if d == "batch" else d for d in result["inputs"][name]], np.float32) for name in names}
    for t in range(ids.shape[1]):
        logits, *new_states = onnx.run(None, {"token": ids[:, t].numpy(), **states})
        assert_close(torch.from_numpy(logits), expected[:, t], **TOLERANCE)
        states = dict(zip(names, new_states, strict=True))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_language_model_step_matches_the_model_over_a_sequence(tmp_path, cell):
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=11, cell=cell, embedding_size=6, hidden_size=8)).eval()
    onnx, result = session(tmp_path, "lm", model)
    assert result["inputs"]["token"] == ["batch"] and result["outputs"]["logits"] == ["batch", 11]
    ids = torch.randint(0, 11, (3, 5))  # batch 3: the export's example had 2
    with torch.no_grad():
        hidden, _ = model(ids)
        expected = model.output(hidden)  # (N, T, V)
    assert_steps_match(onnx, result, ids, expected)


def test_a_language_model_with_a_tied_adaptive_softmax_exports_its_log_probabilities(tmp_path):
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=30, embedding_size=16, hidden_size=8, adaptive_cutoffs=(5, 12))
    model = LanguageModel(config).eval()
    onnx, result = session(tmp_path, "lm", model)
    ids = torch.tensor([[0, 7, 29, 4], [13, 5, 11, 20], [2, 2, 28, 6]])  # every band, batch 3
    with torch.no_grad():
        hidden, _ = model(ids)
        expected = model.log_probs(hidden)  # (N, T, V)
    assert_steps_match(onnx, result, ids, expected)


@pytest.mark.parametrize(("cell", "pooling", "num_layers"), [("lstm", "attention", 2), ("gru", "last", 1),
                                                             ("lstm", "max", 1), ("lstm", "last", 2)])  # fmt: skip
def test_classifier_matches_eager_at_other_batch_and_sequence_sizes(tmp_path, cell, pooling, num_layers):
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=20, num_classes=3, cell=cell, embedding_size=5, hidden_size=6,
                              num_layers=num_layers, pooling=pooling)  # fmt: skip
    model = TextClassifier(config).eval()
    model.temperature.fill_(1.7)
    onnx, result = session(tmp_path, "classify", model)
    # one ONNX recurrent node per layer and direction: its loop runs as long as the input
    assert recurrent_nodes(result["path"]) == [cell.upper()] * 2 * num_layers
    for batch, length in ((4, 9), (1, 3)):
        ids = torch.randint(1, 20, (batch, length))
        lengths = torch.randint(1, length + 1, (batch,))
        lengths[0] = length
        ids[torch.arange(length)[None, :] >= lengths[:, None]] = 0
        logits, probabilities = onnx.run(None, {"ids": ids.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            expected = model(ids, lengths)
        assert_close(torch.from_numpy(logits), expected, **TOLERANCE)
        assert_close(torch.from_numpy(probabilities), (expected / 1.7).softmax(-1), **TOLERANCE)


@pytest.mark.parametrize(("decoder", "num_past", "num_future", "lookbacks"),
                         [("direct", 1, 2, ()), ("autoregressive", 1, 2, ()), ("direct", 0, 0, ()),
                          ("direct", 1, 2, (6, 3))])  # fmt: skip
def test_forecaster_quantiles_match_eager(tmp_path, decoder, num_past, num_future, lookbacks):
    torch.manual_seed(0)
    config = ForecastConfig(num_targets=2, num_past=num_past, num_future=num_future, context_length=6, horizon=3,
                            hidden_size=8, decoder=decoder, linear="learned", lookbacks=lookbacks,
                            ensemble=max(1, len(lookbacks)))  # fmt: skip
    model = ForecastModel(config).eval()
    onnx, _ = session(tmp_path, "forecast", model)
    batch = {
        "target": torch.randn(5, 6, 2),
        "past": torch.randn(5, 6, num_past),
        "future": torch.randn(5, 9, num_future),
    }
    feeds = {i.name: batch[i.name].numpy() for i in onnx.get_inputs()}
    (quantiles,) = onnx.run(None, feeds)
    with torch.no_grad():
        expected = model.forecast(batch)
    assert_close(torch.from_numpy(quantiles), expected, **TOLERANCE)
    # the file says (H, C_y, Q) as numbers, not made-up names a server would take for dynamic sizes
    assert onnx.get_outputs()[0].shape == ["batch", 3, 2, 3]


def test_an_input_the_graph_never_reads_is_not_reported(tmp_path):
    """The exporter drops an unused input (an autoregressive forecaster without covariates reads only
    ``target``); the reply must name what a server has to feed, no more."""
    config = ForecastConfig(context_length=6, horizon=3, hidden_size=8, decoder="autoregressive")
    onnx, result = session(tmp_path, "forecast", ForecastModel(config).eval())
    assert list(result["inputs"]) == [i.name for i in onnx.get_inputs()] == ["target"]


@pytest.mark.parametrize(("cell", "bidirectional"), [("gru", True), ("lstm", True), ("gru", False)])
def test_speech_encoder_matches_eager_at_other_batch_and_lengths(tmp_path, cell, bidirectional):
    torch.manual_seed(0)
    config = SpeechRecognizerConfig(num_mels=12, conv_channels=4, cell=cell, hidden_size=8, num_layers=2,
                                    bidirectional=bidirectional,
                                    normalisation="utterance" if bidirectional else "global")  # fmt: skip
    model = SpeechRecognizer(config).eval()
    onnx, result = session(tmp_path, "asr", model)
    assert result["inputs"]["features"] == ["batch", "time", 12]
    for batch, length in ((3, 57), (1, 9)):
        features = torch.randn(batch, length, 12)
        lengths = torch.randint(5, length + 1, (batch,))
        lengths[0] = length
        features[torch.arange(length)[None, :] >= lengths[:, None]] = 0
        log_probs, frame_lengths = onnx.run(None, {"features": features.numpy(), "lengths": lengths.numpy()})
        with torch.no_grad():
            expected, expected_lengths = model(features, lengths)
        assert_close(torch.from_numpy(frame_lengths), expected_lengths)
        valid = torch.arange(expected.shape[1])[None, :] < expected_lengths[:, None]  # frames past the end: padding
        assert_close(torch.from_numpy(log_probs)[valid], expected[valid], **TOLERANCE)


class LayerOutputs(nn.Module):
    """A layer's output and final ``h`` (and ``c`` without lengths: with them the export leaves it NaN)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        output, h_n = self.layer(x, lengths=lengths)
        h_n = h_n if isinstance(h_n, tuple) else (h_n,)
        return (output, h_n[0]) if lengths is not None else (output, *h_n)


ZONEOUT_LAYERS = {
    "lstm": lambda **kw: rnnkit.LSTM(3, 4, **kw),
    "gru": lambda **kw: rnnkit.GRU(3, 4, **kw),
    "rnn_tanh": lambda **kw: rnnkit.RNN(3, 4, **kw),
    "rnn_relu": lambda **kw: rnnkit.RNN(3, 4, nonlinearity="relu", bias=False, **kw),
}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["plain", "stacked_bidirectional_lengths"])
@pytest.mark.parametrize("kind", ZONEOUT_LAYERS)
def test_a_layer_with_zoneout_exports_its_eval_expectation(tmp_path, kind, with_lengths):
    torch.manual_seed(0)
    options = {"num_layers": 2, "bidirectional": True} if with_lengths else {}
    layer = ZONEOUT_LAYERS[kind](zoneout=0.3, **options).eval()
    module = LayerOutputs(layer).eval()
    example = (torch.randn(5, 2, 3), torch.tensor([5, 3])) if with_lengths else (torch.randn(5, 2, 3),)
    names = ["x", "lengths"][: len(example)]
    axes = {"x": {0: "time", 1: "batch"}, "lengths": {0: "batch"}}
    path = tmp_path / "layer.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes about itself
        torch.onnx.export(module, example, str(path), dynamo=False, input_names=names,
                          dynamic_axes={name: axes[name] for name in names}, opset_version=17)  # fmt: skip
    x, lengths = torch.randn(9, 3, 3), torch.tensor([9, 4, 1])  # other sizes than the example's
    feeds = {"x": x.numpy(), "lengths": lengths.numpy()} if with_lengths else {"x": x.numpy()}
    exported = [torch.from_numpy(a) for a in ort.InferenceSession(str(path)).run(None, feeds)]
    with torch.no_grad():
        expected = module(x, lengths if with_lengths else None)
        plain = ZONEOUT_LAYERS[kind](**options).eval()
        plain.load_state_dict(layer.state_dict())
        assert not torch.allclose(LayerOutputs(plain)(x, lengths if with_lengths else None)[0], expected[0])
    assert_close(exported, list(expected), **TOLERANCE)


def test_every_task_with_a_model_has_a_graph():
    assert set(GRAPHS) >= {"lm", "classify", "forecast", "asr"}


def test_cli_exports_a_run_directory_and_refuses_unknown_formats(tmp_path):
    torch.manual_seed(0)
    run = saved(tmp_path, "lm", LanguageModel(LanguageModelConfig(vocab_size=7, embedding_size=4, hidden_size=4)))
    result = CliRunner().invoke(app, ["export", str(run), "--format", "onnx", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["path"] == str(run / "model.onnx") and (run / "model.onnx").is_file()
    result = CliRunner().invoke(app, ["export", str(run), "--format", "tflite"])
    assert result.exit_code == 2 and "Unknown format 'tflite'" in result.stderr


def test_an_opset_the_exporter_or_the_model_cannot_take_is_one_line_and_stdout_stays_clean(tmp_path, capfd):
    config = ClassifierConfig(vocab_size=9, num_classes=2, embedding_size=4, hidden_size=4, pooling="attention")
    run = saved(tmp_path, "classify", TextClassifier(config))
    result = CliRunner().invoke(app, ["export", str(run), "--opset", "99", "--json"])
    assert result.exit_code == 2 and "--opset must be between 7 and" in result.stderr and result.stdout == ""
    result = CliRunner().invoke(app, ["export", str(run), "--opset", "9", "--json"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "cannot be exported at opset 9" in result.stderr and result.stdout == ""
    assert capfd.readouterr().out == ""  # the exporter's C++ dump of its graph too
