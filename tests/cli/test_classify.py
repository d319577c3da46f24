"""`rnnkit classify` end to end on a tiny CSV: train, eval, predict (+ --explain); each mistake exits 2 in one line."""

import json
import random
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()
TINY = ["--vectors", "random", "--pooling", "max", "--hidden-size", "8", "--embedding-size", "8", "--dropout", "0",
        "--epochs", "6", "--lr", "0.02", "--batch-size", "16", "--quiet", "--device", "cpu"]  # fmt: skip
POSITIVE, NEGATIVE = ["good", "great", "fun", "lovely"], ["bad", "awful", "dull", "boring"]
FILLER = ["the", "film", "was", "a", "plot", "and", "it", "very"]


def _reviews(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "pos" else NEGATIVE))
        rows.append({"review": " ".join(words) + f" #{i}", "stars": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csv")
    _reviews(300, 0).to_csv(folder / "train.csv", index=False)
    _reviews(60, 1).to_csv(folder / "more.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["classify", "train", "--csv", str(files / "train.csv"), "--text-col", "review", "--label-col", "stars"]
    result = runner.invoke(app, [*args, "--out", str(out), *TINY, "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_learns_the_keywords_and_writes_its_files(trained):
    out, payload = trained
    assert payload["task"] == "classify" and payload["n"] == payload["summary"]["sizes"]["test"]
    assert payload["metrics"]["accuracy"] >= 0.9
    assert {"ece", "macro_f1", "nll"} <= set(payload["metrics"])
    for name in ("config.json", "model.safetensors", "metrics.json", "confusion.png", "log.csv", "report.html"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["neg", "pos"] and metrics["temperature"] > 0


def test_eval_reports_metrics_and_draws_the_confusion_matrix(trained, files):
    out, _ = trained
    args = ["classify", "eval", str(out), "--csv", str(files / "more.csv"), "--text-col", "review"]
    result = runner.invoke(app, [*args, "--label-col", "stars", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n"] == 60 and payload["metrics"]["accuracy"] >= 0.85
    assert set(payload["report"]["per_class"]) == {"neg", "pos"}
    assert (out / "confusion-eval.png").is_file()
    text = runner.invoke(app, [*args, "--label-col", "stars", "--quiet"])
    assert text.exit_code == 0 and "macro-F1" in text.stdout and "precision" in text.stdout


def test_predict_one_text_and_a_csv(trained, files):
    out, _ = trained
    result = runner.invoke(app, ["classify", "predict", str(out), "the film was lovely", "--json"])
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.stdout)["predictions"][0]
    assert prediction["label"] == "pos" and sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    args = ["classify", "predict", str(out), "--csv", str(files / "more.csv"), "--text-col", "review"]
    table = runner.invoke(app, [*args, "--quiet"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.strip().splitlines()
    assert lines[0] == "review,label,p_neg,p_pos" and len(lines) == 61


def test_predict_explain_prints_attributions_and_draws_them(trained, tmp_path):
    out, _ = trained
    png = tmp_path / "why.png"
    args = ["classify", "predict", str(out), "it was a boring film", "--explain", "--png", str(png)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)["predictions"][0]
    assert explained["method"] == "integrated-gradients" and explained["label"] == "neg"
    scores = dict(zip(explained["tokens"], explained["attributions"], strict=True))
    assert max(scores, key=scores.get) == "boring"  # the keyword drives the prediction
    assert png.is_file()
    text = runner.invoke(app, args)
    assert text.exit_code == 0 and "why (integrated-gradients): " in text.stdout
    # off a terminal the colours are dropped, so each word carries its score (it was the bare words)
    assert f"boring({scores['boring']:+.2f})" in text.stdout


def test_attention_pooling_explains_with_its_weights(files, tmp_path):
    # an ensemble of two: its attention weights are the members' mean, so they still sum to 1
    args = ["classify", "train", "--csv", str(files / "train.csv"), "--text-col", "review", "--label-col", "stars"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), *TINY, "--pooling", "attention", "--epochs", "2",
                                 "--word-dropout", "0.1", "--freeze-embeddings", "--ensemble", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "config.json").read_text())["model"]["ensemble"] == 2
    explained = runner.invoke(app, ["classify", "predict", str(tmp_path), "a fun plot", "--explain", "--json"])
    payload = json.loads(explained.stdout)["predictions"][0]
    assert payload["method"] == "attention" and sum(payload["attributions"]) == pytest.approx(1, abs=1e-5)


def _error(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_files_exit_2_in_one_line(files, tmp_path, trained):
    out, _ = trained
    train = ["classify", "train", "--out", str(tmp_path / "run"), *TINY, "--csv"]
    assert "no column 'label'" in _error([*train, str(files / "train.csv"), "--text-col", "review"])
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"text": ["good", ""], "label": ["a", "b"]}).to_csv(empty, index=False)
    assert "empty text" in _error([*train, str(empty)])
    one = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": ["a"] * 30}).to_csv(one, index=False)
    assert "only one class" in _error([*train, str(one)])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,a\nbar,b\n".encode("latin-1"))
    assert "not valid UTF-8" in _error([*train, str(latin)])
    unseen = tmp_path / "unseen.csv"
    pd.DataFrame({"review": ["good film", "so so"], "stars": ["pos", "meh"]}).to_csv(unseen, index=False)
    evaluate = ["classify", "eval", str(out), "--csv", str(unseen), "--text-col", "review", "--label-col", "stars"]
    assert "not trained on: 'meh'" in _error(evaluate)
    assert "either --data" in _error(["classify", "train", "--out", str(tmp_path / "r"), *TINY])
    assert "either one TEXT" in _error(["classify", "predict", str(out)])


def test_resume_with_other_classes_is_refused_and_the_run_kept(files, trained, tmp_path):
    # the resumed model's outputs are the run's classes: a third class crashed in the loss, renamed ones were
    # silently taken for the run's in sorted order
    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = (run / "model.safetensors").read_bytes()
    frame = pd.read_csv(files / "train.csv")
    renamed, third = frame.replace({"stars": {"pos": "yes", "neg": "no"}}), frame.copy()
    third.loc[::5, "stars"] = "meh"
    for name, data in (("renamed", renamed), ("third", third)):
        data.to_csv(tmp_path / f"{name}.csv", index=False)
        args = ["classify", "train", "--csv", str(tmp_path / f"{name}.csv"), "--text-col", "review", "--label-col",
                "stars", "--out", str(run), *TINY, "--epochs", "8", "--resume"]  # fmt: skip
        assert "resume with the labels it was trained on" in _error(args)
    assert (run / "model.safetensors").read_bytes() == before


def test_predict_png_without_explain_is_refused(trained, tmp_path):
    out, _ = trained
    png = tmp_path / "why.png"
    line = _error(["classify", "predict", str(out), "good film", "--png", str(png)])
    assert line == "error: --png draws the --explain attributions; add --explain."
    assert not png.exists()


def test_train_from_a_classifier_pairs_its_classes_with_ours(files, trained, tmp_path):
    out, _ = trained
    renamed = pd.read_csv(files / "more.csv").replace({"stars": {"pos": "liked", "neg": "disliked"}})
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    train = ["classify", "train", "--csv", str(tmp_path / "renamed.csv"), "--text-col", "review", "--label-col",
             "stars", *TINY, "--epochs", "1", "--lr", "1e-4"]  # fmt: skip
    result = runner.invoke(app, [*train, "--out", str(tmp_path / "run"), "--init-from", str(out),
                                 "--init-classes", "pos=liked,neg=disliked", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # the source already knows these words: barely trained, it keeps its accuracy under the new names
    assert json.loads(result.stdout)["metrics"]["accuracy"] >= 0.8
    assert "no source class for disliked" in _error(
        [*train, "--out", str(tmp_path / "r2"), "--init-from", str(out), "--init-classes", "pos=liked"]
    )
    assert "needs --init-from" in _error([*train, "--out", str(tmp_path / "r3"), "--init-classes", "pos=liked"])
