"""Inspecting task models: the trace of every layer and direction, labels per step, refusals by input kind."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from rnnkit import checkpoint
from rnnkit.data.text import CharTokenizer, WordTokenizer
from rnnkit.errors import RnnkitError
from rnnkit.tasks.classify import ClassifierConfig, TextClassifier
from rnnkit.tasks.inspection import draw_inspection, gradient_flow, inspect_run, to_json
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig


def save_language_model(directory, cell="lstm"):
    tokenizer = CharTokenizer.fit("abcdefgh ")
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, cell=cell, embedding_size=6, hidden_size=5)
    torch.manual_seed(0)
    model = LanguageModel(config)
    checkpoint.save_model(directory, model, {"task": "lm", "model": asdict(config), "tokenizer": tokenizer.to_config()})
    return model


def save_classifier(directory, ensemble=1):
    tokenizer = WordTokenizer(["good", "bad", "film", "a"])
    config = ClassifierConfig(vocab_size=tokenizer.vocab_size, num_classes=2, embedding_size=4, hidden_size=3,
                              num_layers=2, cell="gru", ensemble=ensemble)  # fmt: skip
    torch.manual_seed(0)
    model = TextClassifier(config)
    run_config = {"task": "classify", "model": asdict(config), "tokenizer": tokenizer.to_config(),
                  "classes": ["negative", "positive"]}  # fmt: skip
    checkpoint.save_model(directory, model, run_config)
    return model


def test_language_model_trace_has_every_layer_and_matches_the_model(tmp_path):
    model = save_language_model(tmp_path)
    inspection = inspect_run(tmp_path, text="bad cafe")
    assert inspection.cell == "LSTM" and inspection.input_labels == list("bad cafe")
    assert list(inspection.rows) == ["layer 0", "layer 1"]
    assert set(inspection.rows["layer 0"]) == {"h", "c", "i", "f", "g", "o"}
    assert inspection.rows["layer 0"]["h"].shape == (8, 5) and inspection.rows["layer 1"]["h"].shape == (8, 6)
    # the traced top layer is what the model itself computes (tied: the last layer is embedding-sized)
    ids = torch.tensor([CharTokenizer.fit("abcdefgh ").encode("bad cafe")])
    with torch.no_grad():
        hidden, _ = model.eval()(ids)  # eval: no dropout, as inspect_run's loaded model
    np.testing.assert_allclose(inspection.rows["layer 1"]["h"], hidden[0].numpy(), atol=1e-6)
    assert len(inspection.output_labels) == 8 and inspection.first_input.shape == (8, 1, 6)


def test_classifier_trace_has_both_directions_of_both_layers(tmp_path):
    save_classifier(tmp_path)
    inspection = inspect_run(tmp_path, text="A good film")
    assert list(inspection.rows) == ["layer 0", "layer 0 reverse", "layer 1", "layer 1 reverse"]
    assert inspection.input_labels == ["a", "good", "film"] and inspection.cell == "GRU"
    assert inspection.output_labels[0] in ("negative", "positive") and "predicted" in inspection.summary
    assert set(inspection.rows["layer 1 reverse"]) == {"h", "r", "z", "n"}


def test_an_ensemble_classifier_shows_one_members_layers_not_a_stack_of_all(tmp_path):
    model = save_classifier(tmp_path, ensemble=3)
    inspection = inspect_run(tmp_path, text="A good film")
    assert list(inspection.rows) == ["layer 0", "layer 0 reverse", "layer 1", "layer 1 reverse"]
    ids = torch.tensor([WordTokenizer(["good", "bad", "film", "a"]).encode("a good film")])
    first = model.eval().members[0]  # the rows are its layers, the top one read back from its output
    with torch.no_grad():
        output, _ = first.rnn(first.embedding(ids), lengths=torch.tensor([3]))
    np.testing.assert_allclose(inspection.rows["layer 1"]["h"], output[0, :, :3].numpy(), atol=1e-6)


def test_draws_every_picture_and_dumps_numbers(tmp_path):
    save_language_model(tmp_path, cell="gru")
    inspection = inspect_run(tmp_path, text="abc ab")
    files = draw_inspection(inspection, tmp_path / "pictures")
    assert set(files) == {"unfolded", "states-layer-0", "states-layer-1", "gradient-flow"}
    assert all(path.stat().st_size > 3000 for path in files.values())
    gradients = gradient_flow(inspection)
    assert next(iter(gradients)) == "trained GRU (layer 0)" and all(len(v) == 6 for v in gradients.values())
    report = to_json(inspection, gradients)
    assert report["trace"]["layer 0"]["h"][2] == pytest.approx(inspection.rows["layer 0"]["h"][2].tolist(), abs=1e-6)
    assert report["n"] == 6 and report["input"] == list("abc ab")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [({"wav": "a.wav"}, "an lm run reads --text"), ({"csv": "a.csv"}, "an lm run reads --text"),
     ({}, "an lm run reads --text"), ({"text": ""}, "no tokens")],
)  # fmt: skip
def test_wrong_inputs_are_refused_clearly(tmp_path, inputs, message):
    save_language_model(tmp_path)
    with pytest.raises(RnnkitError, match=message):
        inspect_run(tmp_path, **inputs)


@pytest.mark.parametrize("upsampling", [1, 2])
def test_a_speech_model_is_inspected_on_a_wav_file(tmp_path, upsampling):
    import soundfile

    from rnnkit.tasks.asr import SpeechRecognizer, SpeechRecognizerConfig

    config = SpeechRecognizerConfig(num_mels=16, conv_channels=2, hidden_size=4, num_layers=2, upsampling=upsampling)
    torch.manual_seed(0)
    model = SpeechRecognizer(config)
    checkpoint.save_model(tmp_path / "run", model, {"task": "asr", "model": asdict(config)})
    seconds = np.arange(16_000) / 16_000  # one second of a 440 Hz tone with some noise
    audio = 0.3 * np.sin(2 * np.pi * 440 * seconds) + 0.01 * np.random.default_rng(0).standard_normal(16_000)
    soundfile.write(tmp_path / "tone.wav", audio, 16_000)
    inspection = inspect_run(tmp_path / "run", wav=tmp_path / "tone.wav")
    assert inspection.task == "asr" and inspection.cell == "GRU"
    assert list(inspection.rows) == ["layer 0", "layer 0 reverse", "layer 1", "layer 1 reverse"]
    steps = inspection.rows["layer 0"]["h"].shape[0]
    assert steps == 25  # 100 frames of 10 ms, subsampled 4x
    assert inspection.input_labels[:2] == ["0.00s", "0.04s"] and len(inspection.output_labels) == steps
    # each 40 ms frame's likeliest symbols, one per CTC output frame it writes
    assert all(len(label) == upsampling for label in inspection.output_labels)
    assert set("".join(inspection.output_labels)) <= {"_", *config.alphabet}


def test_a_speech_models_report_draws_it_on_a_wav_and_remembers_the_file(tmp_path, monkeypatch):
    import soundfile

    from rnnkit.tasks.asr import SpeechRecognizer, SpeechRecognizerConfig
    from rnnkit.tasks.report import write_report

    config = SpeechRecognizerConfig(num_mels=16, conv_channels=2, hidden_size=4, num_layers=1)
    checkpoint.save_model(tmp_path / "run", SpeechRecognizer(config), {"task": "asr", "model": asdict(config)})
    monkeypatch.chdir(tmp_path)
    soundfile.write("tone.wav", 0.3 * np.sin(np.arange(8_000) / 5), 16_000)
    page = write_report(tmp_path / "run", wav="tone.wav").read_text()
    assert "the file " + str(tmp_path / "tone.wav") in page and "data:image/png;base64," in page
    (tmp_path / "run" / "inspect" / "unfolded.png").unlink()
    monkeypatch.chdir(tmp_path / "run")
    write_report(tmp_path / "run")  # the remembered sample, found from anywhere
    assert (tmp_path / "run" / "inspect" / "unfolded.png").is_file()
