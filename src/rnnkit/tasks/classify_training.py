"""Text classification end to end: labelled texts -> hash split -> vocabulary -> Trainer -> calibrated model.

The CLI's ``rnnkit classify train|eval|predict`` call these; a notebook can too::

    summary = train_classifier(ClassifyData(data="rotten-tomatoes"), {"pooling": "max"}, TrainConfig(epochs=5),
                               "runs/rt")
    result = evaluate_classifier("runs/rt", read_csv("reviews.csv", "text", "label"))
    table = predict_texts(load("runs/rt"), ["a gripping, funny film"])

After training, the best checkpoint (lowest validation error) gets its softmax temperature fitted on the
validation split and is saved again; the test split is scored once, with and without the temperature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import checkpoint
from rnnkit.data.sentiment import (
    SENTIMENT_SETS,
    LabelledTexts,
    SentimentSplits,
    check_classes,
    check_known_labels,
    csv_splits,
    glove_vectors,
    normalise,
    vector_table,
)
from rnnkit.data.text import Tokenizer, WordTokenizer, tokenizer_from_config
from rnnkit.errors import RnnkitError
from rnnkit.plots import training_curves
from rnnkit.tasks import load
from rnnkit.tasks.classify import (
    ClassifierConfig,
    TextBatches,
    TextClassifier,
    classification_report,
    expected_calibration_error,
    fit_temperature,
)
from rnnkit.tasks.lm import LanguageModel
from rnnkit.tasks.report import sample_text, write_report
from rnnkit.text_plots import attribution_plot, confusion_plot
from rnnkit.train import TrainConfig, Trainer, seed_everything
from rnnkit.viz.figure import check_path

VECTORS = ("glove", "random")
CLASS_WEIGHTS = ("none", "balanced")


@dataclass(frozen=True)
class ClassifyData:
    data: str = ""  # a built-in set (rotten-tomatoes, movie-reviews-long), or "" with csv
    csv: str = ""
    text_col: str = "text"
    label_col: str = "label"
    vectors: str = "glove"  # glove: GloVe 6B 50d where known, random elsewhere; random: all random
    class_weights: str = "none"  # balanced: w_c = n / (C n_c)
    min_count: int = 1  # words seen fewer times in training map to <unk> (GloVe words are always kept)
    batch_size: int = 32
    test_fraction: float = 0.1  # of a user's CSV (built-in sets fix their own)
    init_from: str = ""  # an rnnkit language model's or classifier's run directory to start from
    init_classes: str = ""  # from a classifier with other class names: "theirs=ours,..." (e.g. fresh=positive)

    def __post_init__(self) -> None:
        if bool(self.data) == bool(self.csv):
            raise RnnkitError(f"give either --data ({', '.join(SENTIMENT_SETS)}) or --csv FILE, not both or neither.")
        if self.data and self.data not in SENTIMENT_SETS:
            raise RnnkitError(f"Unknown data set {self.data!r}. Select from {', '.join(SENTIMENT_SETS)}.")
        if self.vectors not in VECTORS:
            raise RnnkitError(f"Unknown vectors {self.vectors!r}. Select from {', '.join(VECTORS)}.")
        if self.class_weights not in CLASS_WEIGHTS:
            raise RnnkitError(f"Unknown class weights {self.class_weights!r}. Select from {', '.join(CLASS_WEIGHTS)}.")
        if self.min_count < 1 or self.batch_size < 1:
            raise RnnkitError(f"min_count and batch_size must be at least 1, got {self.min_count}, {self.batch_size}.")
        if self.init_classes and not self.init_from:
            raise RnnkitError("--init-classes pairs a source classifier's classes with ours: it needs --init-from.")


def load_splits(options: ClassifyData) -> SentimentSplits:
    if options.data:
        return SENTIMENT_SETS[options.data]()
    return csv_splits(options.csv, options.text_col, options.label_col, test_fraction=options.test_fraction)


def encode_texts(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text; a text with no tokens at all becomes one ``<unk>`` (never dropped silently)."""
    return [tokenizer.encode(normalise(text)) or [getattr(tokenizer, "unknown_id", 0)] for text in texts]


def make_batches(
    tokenizer: Tokenizer, data: LabelledTexts, classes: list[str], batch_size: int, *, shuffle: bool, seed: int = 0
) -> TextBatches:
    index = {name: i for i, name in enumerate(classes)}
    labels = [index.get(label, 0) for label in data.labels]
    return TextBatches(encode_texts(tokenizer, data.texts), labels, batch_size, shuffle=shuffle, seed=seed)


# what a classifier started from another one takes from it: the shape of every copied layer
ARCHITECTURE = ("cell", "embedding_size", "hidden_size", "num_layers", "bidirectional", "pooling")


def class_pairs(pairs: str) -> list[tuple[str, str]]:
    """``"fresh=positive, rotten=negative"`` -> ``[("fresh", "positive"), ("rotten", "negative")]`` (source,
    ours); a pair without ``=`` has ``""`` for ours."""
    return [tuple(part.strip() for part in pair.partition("=")[::2]) for pair in pairs.split(",")]


def map_classes(theirs: list[str], ours: list[str], pairs: str) -> list[int] | None:
    """For each of ``ours``, the index of the source class it continues: from ``pairs`` ("fresh=positive,
    rotten=negative"), else by name when both have the same classes, else ``None`` (no pairing)."""
    if not pairs:
        return [theirs.index(c) for c in ours] if sorted(theirs) == sorted(ours) else None
    mapping = {}
    for source, target in class_pairs(pairs):
        if source not in theirs or target not in ours:
            written = f"{source}={target}" if target else source
            raise RnnkitError(
                f"--init-classes pair {written!r} must be source=ours with a source class in "
                f"{', '.join(theirs)} and one of ours in {', '.join(ours)}."
            )
        if target in mapping:
            raise RnnkitError(f"--init-classes maps two source classes to {target!r}.")
        mapping[target] = theirs.index(source)
    missing = [c for c in ours if c not in mapping]
    if missing:
        raise RnnkitError(f"--init-classes gives no source class for {', '.join(missing)}.")
    return [mapping[c] for c in ours]


def build_vocabulary(texts: list[str], min_count: int, glove: dict | None) -> WordTokenizer:
    """Training words seen ``min_count`` times, plus rarer ones GloVe has a vector for."""
    tokenizer = WordTokenizer.fit("\n".join(normalise(t) for t in texts))
    counts = {}
    for text in texts:
        for word in normalise(text).split():
            counts[word] = counts.get(word, 0) + 1
    keep = [w for w in tokenizer.words if counts.get(w, 0) >= min_count or (glove is not None and w in glove)]
    return WordTokenizer(keep)


def balanced_weights(labels: list[str], classes: list[str]) -> tuple[float, ...]:
    counts = np.array([labels.count(c) for c in classes], dtype=np.float64)
    return tuple(float(w) for w in len(labels) / (len(classes) * counts))


def train_classifier(
    options: ClassifyData, model_options: dict, train_config: TrainConfig, out: Path | str, *, resume: bool = False
) -> dict:
    """Train on the training split, keep the lowest validation error, fit the temperature, score the test
    split; returns the run's summary (also in ``out/metrics.json``)."""
    out = Path(out)
    splits = load_splits(options)
    classes = check_classes(splits.train, "the training split")
    for name in ("valid", "test"):
        check_known_labels(getattr(splits, name).labels, classes, f"the {name} split")
    glove, source, class_map = None, None, None
    if options.init_from:
        # transfer: the source's vocabulary, and this classifier shaped like what is copied from it
        source = load(options.init_from)
        if isinstance(source, TextClassifier):
            model_options = {**model_options, **{k: getattr(source.config, k) for k in ARCHITECTURE}}
            class_map = map_classes(source.run_config["classes"], classes, options.init_classes)
        elif isinstance(source, LanguageModel):
            if options.init_classes:
                raise RnnkitError("--init-classes applies to a classifier's run; --init-from names a language model.")
            lm_config = source.config
            if lm_config.cell not in ("lstm", "gru"):
                raise RnnkitError(f"--init-from needs an LSTM or GRU language model, got cell {lm_config.cell!r}.")
            kind = source.run_config["tokenizer"]["kind"]
            if kind != "word":
                # the classifier's tokens are words (--explain pairs each id with one): other LM ids would not line up
                raise RnnkitError(
                    f"--init-from needs a word language model (rnnkit lm train --tokenizer word); "
                    f"{options.init_from} reads {kind} tokens."
                )
            model_options = {**model_options, "cell": lm_config.cell, "embedding_size": lm_config.embedding_size,
                             "hidden_size": source.layers[0].hidden_size}  # fmt: skip
        else:
            raise RnnkitError(
                f"--init-from needs a language model's or classifier's run; {options.init_from} holds a model "
                f"of task {source.run_config.get('task')!r}."
            )
    resumed = checkpoint.resumed_config(out, "classify") if resume else {}
    if resumed and resumed.get("classes") != classes:
        # the resumed model's outputs are the run's classes, in its order: other labels would be scored against
        # them (a new class beyond its outputs, renamed ones in the place their sorted name falls)
        raise RnnkitError(
            f"the run in {out} was trained on the classes {', '.join(map(repr, resumed.get('classes', [])))}, "
            f"these data have {', '.join(map(repr, classes))}; resume with the labels it was trained on."
        )
    if resumed:
        tokenizer = tokenizer_from_config(resumed["tokenizer"])
    elif source is not None:
        tokenizer = tokenizer_from_config(source.run_config["tokenizer"])
    else:
        if options.vectors == "glove":
            glove = glove_vectors({w for t in splits.train.texts for w in normalise(t).split()})
        tokenizer = build_vocabulary(splits.train.texts, options.min_count, glove)
    weights = balanced_weights(splits.train.labels, classes) if options.class_weights == "balanced" else ()
    seed_everything(train_config.seed)  # the initial weights too, not only what the Trainer draws
    if resumed:  # --resume: the run's own model
        model = TextClassifier.from_config(resumed["model"])
    else:
        model = TextClassifier(
            ClassifierConfig(
                vocab_size=tokenizer.vocab_size, num_classes=len(classes), class_weights=weights, **model_options
            )
        )
    config = model.config
    table = vector_table(tokenizer.vocab, glove, config.embedding_size) if glove is not None else None
    if isinstance(source, TextClassifier):
        model.init_from_classifier(source, class_map)
    elif source is not None:
        model.init_from_language_model(source)
    if table is not None:
        model.load_vectors(*table)
    run_config = {
        "task": "classify",
        "model": asdict(config),
        "tokenizer": tokenizer.to_config(),
        "classes": classes,
        "data": asdict(options),
        "split": splits.split,
    }
    batch_size = options.batch_size
    train = make_batches(tokenizer, splits.train, classes, batch_size, shuffle=True, seed=train_config.seed)
    valid = make_batches(tokenizer, splits.valid, classes, 4 * batch_size, shuffle=False)
    # the best checkpoint is the one with the fewest validation errors (the loss is recalibrated anyway)
    trainer = Trainer(model, replace(train_config, monitor="error"), out, train, valid, run_config=run_config)
    summary = trainer.fit(resume=resume)
    if summary["stopped_by"] == "interrupted" or not trainer.is_main:  # under torchrun, rank 0 reports
        return summary
    best = load(out).to(trainer.device)
    if len(splits.valid):
        logits, labels = best.predict_logits(valid)
        best.temperature.fill_(fit_temperature(logits, labels))
        checkpoint.save_model(out, best, best.run_config)
    test = make_batches(tokenizer, splits.test, classes, 4 * batch_size, shuffle=False)
    summary["test"] = score(best, test, classes, out / "confusion.png")
    summary["split"] = splits.split
    summary["sizes"] = {name: len(getattr(splits, name)) for name in ("train", "valid", "test")}
    summary["classes"] = classes
    summary["temperature"] = float(best.temperature)
    summary["parameters"] = sum(p.numel() for p in best.parameters())
    checkpoint.write_json(out / "metrics.json", summary)
    if (out / "log.csv").exists():
        training_curves(out / "log.csv", out / "loss.png", title=f"{config.cell} classifier")
    sample = (splits.valid.texts or splits.test.texts or splits.train.texts)[0]
    write_report(out, text=sample_text(sample, 240))
    return summary


def score(
    model: TextClassifier, data: TextBatches, classes: list[str], confusion_png: Path | None = None, quiet: bool = True
) -> dict:
    """Accuracy, macro-F1, per-class report, confusion matrix, NLL and ECE (with and without the model's
    temperature) of ``data``."""
    logits, labels = model.predict_logits(data, quiet=quiet)
    temperature = float(model.temperature)
    probabilities = F.softmax(logits / temperature, dim=1)
    report = classification_report(logits.argmax(1).numpy(), labels.numpy(), classes)
    report.update(
        n=len(labels),
        nll=F.cross_entropy(logits / temperature, labels).item(),
        ece=expected_calibration_error(probabilities, labels),
        ece_uncalibrated=expected_calibration_error(F.softmax(logits, dim=1), labels),
        temperature=temperature,
    )
    if confusion_png is not None:
        confusion_plot(np.array(report["confusion"]), classes, confusion_png)
    return report


def evaluate_classifier(
    directory: Path | str, data: LabelledTexts, *, confusion_png: Path | None = None, quiet: bool = True
) -> dict:
    """Score a trained classifier on labelled texts (labels must be classes it was trained on); ``quiet=False``:
    a progress bar on a terminal."""
    if not len(data):  # no accuracy, NLL or ECE of nothing
        raise RnnkitError("the evaluation data holds no texts; give some labelled texts.")
    if confusion_png is not None:
        check_path(confusion_png)
    model = load(directory, task="classify")
    run_config = model.run_config
    classes = run_config["classes"]
    check_known_labels(data.labels, classes, "the evaluation file")
    tokenizer = tokenizer_from_config(run_config["tokenizer"])
    batches = make_batches(tokenizer, data, classes, 128, shuffle=False)
    return score(model, batches, classes, confusion_png, quiet=quiet)


def predict_texts(model: TextClassifier, texts: list[str], *, quiet: bool = True) -> list[dict]:
    """Per text: the predicted label and the calibrated probability of every class (``quiet=False``: a progress
    bar on a terminal); no texts, no rows."""
    if not texts:
        return []
    classes = model.run_config["classes"]
    tokenizer = tokenizer_from_config(model.run_config["tokenizer"])
    data = TextBatches(encode_texts(tokenizer, texts), [0] * len(texts), 128, shuffle=False)
    logits, _ = model.predict_logits(data, quiet=quiet)
    probabilities = F.softmax(logits / model.temperature.cpu(), dim=1)
    return [
        {"label": classes[int(p.argmax())], "probabilities": {c: float(p[i]) for i, c in enumerate(classes)}}
        for p in probabilities
    ]


# Integrated gradients' quadrature: points are doubled from ``steps`` until the attributions sum to within this
# share of z(e) - z(e') (the method's completeness), or up to IG_MAX_STEPS; the path goes through the network in
# chunks of IG_CHUNK points, so a long review's batch of 1,024 copies never sits in memory at once.
IG_COMPLETENESS, IG_MAX_STEPS, IG_CHUNK = 0.05, 1024, 64


def integrated_gradients(model: TextClassifier, ids: torch.Tensor, target: int, *, steps: int = 32) -> torch.Tensor:
    r"""Per-token attributions to class ``target``'s logit by integrated gradients over the embeddings
    (Sundararajan et al. 2017), from the all-zero embedding :math:`e'`, the path integral taken by
    ``m``-point Gauss-Legendre quadrature (nodes :math:`\alpha_j`, weights :math:`w_j` on [0, 1]):

    .. math::
        a_t = \sum_k (e_{t,k} - e'_{t,k}) \sum_{j=1}^{m} w_j
              \frac{\partial z_{target}}{\partial e_{t,k}}\Big|_{e' + \alpha_j (e - e')}

    They sum to :math:`z(e) - z(e')` up to the quadrature error, which is checked: ``m`` starts at ``steps`` and
    doubles until the sum is within :data:`IG_COMPLETENESS` of it (or :data:`IG_MAX_STEPS`). On a trained small
    LSTM the paper's 32-step Riemann sum was 26% off (4.72 against 6.39; its gates saturate early on the path, so
    the gradient is sharp near the baseline), and needed 1,024 steps. An ensemble's logit is its members' mean, so
    its attributions are the mean of each member's, taken over that member's own embedding. Shapes: ids (L,) ->
    attributions (L,). The model is left in the mode it was in.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    attributions = []
    for member in model.members:
        embedded = member.embedding(ids.to(device)).detach()  # (L, E)
        with torch.no_grad():
            ends = member.logits_from_embedded(torch.stack([torch.zeros_like(embedded), embedded]),
                                               torch.full((2,), ids.numel(), dtype=torch.long))  # fmt: skip
        change = float(ends[1, target] - ends[0, target])
        points = steps
        while True:
            found = _path_integral(member, embedded, target, points)
            if abs(float(found.sum()) - change) <= IG_COMPLETENESS * max(abs(change), 1e-3) or points >= IG_MAX_STEPS:
                break
            points *= 2
        attributions.append(found.cpu())
    model.train(was_training)
    return torch.stack(attributions).mean(dim=0)


def _path_integral(member, embedded: torch.Tensor, target: int, points: int) -> torch.Tensor:
    """One member's attributions ``(L,)`` by ``points``-point Gauss-Legendre quadrature along the straight path."""
    nodes, weights = np.polynomial.legendre.leggauss(points)  # on [-1, 1]
    alphas = torch.as_tensor((nodes + 1) / 2, device=embedded.device, dtype=embedded.dtype)
    quadrature = torch.as_tensor(weights / 2, device=embedded.device, dtype=embedded.dtype)
    average = torch.zeros_like(embedded)
    for start in range(0, points, IG_CHUNK):
        chunk = slice(start, start + IG_CHUNK)
        # -> (chunk, L, E): points on the path from the baseline, as one batch
        path = (alphas[chunk, None, None] * embedded[None]).requires_grad_(True)
        lengths = torch.full((path.shape[0],), embedded.shape[0], dtype=torch.long)
        logits = member.logits_from_embedded(path, lengths)
        (gradients,) = torch.autograd.grad(logits[:, target].sum(), path)
        average += torch.einsum("m,mlk->lk", quadrature[chunk], gradients)
    return (embedded * average).sum(dim=-1).detach()


def explain(model: TextClassifier, text: str, *, png: Path | None = None, steps: int = 32) -> dict:
    """The prediction for ``text`` and one attribution per token: integrated gradients, or the attention
    weights when the model pools by attention. Optionally draws them as a PNG."""
    if png is not None:
        check_path(png)
    tokenizer = tokenizer_from_config(model.run_config["tokenizer"])
    classes = model.run_config["classes"]
    tokens = normalise(text).split()
    if not tokens:
        raise RnnkitError("the text to explain has no words; give some text.")
    ids = torch.tensor(tokenizer.encode(" ".join(tokens)), dtype=torch.long)
    prediction = predict_texts(model, [text])[0]
    target = classes.index(prediction["label"])
    if model.config.pooling == "attention":
        with torch.no_grad():
            device = next(model.parameters()).device
            lengths = torch.tensor([ids.numel()])
            # an ensemble's weights: the members' mean
            weights = [member.encode(member.embedding(ids[None].to(device)), lengths)[1] for member in model.members]
        scores, method = torch.stack(weights).mean(dim=0)[0].cpu(), "attention"
    else:
        scores, method = integrated_gradients(model, ids, target, steps=steps), "integrated-gradients"
    result = {**prediction, "method": method, "tokens": tokens, "attributions": [float(s) for s in scores]}
    if png is not None:
        attribution_plot(
            tokens, scores.numpy(), png, title=f"{prediction['label']} ({method})", signed=method != "attention"
        )
    return result
