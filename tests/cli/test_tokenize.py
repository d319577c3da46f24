"""`rnnkit data tokenize` then `rnnkit lm train --data FILE.tokens` and `lm eval` on it, end to end."""

import json

import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

runner = CliRunner()


def test_tokenize_jsonl_then_train_and_evaluate_from_the_token_file(tmp_path):
    records = [{"text": f"doc {i}: the quick brown fox jumps over the lazy dog.", "id": i} for i in range(300)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    tokens = tmp_path / "corpus.tokens"
    result = runner.invoke(app, ["data", "tokenize", str(tmp_path / "train.jsonl"), "--out", str(tokens),
                                 "--holdout", "0.05", "--quiet", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == sum(len(r["text"]) + 1 for r in records) and report["dtype"] == "uint16"
    assert report["peak_rss_mb"] > 0

    out = tmp_path / "run"
    tiny = ["--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--window", "16", "--epochs", "1"]
    result = runner.invoke(app, ["lm", "train", "--data", str(tokens), "--out", str(out), *tiny, "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    steps = report["metrics"]["test_tokens"] // 8  # 8 evaluation streams
    assert trained["n"] == 8 * (steps - 1)  # the test split, read from the file
    assert 0 < trained["metrics"]["bits_per_token"] < 7

    result = runner.invoke(app, ["lm", "eval", str(out), "--data", str(tokens), "--split", "valid", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["loss"] == pytest.approx(trained["summary"]["best_valid"], rel=1e-5)

    result = runner.invoke(app, ["data", "tokenize", str(tmp_path / "missing.jsonl"), "--out", str(tokens)])
    assert result.exit_code == 2 and "neither a file nor a directory" in result.stderr


def test_an_out_that_is_a_directory_is_named_before_the_corpus_is_read(tmp_path):
    (tmp_path / "a.txt").write_text("one two\nthree four\n")
    result = runner.invoke(app, ["data", "tokenize", str(tmp_path / "a.txt"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"--out {tmp_path} is a directory; give the token file's name" in result.stderr
