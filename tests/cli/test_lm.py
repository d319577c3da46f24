"""`rnnkit lm` end to end on a tiny text file: train, resume, eval, generate; mistakes exit 2."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()
TINY = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--window", "16", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "verse.txt"
    path.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 40, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(
        app, ["lm", "train", "--data", str(corpus), "--out", str(out), "--epochs", "2", *TINY, "--json"]
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_reports_held_out_metrics_as_one_json_object(trained):
    out, report = trained
    assert report["task"] == "lm" and report["n"] > 0
    assert 0 < report["metrics"]["bits_per_token"] < 8 and report["metrics"]["unit"] == "char"  # as lm eval
    for name in ("config.json", "model.safetensors", "metrics.json", "log.csv", "loss.png", "report.html"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["test"] == report["metrics"]


def test_eval_scores_a_file(trained, corpus):
    out, _ = trained
    result = runner.invoke(app, ["lm", "eval", str(out), "--data", str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"task", "metrics", "n"} and report["metrics"]["perplexity"] > 1
    quiet = runner.invoke(app, ["lm", "eval", str(out), "--data", str(corpus), "--quiet", "--json"])
    assert quiet.exit_code == 0 and json.loads(quiet.stdout)["metrics"] == report["metrics"]
    plain = runner.invoke(app, ["lm", "eval", str(out), "--data", str(corpus), "--quiet"])
    assert plain.exit_code == 0 and " bits/char, perplexity " in plain.stdout  # a character model's unit


def test_dynamic_evaluation_adapts_to_a_repetitive_file(trained, corpus):
    out, _ = trained
    scores = {}
    for flags in ([], ["--dynamic-lr", "0.05"]):
        result = runner.invoke(app, ["lm", "eval", str(out), "--data", str(corpus), "--window", "16", *flags, "--json"])
        assert result.exit_code == 0, result.output
        scores[bool(flags)] = json.loads(result.stdout)["metrics"]
    assert scores[True]["dynamic"] and scores[True]["tokens"] == scores[False]["tokens"]
    assert scores[True]["loss"] < scores[False]["loss"]


def test_generate_prints_text_from_the_prime_vocabulary(trained):
    out, _ = trained
    result = runner.invoke(app, ["lm", "generate", str(out), "--prime", "ROMEO:", "--length", "40", "--json"])
    assert result.exit_code == 0, result.output
    text = json.loads(result.stdout)["text"]
    assert len(text) == 40 and set(text) <= set("ROMEO:\nBut soft, what light through yonder window breaks?\ufffd")


def test_a_character_model_never_generates_its_unknown_character(trained):
    # no training target is the unknown character, but at a high temperature a small model would draw it often
    out, _ = trained
    args = ["lm", "generate", str(out), "--length", "300", "--temperature", "5", "--json"]
    texts = [json.loads(runner.invoke(app, [*args, "--seed", str(seed)]).stdout)["text"] for seed in range(3)]
    assert all(len(text) == 300 and "\ufffd" not in text for text in texts)


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_generate_prints_the_continuation_after_the_prime_with_the_tokenizers_separator(
    corpus, trained, tmp_path, kind
):
    out = trained[0] if kind == "char" else tmp_path / kind
    if kind != "char":
        train = ["lm", "train", "--data", str(corpus), "--tokenizer", kind, "--out", str(out), *TINY, "--epochs", "1"]
        assert runner.invoke(app, train).exit_code == 0
    args = ["lm", "generate", str(out), "--prime", "But", "--length", "8"]
    continuation = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["text"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    if kind == "word":  # words are spaced from the prime as from each other, and a line end starts a line
        assert result.stdout == "But" + ("" if continuation.startswith("\n") else " ") + continuation + "\n"
    else:  # as before: the continuation reads on from the prime
        assert result.stdout == "But" + continuation + "\n"


def test_a_word_model_after_a_prime_ending_in_a_space_prints_one_space(corpus, tmp_path):
    out = tmp_path / "word"
    train = ["lm", "train", "--data", str(corpus), "--tokenizer", "word", "--out", str(out), *TINY, "--epochs", "1"]
    assert runner.invoke(app, train).exit_code == 0
    for seed in range(3):
        args = ["lm", "generate", str(out), "--prime", "But ", "--length", "8", "--seed", str(seed)]
        continuation = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["text"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stdout == "But " + continuation + "\n" and "  " not in result.stdout


def test_generate_prints_a_character_split_over_byte_level_subwords_once_it_is_whole(corpus, tmp_path):
    # a barely trained byte-level model samples single bytes, halves of UTF-8 characters: the first half decodes
    # as U+FFFD, and printing it at once left the U+FFFD in place of the character the second half completes
    out = tmp_path / "subword"
    train = ["lm", "train", "--data", str(corpus), "--tokenizer", "subword", "--out", str(out), *TINY, "--epochs", "1"]
    assert runner.invoke(app, train).exit_code == 0
    for seed in range(4):
        args = ["lm", "generate", str(out), "--prime", "But", "--length", "30", "--temperature", "3"]
        continuation = json.loads(runner.invoke(app, [*args, "--seed", str(seed), "--json"]).stdout)["text"]
        result = runner.invoke(app, [*args, "--seed", str(seed)])
        assert result.exit_code == 0, result.output
        assert result.stdout == "But" + continuation + "\n", seed


def test_resume_continues_a_finished_run_to_more_epochs(trained, corpus):
    out, _ = trained
    result = runner.invoke(
        app, ["lm", "train", "--data", str(corpus), "--out", str(out), "--epochs", "3", *TINY, "--resume", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["epochs_completed"] == 3


def test_resume_rebuilds_the_runs_own_model_whatever_the_model_flags_say(corpus, tmp_path):
    """The flags describe a new run: taken on --resume they would change the run silently, or not fit it."""
    base = ["lm", "train", "--data", str(corpus), "--out", str(tmp_path), *TINY]
    first = runner.invoke(app, [*base, "--epochs", "1", "--cell", "gru", "--layers", "1", "--dropout", "0.3"])
    assert first.exit_code == 0, first.output
    result = runner.invoke(app, [*base, "--epochs", "2", "--resume", "--json"])  # the flags' defaults: lstm, 2 layers
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "config.json").read_text())["model"]
    assert (model["cell"], model["num_layers"], model["output_dropout"]) == ("gru", 1, 0.3)
    assert json.loads(result.stdout)["summary"]["epochs_completed"] == 2


def test_resume_with_other_data_options_is_refused_and_the_run_kept(trained, corpus):
    """The saved position indexes the run's own batches: another --window would continue another run silently."""
    out, _ = trained
    before = {name: (out / name).read_bytes() for name in ("config.json", "model.safetensors")}
    other = [*TINY[:-3], "--window", "8", "--quiet"]
    result = runner.invoke(app, ["lm", "train", "--data", str(corpus), "--out", str(out), "--epochs", "9", *other,
                                 "--resume"])  # fmt: skip
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "was started with window 16, this command gives 8" in result.stderr, result.stderr
    assert {name: (out / name).read_bytes() for name in before} == before


def test_resume_refuses_another_tasks_run_an_empty_directory_and_overwrite_before_any_work(corpus, tmp_path):
    run = tmp_path / "forecast"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format": 1, "task": "forecast", "model": {}}))
    (run / "trainer_state").mkdir()
    (run / "trainer_state" / "resume.safetensors").write_bytes(b"")
    base = ["lm", "train", "--data", str(corpus), *TINY, "--resume"]
    cases = [
        (run, [], "holds a forecast run, not an lm one; --resume continues a run of the same task"),
        (tmp_path / "empty", [], "nothing to resume in"),
        (tmp_path / "empty", ["--overwrite"], "--resume continues the run in --out and --overwrite replaces it"),
    ]
    for out, more, message in cases:
        result = runner.invoke(app, [*base, "--out", str(out), *more])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.output
    assert not (tmp_path / "empty").exists() and sorted(p.name for p in run.iterdir()) == [
        "config.json",
        "trainer_state",
    ]


def test_a_file_with_short_held_out_parts_trains_on_fewer_evaluation_rows(tmp_path):
    # 40 lines: the valid and test parts are two lines, 8 words, too few for the 8 rows evaluation reads
    (tmp_path / "short.txt").write_text("the cat sat.\n" * 40, encoding="utf-8")
    args = ["lm", "train", "--data", str(tmp_path / "short.txt"), "--tokenizer", "word", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, *TINY, "--batch-size", "2", "--window", "8", "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] > 0


def test_a_word_model_with_a_tied_adaptive_softmax_trains_and_generates(corpus, tmp_path):
    out = tmp_path / "adaptive"
    words = ["--tokenizer", "word", "--adaptive-cutoffs", "4,8", "--embedding-size", "16", "--epochs", "1"]
    result = runner.invoke(app, ["lm", "train", "--data", str(corpus), "--out", str(out), *TINY, *words, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["perplexity"] > 1
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["adaptive_cutoffs"] == [4, 8] and config["tie_weights"]
    result = runner.invoke(app, ["lm", "generate", str(out), "--prime", "ROMEO:", "--length", "5", "--json"])
    assert result.exit_code == 0, result.output


def test_glove_vectors_start_the_embedding_rows_of_the_words_glove_knows(corpus, tmp_path, monkeypatch):
    from rnnkit.tasks import lm_training
    from rnnkit.tasks.lm_training import LanguageModelData, train_language_model
    from rnnkit.train import TrainConfig

    glove = {"what": np.full(8, 0.5, dtype=np.float32), "light": np.arange(8, dtype=np.float32)}
    monkeypatch.setattr(lm_training, "glove_vectors", lambda words: {w: v for w, v in glove.items() if w in words})
    started = {}
    original = lm_training.load_glove

    def recording(model, tokenizer):
        count = original(model, tokenizer)
        rows = model.embedding.weight.detach()
        started.update({w: rows[tokenizer.encode(w)[0]].clone() for w in [*glove, "through"]})
        return count

    monkeypatch.setattr(lm_training, "load_glove", recording)
    monkeypatch.setattr(lm_training, "GLOVE_SIZE", 8)
    options = LanguageModelData(data=str(corpus), tokenizer="word", batch_size=4, window=8, vectors="glove")
    model = {"embedding_size": 8, "hidden_size": 8, "num_layers": 1, "tie_weights": False}
    train_language_model(options, model, TrainConfig(epochs=1, quiet=True), tmp_path / "run")
    for word, vector in glove.items():
        assert torch.equal(started[word], torch.from_numpy(vector))
    assert not torch.equal(started["through"], torch.zeros(8))  # unknown to GloVe: the random start stays


def test_train_refuses_a_tokenizer_other_than_the_token_files(corpus, tmp_path):
    tokens = tmp_path / "c.tokens"
    result = runner.invoke(app, ["data", "tokenize", str(corpus), "--tokenizer", "char", "--out", str(tokens),
                                 "--holdout", "0.1", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    train = ["lm", "train", "--data", str(tokens), *TINY, "--epochs", "1"]
    result = runner.invoke(app, [*train, "--tokenizer", "word", "--out", str(tmp_path / "word")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {tokens} holds char tokens, not word; drop --tokenizer")
    assert not (tmp_path / "word").exists()
    from rnnkit.tasks.lm_training import LanguageModelData, token_streams

    same = LanguageModelData(data=str(tokens), tokenizer="char", batch_size=4, window=16)
    assert token_streams(same)[0].kind == "char"  # the file's own kind is fine


def test_a_file_whose_valid_part_is_one_token_is_refused_by_naming_that_part(tmp_path):
    # the cut gives the valid part the single character "y": batchify's message spoke of batch_size=1 and asked
    # for a smaller batch size, which no --batch-size can give
    (tmp_path / "s.txt").write_text("the cat sat on the mat and the dog sat on the log\nyes\n", encoding="utf-8")
    args = ["lm", "train", "--data", str(tmp_path / "s.txt"), "--out", str(tmp_path / "run"), *TINY, "--epochs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: the valid part of {tmp_path / 's.txt'} is 1 char token(s) long ('y'); scoring " \
        "needs at least 2: give a longer file.\n"  # fmt: skip
    assert not (tmp_path / "run").exists()


WORD_GLOVE = ["lm", "train", "--data", "{corpus}", "--tokenizer", "word", "--vectors", "glove"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["lm", "train", "--data", "no/such/file.txt", "--out", "x"], "neither a built-in corpus"),
        (["lm", "train", "--data", "{corpus}", "--tokenizer", "bytes", "--out", "x"], "Unknown tokenizer 'bytes'"),
        (["lm", "train", "--data", "{corpus}", "--cell", "mlp", "--out", "x"], "Unknown cell 'mlp'"),
        (["lm", "train", "--data", "{corpus}", "--adaptive-cutoffs", "4;8", "--out", "x"], "whole numbers separated"),
        (["lm", "train", "--data", "{corpus}", "--adaptive-cutoffs", "8,4", "--out", "x"], "must increase"),
        (["lm", "train", "--data", "{corpus}", "--adaptive-cutoffs", "2,4,6,8,10", "--out", "x"], "rounds to 0"),
        (["lm", "train", "--data", "{corpus}", "--vectors", "word2vec", "--out", "x"], "Unknown vectors 'word2vec'"),
        (["lm", "train", "--data", "{corpus}", "--vectors", "glove", "--out", "x"], "use --tokenizer word"),
        ([*WORD_GLOVE, "--out", "x"], "use --embedding-size 50"),
        ([*WORD_GLOVE, "--embedding-size", "50", "--adaptive-cutoffs", "4,8", "--out", "x"], "--no-tie"),
        (["lm", "eval", "no/such/run"], "is not a directory"),
        (["lm", "eval", "{run}", "--data", "{corpus}", "--dynamic-lr", "-1"], "learning_rate > 0"),
        (["lm", "eval", "{run}", "--data", "{corpus}", "--dynamic-decay", "0.5"], "add --dynamic-lr"),
        (["lm", "eval", "{run}", "--data", "shakespeare", "--split", "dev"], "Unknown split 'dev'"),
        (["lm", "eval", "{run}", "--data", "{corpus}", "--split", "bogus"], "Unknown split 'bogus'"),
        (["data", "fetch", "gutenberg"], "Unknown corpus 'gutenberg'"),
        (["lm", "generate", "{run}", "--temperature", "0"], "temperature > 0"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(arguments, message, corpus, trained, tmp_path):
    arguments = [a.format(corpus=corpus, run=trained[0]) for a in arguments]
    arguments = [str(tmp_path / "x") if a == "x" else a for a in arguments]
    result = runner.invoke(app, [*arguments, "--quiet"] if arguments[1] == "train" else arguments)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_refused_generation_prints_no_text(trained):
    """The prime is echoed only once the sampling arguments are accepted."""
    result = runner.invoke(app, ["lm", "generate", str(trained[0]), "--prime", "ROMEO:", "--length", "-5"])
    assert result.exit_code == 2 and "length >= 0" in result.stderr
    assert result.stdout == ""
