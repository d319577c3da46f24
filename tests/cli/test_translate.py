"""`rnnkit translate` end to end on a tiny TSV: train, eval, run (one sentence, a file, n-best, --plot), all
with --json; each mistake exits 2 with one line."""

import json
import random
import shutil

import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()
TINY = ["--vocab-size", "300", "--hidden-size", "8", "--embedding-size", "8", "--dropout", "0", "--epochs", "1",
        "--batch-size", "32", "--beam", "2", "--quiet", "--device", "cpu"]  # fmt: skip
WORDS = {"Haus": "house", "Hund": "dog", "Katze": "cat", "Baum": "tree", "alt": "old", "groß": "big", "klein": "small"}


def _pairs(n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        noun, adjective = rng.choice(list(WORDS)[:4]), rng.choice(list(WORDS)[4:])
        lines.append(f"Der {noun} ist {adjective} {i}.\tThe {WORDS[noun]} is {WORDS[adjective]} {i}.")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    (folder / "pairs.tsv").write_text(_pairs(150, 0), encoding="utf-8")
    out = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # --pairs as typed in that folder: a relative path
        result = runner.invoke(app, ["translate", "train", "--pairs", "pairs.tsv", "--out", str(out), *TINY,
                                     "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder, out, json.loads(result.stdout)


def test_train_reports_sacrebleu_scores(trained):
    _, out, report = trained
    assert report["task"] == "translate" and report["n"] > 0
    assert {"greedy_bleu", "greedy_chrf", "beam2_bleu", "beam2_chrf"} <= set(report["metrics"])
    assert report["summary"]["test"]["greedy"]["bleu_signature"].startswith("nrefs:1")
    assert (out / "metrics.json").is_file() and (out / "config.json").is_file() and (out / "loss.png").is_file()


def test_eval_on_a_tsv(trained):
    folder, out, _ = trained
    (folder / "more.tsv").write_text(_pairs(20, 1), encoding="utf-8")
    result = runner.invoke(app, ["translate", "eval", str(out), "--pairs", str(folder / "more.tsv"), "--quiet",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 20 and set(report["metrics"]) == {"bleu", "chrf"}
    assert report["report"]["chrf_signature"].startswith("nrefs:1")


def test_eval_without_pairs_finds_the_training_tsv_from_another_directory(trained, tmp_path, monkeypatch):
    folder, out, report = trained
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["translate", "eval", str(out), "--beam", "1", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == report["n"]  # the test split of the training TSV
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["pairs"] == str((folder / "pairs.tsv").resolve())
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    config["data"]["pairs"] = str(tmp_path / "gone.tsv")
    (moved / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["translate", "eval", str(moved), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: the run's training pairs {tmp_path / 'gone.tsv'} are gone; give --pairs FILE.\n"


def test_run_one_sentence_n_best_and_plot(trained):
    folder, out, _ = trained
    png = folder / "attention.png"
    result = runner.invoke(app, ["translate", "run", str(out), "Der Hund ist alt.", "--beam", "3", "--n-best", "3",
                                 "--plot", str(png), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 1 and len(report["translations"][0]["translations"]) == 3
    assert png.is_file() and png.stat().st_size > 1000


def test_run_a_file_keeps_empty_lines_and_warns_on_long_ones(trained):
    folder, out, _ = trained
    lines = folder / "in.txt"
    lines.write_text("Der Baum ist groß.\n\n" + "Hund " * 120 + "\n", encoding="utf-8")
    result = runner.invoke(app, ["translate", "run", str(out), "--input", str(lines), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3 and result.stdout.splitlines()[1] == ""
    assert "line 3 is over 100 subwords; cut there" in result.stderr


def test_plot_of_an_empty_first_line_is_refused_before_any_line_is_translated(trained, monkeypatch):
    folder, out, _ = trained
    lines = folder / "blank-first.txt"
    lines.write_text("\nDer Baum ist groß.\n", encoding="utf-8")

    def translate_texts(*args, **kwargs):
        raise AssertionError("translated before the refusal: the work is lost")

    monkeypatch.setattr("rnnkit.cli.translate.translate_texts", translate_texts)
    result = runner.invoke(app, ["translate", "run", str(out), "--input", str(lines), "--plot",
                                 str(folder / "attention.png"), "--json"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert (
        result.stderr
        == "error: --plot draws the first sentence's attention, but the first line is empty; give a sentence.\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--pairs", "{bad}", "--out", "{run}"], "has 3 tab-separated columns"),
        (["train", "--pairs", "{missing}", "--out", "{run}"], "does not exist"),
        (["train", "--pairs", "ding-de-en", "--direction", "de-fr", "--out", "{run}"], "Unknown direction"),
        (["run", "{trained}", "Hallo.", "--beam", "2", "--n-best", "3"], "--n-best must be between 1 and --beam"),
        (["run", "{trained}", "Hallo.", "--beam", "0"], "--beam must be at least 1"),
        (["run", "{trained}"], "give either one TEXT argument or --input FILE"),
        (["run", "{trained}", "--input", "{latin1}"], "line 1 is not UTF-8"),
        (["run", "{trained}", "--input", "{empty}", "--plot", "{png}"], "has no lines; give a sentence"),
        (["eval", "{missing}"], "is not a directory"),
        (["eval", "{trained}", "--beam", "0"], "--beam must be at least 1"),
    ],
)
def test_mistakes_exit_2_with_one_line(trained, tmp_path, args, message):
    _, out, _ = trained
    (tmp_path / "bad.tsv").write_text("a\tb\tc\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Grüße\n".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    paths = {"{bad}": tmp_path / "bad.tsv", "{missing}": tmp_path / "missing", "{run}": tmp_path / "run",
             "{trained}": out, "{latin1}": tmp_path / "latin1.txt", "{empty}": tmp_path / "empty.txt",
             "{png}": tmp_path / "attention.png"}  # fmt: skip
    result = runner.invoke(app, ["translate", *(str(paths.get(a, a)) for a in args)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_refuses_a_beam_below_1_before_writing_the_run(trained, tmp_path):
    folder, _, _ = trained
    out = tmp_path / "run"
    args = ["translate", "train", "--pairs", str(folder / "pairs.tsv"), "--out", str(out), *TINY, "--beam", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: --beam must be at least 1 (1: greedy decoding), got 0.\n"
    assert not out.exists()
