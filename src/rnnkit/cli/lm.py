"""``rnnkit lm train | eval | generate``: language models on Shakespeare, WikiText-2 or your own text."""

from __future__ import annotations

from typing import Annotated

import torch
import typer

from rnnkit.cli import options as o
from rnnkit.data.text import tokenizer_from_config
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load
from rnnkit.tasks.lm import never_sampled
from rnnkit.tasks.lm_training import LanguageModelData, evaluate_language_model, train_language_model

app = typer.Typer(help="Language models: train, evaluate, generate text.", no_args_is_help=True)

Data = Annotated[str, typer.Option(help="shakespeare, wikitext2, or a UTF-8 text file.")]


@app.command()
@o.training_options(epochs=10)
def train(
    out: o.Out,
    data: Data = "shakespeare",
    tokenizer: Annotated[str, typer.Option(help="char, word or subword ('' = the corpus' usual one).")] = "",
    cell: Annotated[str, typer.Option(help="rnn, lstm or gru.")] = "lstm",
    layers: Annotated[int, typer.Option(help="Recurrent layers.")] = 2,
    hidden_size: Annotated[int, typer.Option(help="Units per recurrent layer.")] = 512,
    embedding_size: Annotated[int, typer.Option(help="Embedding width (also the last layer's, when tied).")] = 256,
    tie: Annotated[bool, typer.Option(help="Share the embedding with the output layer.")] = True,
    adaptive_cutoffs: Annotated[
        str,
        typer.Option(
            help="Adaptive softmax cluster edges for large vocabularies, e.g. 2000,10000 ('': full softmax); "
            "with --tie the input embeds words with the softmax's matrices (adaptive input)."
        ),
    ] = "",
    dropout: Annotated[float, typer.Option(help="Locked dropout before the output layer.")] = 0.2,
    hidden_dropout: Annotated[float, typer.Option(help="Locked dropout on the input and between layers.")] = 0.1,
    weight_drop: Annotated[float, typer.Option(help="DropConnect on hidden-to-hidden weights.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Parallel streams per batch.")] = 32,
    window: Annotated[int, typer.Option(help="Steps per truncated-BPTT window.")] = 128,
    eval_every: Annotated[int, typer.Option(help="Validate every N optimizer steps (0: once per epoch).")] = 0,
    vectors: Annotated[
        str, typer.Option(help="Input embedding's start: random, or glove (GloVe 6B 50d; word tokens, --no-tie).")
    ] = "random",
    *,
    training: o.Training,
) -> None:
    """Train a language model and report held-out bits per token and perplexity.

    Example: rnnkit lm train --data shakespeare --cell lstm --max-minutes 10 --out runs/char-lstm
    """
    data_options = LanguageModelData(
        data=data, tokenizer=tokenizer, batch_size=batch_size, window=window, vectors=vectors
    )
    model_options = {
        "cell": cell,
        "num_layers": layers,
        "hidden_size": hidden_size,
        "embedding_size": embedding_size,
        "tie_weights": tie,
        "adaptive_cutoffs": parse_cutoffs(adaptive_cutoffs),
        "output_dropout": dropout,
        "hidden_dropout": hidden_dropout,
        "input_dropout": hidden_dropout,
        "weight_drop": weight_drop,
    }
    config = training.config(eval_every=eval_every, monitor="loss")
    summary = train_language_model(data_options, model_options, config, out, resume=training.resume)
    test = summary.get("test")
    if training.json_output:
        o.print_json({"task": "lm", "metrics": test or {}, "n": (test or {}).get("tokens", 0), "summary": summary})
        return
    typer.echo(o.stop_line(summary))
    if test:
        typer.echo(
            f"test: {test['bits_per_token']:.3f} bits/{summary['unit']}, perplexity {test['perplexity']:.2f}"
            f" ({test['tokens']:,} tokens); run in {out}"
        )


def parse_cutoffs(text: str) -> tuple[int, ...]:
    """``"2000,10000"`` -> ``(2000, 10000)``; the model's config checks that they fit the vocabulary."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise RnnkitError(
            f"--adaptive-cutoffs takes whole numbers separated by commas, e.g. 2000,10000; got {text!r}."
        ) from None


@app.command("eval")
def evaluate(
    run: o.RunDir,
    data: Data = "shakespeare",
    split: Annotated[str, typer.Option(help="Split of a built-in corpus: train, valid or test.")] = "test",
    batch_size: Annotated[int, typer.Option(help="Parallel streams the text is cut into.")] = 8,
    window: Annotated[int, typer.Option(help="Tokens per window (0: the training window).")] = 0,
    dynamic_lr: Annotated[
        float, typer.Option(help="Dynamic evaluation: adapt to the text while scoring it, at this SGD rate (0: off).")
    ] = 0.0,
    dynamic_decay: Annotated[float, typer.Option(help="Dynamic evaluation: pull back to the trained weights.")] = 0.0,
    quiet: o.Quiet = False,
    json_output: o.Json = False,
) -> None:
    """Score a trained model on a corpus' test split or on a whole text file.

    Example: rnnkit lm eval runs/char-lstm --data shakespeare --dynamic-lr 0.01
    """
    if dynamic_decay and not dynamic_lr:  # static scoring reads no decay: refuse it rather than ignore it
        raise RnnkitError("--dynamic-decay acts in dynamic evaluation only; add --dynamic-lr R (e.g. 0.01).")
    metrics = evaluate_language_model(
        run,
        data,
        batch_size=batch_size,
        window=window or None,
        dynamic_lr=dynamic_lr or None,
        dynamic_decay=dynamic_decay,
        split=split,
        quiet=quiet,
    )
    if json_output:
        o.print_json({"task": "lm", "metrics": metrics, "n": metrics["tokens"]})
    else:
        mode = " (dynamic evaluation)" if metrics.get("dynamic") else ""
        typer.echo(
            f"{metrics['bits_per_token']:.3f} bits/{metrics['unit']}, perplexity {metrics['perplexity']:.2f} "
            f"over {metrics['tokens']:,} tokens{mode}"
        )


@app.command()
def generate(
    run: o.RunDir,
    prime: Annotated[str, typer.Option(help="Text to start from.")] = "\n",
    length: Annotated[int, typer.Option(help="Tokens to generate.")] = 500,
    temperature: Annotated[float, typer.Option(help="Below 1: safer text; above 1: wilder.")] = 0.8,
    top_k: Annotated[int, typer.Option(help="Sample among the k likeliest tokens (0: all).")] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (1: off).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed for the sampling.")] = 0,
    json_output: o.Json = False,
) -> None:
    """Generate text from a trained model, printed as it is sampled.

    Example: rnnkit lm generate runs/char-lstm --prime "ROMEO:" --length 500 --temperature 0.8
    """
    model = load(run, task="lm")
    tokenizer = tokenizer_from_config(model.run_config["tokenizer"])
    generator = torch.Generator().manual_seed(seed)
    prime_ids = tokenizer.encode(prime)
    never = never_sampled(tokenizer)
    tokens = model.generate(
        prime_ids, length, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator, never=never
    )
    ids: list[int] = []
    printed = ""
    # decoded after the prime, then cut from it: a word tokenizer puts its space between tokens, so the
    # continuation alone would lose the one between the prime and the first new word
    decoded_prime = tokenizer.decode(prime_ids)
    if not json_output:
        typer.echo(prime, nl=False)  # the continuation reads on from the prime, as char-rnn prints it
    for token in tokens:
        ids.append(token)
        if not json_output:
            # decode the whole tail each time: a subword may only become text with its neighbours; a byte-level
            # token may be part of a character, decoded as U+FFFD until the rest arrives, and what is printed
            # cannot be taken back, so trailing U+FFFDs wait for the next token (or the end)
            text = tokenizer.decode(prime_ids + ids)[len(decoded_prime) :].rstrip("\ufffd")
            if not printed and text.startswith(" ") and prime[-1:].isspace():
                # a word tokenizer's joining space, after a prime that already ends in one: print it once
                printed = " "
            typer.echo(text[len(printed) :], nl=False)
            printed = text
    if json_output:
        o.print_json({"task": "lm", "prime": prime, "text": tokenizer.decode(ids), "n": len(ids)})
    else:
        typer.echo(tokenizer.decode(prime_ids + ids)[len(decoded_prime) + len(printed) :])
