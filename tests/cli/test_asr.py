"""`rnnkit asr` end to end on a tiny synthesised corpus: make-data, train (bidirectional and streaming),
transcribe (--json, --stream), eval; bad files are skipped and counted, mistakes exit 2 in one line."""

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from rnnkit.cli import app

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("flite") is None,
    reason="espeak-ng and flite are needed to synthesise the test corpus (apt-get install espeak-ng flite)",
)
runner = CliRunner()
TINY = ["--hidden-size", "8", "--layers", "1", "--conv-channels", "4", "--epochs", "1", "--batch-size", "8",
        "--warmup", "0", "--quiet", "--device", "cpu", "--json"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    args = ["asr", "make-data", "--texts", "digits", "--n", "20", "--jobs", "1", "--out", str(out), "--quiet", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["utterances"] == 20 and summary["failed"] == 0
    return out


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["asr", "train", "--manifest", str(corpus), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_train_writes_the_run_and_scores_the_test_split(trained):
    out, payload = trained
    assert payload["task"] == "asr" and {"wer", "cer"} <= set(payload["metrics"])
    for name in ("config.json", "model.safetensors", "metrics.json", "log.csv", "char_lm.json", "word_lm.json",
                 "loss.png"):  # fmt: skip
        assert (out / name).is_file(), name


def test_resume_without_a_run_writes_nothing(corpus, tmp_path):
    out = tmp_path / "new"
    result = runner.invoke(app, ["asr", "train", "--manifest", str(corpus), "--out", str(out), *TINY, "--resume"])
    assert result.exit_code == 2 and f"nothing to resume in {out}" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_transcribe_json_has_text_timings_and_words_and_skips_bad_files(trained, corpus, tmp_path):
    out, _ = trained
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    wavs = sorted((corpus / "wavs").glob("*.wav"))[:2]
    result = runner.invoke(app, ["asr", "transcribe", str(out), *map(str, wavs), str(bad), "--beam", "4", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n"] == 2 and list(payload["skipped"]) == [str(bad)]
    first = payload["results"][0]
    assert {"text", "duration", "seconds", "words", "real_time_factor"} <= set(first)
    assert all(0 <= w["start"] <= w["end"] <= first["duration"] + 0.05 for w in first["words"])
    plain = runner.invoke(app, ["asr", "transcribe", str(out), str(wavs[0])])
    assert plain.exit_code == 0 and len(plain.stdout.splitlines()) == 1


def test_transcribe_with_no_readable_file_exits_2(trained, tmp_path):
    out, _ = trained
    result = runner.invoke(app, ["asr", "transcribe", str(out), str(tmp_path / "missing.wav")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "does not exist" in result.stderr
    stream = runner.invoke(app, ["asr", "transcribe", str(out), str(tmp_path / "x.wav"), "--stream"])
    assert stream.exit_code == 2 and "bidirectional" in stream.stderr


def test_a_chunk_size_without_stream_is_refused(trained, corpus):
    # the whole file is read at once without --stream: the chunk size was silently ignored
    out, _ = trained
    wav = str(sorted((corpus / "wavs").glob("*.wav"))[0])
    result = runner.invoke(app, ["asr", "transcribe", str(out), wav, "--chunk-ms", "200"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: --chunk-ms sets the chunks of --stream; add --stream, or drop --chunk-ms.\n"


def test_eval_reports_greedy_and_beam_rates(trained, corpus):
    out, _ = trained
    args = ["asr", "eval", str(out), "--manifest", str(corpus), "--split", "all", "--beam", "4", "--lm-weight", "0.5"]
    result = runner.invoke(app, [*args, "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n"] == 20 and set(payload["report"]["decoders"]) == {"greedy", "beam"}
    assert set(payload["report"]["decoders"]["beam"]["by_engine"]) <= {"espeak-ng", "flite"}
    assert 0 <= payload["metrics"]["cer"]
    wrong = runner.invoke(app, ["asr", "eval", str(out), "--manifest", str(corpus), "--split", "dev"])
    assert wrong.exit_code == 2 and "Unknown split" in wrong.stderr
    words = runner.invoke(app, [*args, "--word-weight", "0.5", "--quiet", "--json"])
    assert words.exit_code == 0, words.output
    assert "word 3-gram (weight 0.5)" in json.loads(words.stdout)["report"]["decoders"]["beam"]["decoder"]
    alone = runner.invoke(app, ["asr", "eval", str(out), "--manifest", str(corpus), "--word-weight", "0.5"])
    assert alone.exit_code == 2 and "--word-weight needs" in alone.stderr


def test_lm_options_without_a_beam_are_refused(trained, corpus, tmp_path):
    out, _ = trained
    wav = str(sorted((corpus / "wavs").glob("*.wav"))[0])
    evaluate = ["asr", "eval", str(out), "--manifest", str(corpus), "--split", "all", "--beam", "0"]
    transcribe = ["asr", "transcribe", str(out), wav]  # greedy by default
    for args in ([*evaluate, "--lm-weight", "0.5"], [*evaluate, "--word-weight", "0.5"],
                 [*transcribe, "--lm-weight", "0.5"], [*transcribe, "--lm", str(tmp_path)],
                 [*transcribe, "--lm-bonus", "1.5"]):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "act in beam search only; add --beam N" in result.stderr, args
    greedy = runner.invoke(app, [*evaluate, "--quiet", "--json"])
    assert greedy.exit_code == 0, greedy.output
    assert set(json.loads(greedy.stdout)["report"]["decoders"]) == {"greedy"}


def test_eval_and_transcribe_fuse_a_recurrent_char_lm(trained, corpus, tmp_path):
    out, _ = trained
    text = tmp_path / "sentences.txt"
    text.write_text("".join(f"{t}\n" for t in pd.read_csv(corpus / "manifest.csv")["text"]) * 3)
    lm_run = tmp_path / "lm"
    lm_args = ["lm", "train", "--data", str(text), "--tokenizer", "char", "--out", str(lm_run), "--epochs", "1",
               "--hidden-size", "16", "--embedding-size", "8", "--batch-size", "4", "--window", "16",
               "--quiet"]  # fmt: skip
    assert runner.invoke(app, lm_args).exit_code == 0
    args = ["asr", "eval", str(out), "--manifest", str(corpus), "--split", "all", "--beam", "4", "--lm-weight", "0.5"]
    result = runner.invoke(app, [*args, "--lm", str(lm_run), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert "recurrent char LM" in json.loads(result.stdout)["report"]["decoders"]["beam"]["decoder"]
    wav = str(sorted((corpus / "wavs").glob("*.wav"))[0])
    spoken = runner.invoke(
        app, ["asr", "transcribe", str(out), wav, "--beam", "4", "--lm-weight", "0.5", "--lm", str(lm_run)]
    )
    assert spoken.exit_code == 0 and len(spoken.stdout.splitlines()) == 1
    both = runner.invoke(app, [*args, "--lm", str(lm_run), "--word-weight", "0.5", "--quiet", "--json"])
    assert both.exit_code == 0, both.output
    described = json.loads(both.stdout)["report"]["decoders"]["beam"]["decoder"]
    assert "recurrent char LM" in described and "word 3-gram" in described
    not_an_lm = runner.invoke(app, [*args, "--lm", str(out)])
    assert not_an_lm.exit_code == 2 and "not a language model" in not_an_lm.stderr


def test_streaming_model_transcribes_a_file_chunk_by_chunk(corpus, tmp_path):
    out = tmp_path / "stream-run"
    lm_text = tmp_path / "more.txt"
    lm_text.write_text("Quixotic ZEBRAS!\n\n", encoding="utf-8")
    args = ["asr", "train", "--manifest", str(corpus), "--out", str(out), "--streaming", *TINY]
    missing = runner.invoke(app, [*args, "--lm-text", str(tmp_path / "none.txt")])
    assert missing.exit_code == 2 and "cannot read the LM text" in missing.stderr and not out.exists()
    too_fast = runner.invoke(app, [*args, "--speed-perturb", "0.6"])
    assert too_fast.exit_code == 2 and "--speed-perturb must be in [0, 0.5)" in too_fast.stderr and not out.exists()
    warped = runner.invoke(app, [*args, "--freq-warp", "-0.1"])
    assert warped.exit_code == 2 and "--freq-warp must be in [0, 0.5)" in warped.stderr and not out.exists()
    result = runner.invoke(app, [*args, "--lm-text", str(lm_text), "--speed-perturb", "0.1"])
    assert result.exit_code == 0, result.output
    assert {"quixo", "zebra"} <= set(json.loads((out / "char_lm.json").read_text())["counts"])  # 5-char histories
    assert "zebras" in json.loads((out / "word_lm.json").read_text())["counts"]["quixotic"]
    wav = str(pd.read_csv(corpus / "manifest.csv")["path"][0])
    streamed = runner.invoke(app, ["asr", "transcribe", str(out), str(corpus / wav), "--stream", "--chunk-ms", "200",
                                   "--json"])  # fmt: skip
    assert streamed.exit_code == 0, streamed.output
    result = json.loads(streamed.stdout)["results"][0]
    assert result["chunks"] >= 3 and "text" in result
    # off a terminal the text so far is not redrawn on stderr (a log would keep every redraw): stdout alone
    plain = runner.invoke(app, ["asr", "transcribe", str(out), str(corpus / wav), "--stream", "--chunk-ms", "200"])
    assert plain.exit_code == 0, plain.output
    assert plain.stderr == "" and plain.stdout == result["text"] + "\n"
