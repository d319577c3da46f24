"""``rnnkit asr make-data | train | eval | transcribe``: speech recognition on a synthesised corpus."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from rnnkit.cli import options as o
from rnnkit.errors import RnnkitError
from rnnkit.tasks.asr import SpeechRecognizerConfig

DEFAULT = SpeechRecognizerConfig()  # the model flags' defaults are the config's
CHUNK_MS = 500  # transcribe --stream's chunk

app = typer.Typer(help="Speech recognition: synthesise a corpus, train a CTC recogniser, evaluate, transcribe.")

Manifest = Annotated[
    Path, typer.Option(help="A corpus directory from make-data (or a manifest CSV: path, text, split).")
]
Beam = Annotated[int, typer.Option(help="Prefix beam width; 0 decodes greedily.")]
LmWeight = Annotated[float, typer.Option(help="Weight of the character LM in beam search (0: no LM).")]
LmBonus = Annotated[float, typer.Option(help="Score bonus per character when the LM is used.")]
WordWeight = Annotated[
    float, typer.Option(help="Weight of the run's word trigram at word ends, relative to --lm-weight (0: none).")
]
LmRun = Annotated[
    Path | None,
    typer.Option(
        "--lm",
        help="An rnnkit character LM run (rnnkit lm train --tokenizer char, sentences one per line) to fuse "
        "instead of the run's 6-gram.",
    ),
]


def refuse_lm_without_beam(beam: int, lm: Path | None, lm_weight: float, lm_bonus: float, word_weight: float) -> None:
    """Greedy decoding reads no LM: refuse LM options it would silently ignore."""
    from rnnkit.tasks.asr_inference import LM_NEEDS_BEAM

    if beam == 0 and (lm is not None or lm_weight or lm_bonus or word_weight):
        raise RnnkitError(LM_NEEDS_BEAM)


@app.command("make-data")
def make_data(
    out: Annotated[Path, typer.Option(help="Corpus directory: wavs/ and manifest.csv go here.")],
    texts: Annotated[
        str, typer.Option(help="digits, cards, commands (join with +), fortunes, or a FILE with one text per line.")
    ] = "digits",
    n: Annotated[int, typer.Option("--n", help="Utterances to synthesise.")] = 5000,
    flite_share: Annotated[float, typer.Option(help="Share of utterances spoken by flite voices.")] = 0.25,
    flite_pitch: Annotated[
        float, typer.Option(help="Share of the flite training utterances spoken at a random mean pitch (80-220 Hz).")
    ] = 0.0,
    festival_share: Annotated[
        float,
        typer.Option(help="Share of the flite training utterances spoken by a Festival voice (ked, HTS slt) instead."),
    ] = 0.0,
    snr: Annotated[
        float | None, typer.Option(help="Add noise to some utterances at an SNR drawn from [SNR, SNR + 20] dB.")
    ] = None,
    noise_share: Annotated[float, typer.Option(help="Share of utterances that get noise (with --snr).")] = 0.5,
    noise_file: Annotated[Path | None, typer.Option(help="A noise recording (else white/pink/brown noise).")] = None,
    jobs: Annotated[int, typer.Option(help="Synthesis processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed for each utterance's text, voice and noise.")] = 0,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Synthesise a corpus with espeak-ng (accents x variants x speed x pitch), flite and Festival voices: 16 kHz WAVs
    and manifest.csv, with train/valid/test splits disjoint in text and in voice. Re-running skips the WAVs
    already there.

    Example: rnnkit asr make-data --texts digits+cards+commands --n 5000 --snr 10 --out corpora/grammar
    """
    from rnnkit.data.speech_corpus import CorpusConfig, build_corpus

    config = CorpusConfig(
        texts=texts, num_utterances=n, seed=seed, flite_share=flite_share, flite_pitch=flite_pitch,
        festival_share=festival_share, snr=snr,
        noise_share=noise_share, noise_file=str(noise_file or ""), jobs=jobs,
    )  # fmt: skip
    summary = build_corpus(config, out, quiet=quiet)
    if json_output:
        o.print_json({"task": "asr", **summary})
        return
    typer.echo(f"{summary['utterances']} utterances ({summary['hours']} h) in {summary['manifest']}")
    typer.echo("  " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    if summary["failed"]:
        typer.echo(f"{summary['failed']} could not be synthesised, e.g. {next(iter(summary['failures'].values()))}")


@app.command()
@o.training_options(epochs=20)
def train(
    manifest: Manifest,
    out: o.Out,
    cell: Annotated[str, typer.Option(help="lstm or gru.")] = DEFAULT.cell,
    hidden_size: Annotated[int, typer.Option(help="Units per direction.")] = DEFAULT.hidden_size,
    layers: Annotated[int, typer.Option(help="Recurrent layers.")] = DEFAULT.num_layers,
    conv_channels: Annotated[int, typer.Option(help="Channels of the two subsampling convolutions.")] = (
        DEFAULT.conv_channels
    ),
    dropout: Annotated[float, typer.Option(help="Dropout between recurrent layers and before the output.")] = (
        DEFAULT.dropout
    ),
    # 2, not the config's 1 (which checkpoints without the field load as): on the fortunes corpus it took the
    # test CER with both LMs from 15.8% to 13.5% at the same training cost (docs/tasks/speech.md)
    upsampling: Annotated[
        int, typer.Option(help="CTC output frames per 40 ms encoder frame (2 gives fast speech room).")
    ] = 2,
    streaming: Annotated[
        bool, typer.Option(help="Unidirectional model with causal convolutions (for transcribe --stream).")
    ] = False,
    augment: Annotated[bool, typer.Option(help="SpecAugment time and frequency masks on training batches.")] = True,
    speed_perturb: Annotated[
        float,
        typer.Option(help="Speed perturbation: each training utterance sped up by a factor in [1 - S, 1 + S]."),
    ] = 0.0,
    freq_warp: Annotated[
        float,
        typer.Option(help="Frequency warp (VTLP): each training utterance's frequencies scaled by [1 - W, 1 + W]."),
    ] = 0.0,
    balance_engines: Annotated[
        float,
        typer.Option(
            help="Draw each manifest engine in training with probability proportional to n^(1 - B), n its "
            "utterances (0: as they come; 1: every engine equally often)."
        ),
    ] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Utterances per batch.")] = 32,
    max_train: Annotated[int, typer.Option(help="Use at most this many training utterances (0: all).")] = 0,
    lm_text: Annotated[
        Path | None,
        typer.Option(help="Extra sentences (one a line) for the character LM, beside the training transcripts."),
    ] = None,
    warmup: Annotated[int, typer.Option(help="Steps of linear learning-rate warm-up.")] = 200,
    eval_every: Annotated[int, typer.Option(help="Validate every this many steps (0: once per epoch).")] = 0,
    *,
    training: o.Training,
) -> None:
    """Train a CTC recogniser on the manifest's train split (the lowest validation CER is kept), fit a
    character LM on its transcripts (and --lm-text), and score the test split; metrics.json, log.csv and
    loss.png go to --out.

    Example: rnnkit asr train --manifest corpora/grammar --out runs/asr --max-minutes 90
    """
    from rnnkit.tasks.asr_training import AsrData, train_asr

    data = AsrData(manifest=str(manifest), batch_size=batch_size, augment=augment, speed=speed_perturb,
                   warp=freq_warp, balance=balance_engines, max_train=max_train,
                   lm_text=str(lm_text or ""))  # fmt: skip
    model_options = {
        "cell": cell, "hidden_size": hidden_size, "num_layers": layers, "conv_channels": conv_channels,
        "dropout": dropout, "upsampling": upsampling, "bidirectional": not streaming,
        "normalisation": "global" if streaming else "utterance",
    }  # fmt: skip
    config = training.config(warmup_steps=warmup, eval_every=eval_every)
    summary = train_asr(data, model_options, config, out, resume=training.resume)
    test = summary.get("test", {})
    headline = test.get("decoders", {}).get("greedy", {})
    if training.json_output:
        metrics = {k: headline[k] for k in ("wer", "cer") if k in headline}
        o.print_json({"task": "asr", "metrics": metrics, "n": test.get("n", 0), "summary": summary})
        return
    typer.echo(o.stop_line(summary))
    if headline:
        typer.echo(f"test (greedy): WER {headline['wer']:.4f}  CER {headline['cer']:.4f}  n = {test['n']}")
    typer.echo(f"model, char_lm.json, metrics.json and loss.png in {out}")


@app.command("eval")
def evaluate(
    run: o.RunDir,
    manifest: Manifest,
    split: Annotated[str, typer.Option(help="train, valid, test, or all rows.")] = "test",
    beam: Beam = 16,
    lm_weight: LmWeight = 0.0,
    lm_bonus: LmBonus = 0.0,
    word_weight: WordWeight = 0.0,
    lm: LmRun = None,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """WER and CER (jiwer) of a trained recogniser on a manifest's split, greedy and by beam search, overall
    and per synthesiser; unreadable files are skipped and counted.

    Example: rnnkit asr eval runs/asr --manifest corpora/grammar --beam 16 --lm-weight 0.5 --lm-bonus 1
    """
    from rnnkit.tasks.asr_training import evaluate_asr

    if split not in ("train", "valid", "test", "all"):
        raise RnnkitError(f"Unknown split {split!r}. Select from train, valid, test, all.")
    refuse_lm_without_beam(beam, lm, lm_weight, lm_bonus, word_weight)
    decoders = {"greedy": {"beam": 0}}
    if beam:
        decoders["beam"] = {"beam": beam, "lm_weight": lm_weight, "lm_bonus": lm_bonus, "word_weight": word_weight}
    report = evaluate_asr(run, manifest, split=split, decoders=decoders, quiet=quiet, lm=lm)
    if json_output:
        best = report["decoders"]["beam" if beam else "greedy"]
        o.print_json({"task": "asr", "metrics": {"wer": best["wer"], "cer": best["cer"]}, "n": report["n"],
                      "report": report})  # fmt: skip
        return
    for entry in report["decoders"].values():
        typer.echo(f"{entry['decoder']:<40} WER {entry['wer']:.4f}  CER {entry['cer']:.4f}")
        for engine, rates in entry.get("by_engine", {}).items():
            typer.echo(f"  {engine:<38} WER {rates['wer']:.4f}  CER {rates['cer']:.4f}")
    typer.echo(f"n = {report['n']}" + (f", {report['skipped']} unreadable files skipped" if report["skipped"] else ""))


@app.command()
def transcribe(
    run: o.RunDir,
    files: Annotated[list[Path], typer.Argument(help="WAV, FLAC or OGG files (any rate; mixed to mono, 16 kHz).")],
    beam: Beam = 0,
    lm_weight: LmWeight = 0.0,
    lm_bonus: LmBonus = 0.0,
    word_weight: WordWeight = 0.0,
    lm: LmRun = None,
    stream: Annotated[
        bool, typer.Option(help="Read each file chunk by chunk through the streaming (unidirectional) model.")
    ] = False,
    chunk_ms: Annotated[
        int | None, typer.Option(help=f"With --stream: audio per chunk, in milliseconds (default {CHUNK_MS}).")
    ] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for the network.")] = 2,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Print each file's transcript (``--json``: with timings, real-time factor and per-word start and end
    times from the CTC alignment). Unreadable files are skipped and counted; exit 2 if none could be read.

    Example: rnnkit asr transcribe runs/asr one.wav two.flac --beam 16 --json
    """
    import torch

    from rnnkit.tasks import load
    from rnnkit.tasks.asr_inference import Decoder, load_fusion_lm, load_word_lm, stream_file, transcribe_files

    if chunk_ms is not None and not stream:  # a whole file is read at once: refuse a chunk size it would ignore
        raise RnnkitError("--chunk-ms sets the chunks of --stream; add --stream, or drop --chunk-ms.")
    chunk_ms = CHUNK_MS if chunk_ms is None else chunk_ms
    if chunk_ms < 10:
        raise RnnkitError(f"--chunk-ms must be at least 10, got {chunk_ms}.")
    refuse_lm_without_beam(beam, lm, lm_weight, lm_bonus, word_weight)
    torch.set_num_threads(max(1, threads))
    model = load(run, task="asr")
    fusion = load_fusion_lm(run, model.config.alphabet, lm)
    decoder = Decoder(model.config.alphabet, beam=beam, lm=fusion, lm_weight=lm_weight, lm_bonus=lm_bonus,
                      word_lm=load_word_lm(run), word_weight=word_weight)  # fmt: skip
    if stream:
        if model.config.bidirectional:
            raise RnnkitError(f"{run} holds a bidirectional model; --stream needs one trained with --streaming.")
        results, skipped = [], {}
        # the text so far, redrawn in place: a live view for a terminal, like a progress bar (a log or a pipe
        # would collect every redraw)
        live = not (quiet or json_output) and sys.stderr.isatty()
        show = (lambda text: typer.echo(f"\r{text}", nl=False, err=True)) if live else None
        for path in files:
            try:
                results.append(stream_file(model, path, decoder, chunk_seconds=chunk_ms / 1000, on_text=show))
            except RnnkitError as error:
                skipped[str(path)] = str(error)
            if show is not None:
                typer.echo("", err=True)
    else:
        outcome = transcribe_files(model, files, decoder)
        results, skipped = outcome["results"], outcome["skipped"]
    if not results:
        raise RnnkitError(f"none of the {len(files)} file(s) could be read: {next(iter(skipped.values()))}")
    if json_output:
        o.print_json({"task": "asr", "n": len(results), "decoder": decoder.describe(), "results": results,
                      "skipped": skipped})  # fmt: skip
        return
    for result in results:
        typer.echo(result["text"] if len(files) == 1 else f"{result['path']}\t{result['text']}")
    for path, why in skipped.items():
        typer.echo(f"skipped {path}: {why}", err=True)
    if skipped:
        typer.echo(f"{len(skipped)} of {len(files)} files skipped", err=True)
