"""Text classifier: padding never changes a text's logits, long texts are unrolled in full, calibration and
metrics against hand computations and scikit-learn, integrated gradients' completeness."""

import io
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from rnnkit.errors import RnnkitError
from rnnkit.tasks.classify import (
    ClassifierConfig,
    TextBatches,
    TextClassifier,
    classification_report,
    expected_calibration_error,
    fit_temperature,
)
from rnnkit.tasks.classify_training import balanced_weights, integrated_gradients


def _model(pooling="max", cell="lstm", **options):
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=11, num_classes=3, cell=cell, embedding_size=5, hidden_size=6,
                              pooling=pooling, dropout=0.0, **options)  # fmt: skip
    return TextClassifier(config).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean", "attention"])
def test_padding_leaves_each_texts_logits_unchanged(pooling, cell):
    model = _model(pooling, cell)
    texts = [torch.tensor([1, 2, 3, 4, 5, 6, 7]), torch.tensor([8, 9]), torch.tensor([10, 3, 4])]
    ids = torch.nn.utils.rnn.pad_sequence(texts, batch_first=True)  # (3, 7), zeros after each end
    batched = model(ids, torch.tensor([7, 2, 3]))
    for row, text in enumerate(texts):
        alone = model(text[None], torch.tensor([len(text)]))
        torch.testing.assert_close(batched[row], alone[0], rtol=1e-5, atol=1e-6)


def test_long_document_is_unrolled_in_full():
    # 900 tokens, no truncation: the first word still moves the logits of a "last"-pooled model through the
    # forward direction's 900 steps, and the batch with a short text changes nothing
    model = _model("mean")
    (network,) = model.members
    torch.manual_seed(1)
    long = torch.randint(1, 11, (900,))
    embedded = network.embedding(long[None]).detach().requires_grad_(True)
    logits = network.logits_from_embedded(embedded, torch.tensor([900]))
    (gradient,) = torch.autograd.grad(logits[0, 0], embedded)
    assert gradient[0, 0].abs().sum() > 0 and gradient[0, -1].abs().sum() > 0
    ids = torch.nn.utils.rnn.pad_sequence([long, torch.tensor([1, 2])], batch_first=True)
    torch.testing.assert_close(model(ids, torch.tensor([900, 2]))[0], logits[0].detach(), rtol=1e-5, atol=1e-6)


def test_loss_uses_class_weights():
    model = _model(class_weights=(1.0, 2.0, 0.5))
    ids, lengths, labels = torch.tensor([[1, 2], [3, 0], [4, 5]]), torch.tensor([2, 1, 2]), torch.tensor([0, 1, 2])
    expected = F.cross_entropy(model(ids, lengths), labels, weight=torch.tensor([1.0, 2.0, 0.5]))
    torch.testing.assert_close(model.loss((ids, lengths, labels)).loss, expected)
    assert balanced_weights(["a", "a", "a", "b"], ["a", "b"]) == pytest.approx((4 / 6, 4 / 2))


def test_config_errors_are_one_line():
    with pytest.raises(RnnkitError, match="Unknown pooling 'sum'"):
        ClassifierConfig(vocab_size=5, num_classes=2, pooling="sum")
    with pytest.raises(RnnkitError, match="class_weights must be 2 positive numbers"):
        ClassifierConfig(vocab_size=5, num_classes=2, class_weights=(1.0,))
    with pytest.raises(RnnkitError, match="pretrained_lr_scale must be positive, got nan"):
        ClassifierConfig(vocab_size=5, num_classes=2, pretrained_lr_scale=float("nan"))


def test_batches_are_the_same_per_epoch_and_cover_every_text_once():
    sequences = [[1] * (i % 13 + 1) for i in range(100)]
    data = TextBatches(sequences, [i % 2 for i in range(100)], 8, shuffle=True, seed=3)
    first = [lengths.tolist() for _, lengths, _ in data.batches(1)]
    assert first == [lengths.tolist() for _, lengths, _ in data.batches(1)]
    assert first != [lengths.tolist() for _, lengths, _ in data.batches(2)]
    assert sum(len(b) for b in first) == 100 and len(first) == len(data) == 13
    # bucketed: a batch's lengths are close (one pool of 50 batches holds all 100 texts, sorted)
    assert max(max(b) - min(b) for b in first) <= 2


def test_predict_logits_come_back_in_input_order():
    model = _model()
    sequences = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [10, 1]]
    logits, labels = model.predict_logits(TextBatches(sequences, [0, 1, 2, 0], 2, shuffle=False))
    assert labels.tolist() == [0, 1, 2, 0]
    torch.testing.assert_close(logits[1], model(torch.tensor([[4]]), torch.tensor([1]))[0].detach())


def test_expected_calibration_error_matches_a_hand_computation():
    probabilities = np.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8]])
    labels = np.array([0, 1, 1, 0, 1])
    # 15 bins of width 1/15: 0.95 -> bin 14, 0.9 -> bin 13, 0.7 -> bin 10, 0.55 -> bin 8, 0.8 -> bin 11
    # every bin holds one text: ECE = mean |correct - confidence|
    hand = (abs(1 - 0.95) + abs(0 - 0.9) + abs(1 - 0.7) + abs(0 - 0.55) + abs(1 - 0.8)) / 5
    assert expected_calibration_error(probabilities, labels) == pytest.approx(hand)
    # two texts in one bin: |mean correct - mean confidence| weighted by 2/2
    assert expected_calibration_error(np.array([[0.9, 0.1], [0.91, 0.09]]), np.array([0, 1])) == pytest.approx(
        abs(0.5 - 0.905)
    )


def test_classification_report_matches_sklearn():
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    predicted[predicted == 2] = 1  # class 2 is never predicted: precision 0 by convention
    report = classification_report(predicted, labels, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert report["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, zero_division=0)
    for i, name in enumerate("abc"):
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i])
        )
    assert report["confusion"] == confusion_matrix(labels, predicted).tolist()


def test_macro_f1_leaves_out_a_class_absent_from_labels_and_predictions():
    labels, predicted = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])
    report = classification_report(predicted, labels, ["a", "b", "c"])  # "c" neither occurs nor is predicted
    assert report["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0))
    assert report["per_class"]["c"]["support"] == 0
    only_predicted = classification_report(np.array([0, 2]), np.array([0, 0]), ["a", "b", "c"])
    assert only_predicted["macro_f1"] == pytest.approx(f1_score([0, 0], [0, 2], average="macro", zero_division=0))


def test_temperature_undoes_overconfidence():
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 3, generator=generator)
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=generator).squeeze(1)
    tau = fit_temperature(3.0 * true_logits, labels)  # a model 3x too sure of itself
    assert tau == pytest.approx(3.0, rel=0.1)
    grid = torch.linspace(2, 4, 201)
    losses = torch.stack([F.cross_entropy(3.0 * true_logits / t, labels) for t in grid])
    assert tau == pytest.approx(float(grid[losses.argmin()]), abs=0.02)


def test_temperature_stays_finite_on_a_small_split_the_model_separates():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (30,), generator=generator)
    separated = 4.0 * F.one_hot(labels, 2).double() + 0.5 * torch.randn(30, 2, generator=generator, dtype=torch.float64)
    assert (separated.argmax(1) == labels).all()  # every example right: the plain NLL falls as tau -> 0
    assert 0.3 < fit_temperature(separated, labels) < 1.0  # sharper than the model, not 1e-4


@pytest.mark.parametrize(("pooling", "ensemble"), [("max", 1), ("last", 1), ("max", 3)])
def test_integrated_gradients_are_complete(pooling, ensemble):
    # the attributions sum to z(e) - z(0) (the Riemann sum's error shrinks with the steps); for an ensemble
    # z is the members' mean and each member's baseline is its own zero embedding
    model = _model(pooling, ensemble=ensemble)
    ids = torch.tensor([3, 1, 4, 1, 5])
    attributions = integrated_gradients(model, ids, target=2, steps=256)
    lengths = torch.tensor([5])
    differences = []
    with torch.no_grad():
        for member in model.members:
            embedded = member.embedding(ids)[None]
            at_text = member.logits_from_embedded(embedded, lengths)[0, 2]
            differences.append(float(at_text - member.logits_from_embedded(torch.zeros_like(embedded), lengths)[0, 2]))
    difference = sum(differences) / len(differences)
    assert attributions.shape == (5,)
    assert float(attributions.sum()) == pytest.approx(difference, abs=0.02 * abs(difference) + 1e-3)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_integrated_gradients_stay_complete_where_the_gates_saturate_early_on_the_path(pooling):
    # large embeddings saturate the gates a short way from the baseline: the gradient is sharp there, and a
    # 32-point sum missed z(e) - z(0) by far (the review's trained LSTM: 4.72 against 6.39); the points now double
    # until the attributions sum to within 5% of it
    model = _model(pooling)
    with torch.no_grad():
        model.members[0].embedding.weight.mul_(40)
    ids, lengths = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6]), torch.tensor([8])
    with torch.no_grad():
        member = model.members[0]
        embedded = member.embedding(ids)[None]
        logits = member.logits_from_embedded(torch.cat([torch.zeros_like(embedded), embedded]), lengths.repeat(2))
    target = int(logits[1].argmax())
    difference = float(logits[1, target] - logits[0, target])
    attributions = integrated_gradients(model, ids, target)
    assert float(attributions.sum()) == pytest.approx(difference, rel=0.05)


def test_ensemble_logits_are_the_members_mean_and_each_trains_on_its_own_loss():
    model = _model("attention", ensemble=3)
    ids, lengths, labels = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2]), torch.tensor([0, 2])
    members = [member(ids, lengths) for member in model.members]
    torch.testing.assert_close(model(ids, lengths), torch.stack(members).mean(dim=0))
    assert not torch.allclose(members[0], members[1])  # different random starts
    # the loss is the mean of the members' own losses: member k's gradient is its own loss's, over 3
    model.loss((ids, lengths, labels)).loss.backward()
    own = model.members[1]
    expected = torch.autograd.grad(F.cross_entropy(own(ids, lengths), labels) / 3, own.output.weight)[0]
    torch.testing.assert_close(own.output.weight.grad, expected)


def test_ensemble_must_have_a_member():
    with pytest.raises(RnnkitError, match="ensemble must be at least 1"):
        ClassifierConfig(vocab_size=5, num_classes=2, ensemble=0)


def _tiny_language_model(directory, words, tokenizer=None):
    from dataclasses import asdict

    from rnnkit import checkpoint
    from rnnkit.data.text import WordTokenizer
    from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

    tokenizer = tokenizer or WordTokenizer(words)
    config = LanguageModelConfig(vocab_size=tokenizer.vocab_size, embedding_size=5, hidden_size=6, num_layers=2)
    torch.manual_seed(2)
    lm = LanguageModel(config)
    run_config = {"task": "lm", "model": asdict(config), "tokenizer": tokenizer.to_config()}
    checkpoint.save_model(directory, lm, run_config)
    return lm


def test_init_from_language_model_copies_embedding_and_first_layer(tmp_path):
    lm = _tiny_language_model(tmp_path, ["good", "bad", "film"])
    config = ClassifierConfig(vocab_size=5, num_classes=2, embedding_size=5, hidden_size=6, dropout=0.0)
    model = TextClassifier(config)
    copied = model.init_from_language_model(lm)
    assert "rnn.weight_hh_l0" in copied
    (network,) = model.members
    torch.testing.assert_close(network.embedding.weight, lm.embedding.weight)
    torch.testing.assert_close(network.rnn.weight_ih_l0, lm.layers[0].weight_ih_l0)
    torch.testing.assert_close(network.rnn.bias_hh_l0, lm.layers[0].bias_hh_l0)
    wrong = TextClassifier(ClassifierConfig(vocab_size=5, num_classes=2, embedding_size=5, hidden_size=7))
    with pytest.raises(RnnkitError, match=r"does not fit the classifier's rnn\.weight_ih_l0"):
        wrong.init_from_language_model(lm)


def test_init_from_a_language_model_with_a_tied_adaptive_input_copies_every_word_vector():
    from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

    torch.manual_seed(2)
    config = LanguageModelConfig(vocab_size=9, embedding_size=16, hidden_size=6, adaptive_cutoffs=(3, 6))
    lm = LanguageModel(config)
    model = TextClassifier(ClassifierConfig(vocab_size=9, num_classes=2, embedding_size=16, hidden_size=6))
    model.init_from_language_model(lm)
    (network,) = model.members
    torch.testing.assert_close(network.embedding.weight, lm.embedding(torch.arange(9)))


def test_copied_tensors_form_their_own_learning_rate_group(tmp_path):
    lm = _tiny_language_model(tmp_path, ["good", "bad", "film"])
    config = ClassifierConfig(
        vocab_size=5, num_classes=2, embedding_size=5, hidden_size=6, ensemble=2, pretrained_lr_scale=0.1
    )
    model = TextClassifier(config)
    (only,) = model.parameter_groups()  # nothing copied yet: one group at the full rate
    assert len(only["params"]) == len(list(model.parameters()))
    model.init_from_language_model(lm)
    rest, copied = model.parameter_groups()
    tensors = model.state_dict(keep_vars=True)
    assert copied["lr_scale"] == 0.1
    assert {id(p) for p in copied["params"]} == {
        id(tensors[f"members.{k}.{name}"]) for k in (0, 1) for name in model.pretrained
    }
    assert len(copied["params"]) == 2 * 5  # the embedding and layer 0's four tensors, in each member
    assert len(rest["params"]) + len(copied["params"]) == len(list(model.parameters()))
    with pytest.raises(RnnkitError, match="pretrained_lr_scale must be positive"):
        ClassifierConfig(vocab_size=5, num_classes=2, pretrained_lr_scale=0)


def test_train_classifier_init_from_uses_the_lms_vocabulary(tmp_path):
    import pandas as pd

    from rnnkit.tasks import load
    from rnnkit.tasks.classify_training import ClassifyData, train_classifier
    from rnnkit.train import TrainConfig

    _tiny_language_model(tmp_path / "lm", ["good", "bad", "film", "the"])
    rows = [{"text": f"the film {'good' if i % 2 else 'bad'} {i}", "label": "p" if i % 2 else "n"} for i in range(60)]
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    options = ClassifyData(csv=str(tmp_path / "data.csv"), init_from=str(tmp_path / "lm"), batch_size=8)
    config = TrainConfig(epochs=1, quiet=True, device="cpu")
    summary = train_classifier(options, {"hidden_size": 99, "pooling": "mean"}, config, tmp_path / "run")
    model = load(tmp_path / "run")
    assert model.config.hidden_size == 6 and model.config.vocab_size == 6  # the LM's, not the flags'
    assert model.run_config["tokenizer"]["words"] == ["good", "bad", "film", "the"]
    assert summary["test"]["n"] == summary["sizes"]["test"]


@pytest.mark.parametrize("kind", ["char", "subword"])
def test_train_classifier_init_from_refuses_a_language_model_that_does_not_read_words(tmp_path, kind):
    import pandas as pd

    from rnnkit.data.text import CharTokenizer, SubwordTokenizer
    from rnnkit.tasks.classify_training import ClassifyData, train_classifier
    from rnnkit.train import TrainConfig

    text = "the good film and the bad film " * 20
    tokenizer = CharTokenizer.fit(text) if kind == "char" else SubwordTokenizer.fit(text, vocab_size=260)
    _tiny_language_model(tmp_path / "lm", [], tokenizer)
    rows = [{"text": f"the film {'good' if i % 2 else 'bad'} {i}", "label": "p" if i % 2 else "n"} for i in range(60)]
    pd.DataFrame(rows).to_csv(tmp_path / "data.csv", index=False)
    options = ClassifyData(csv=str(tmp_path / "data.csv"), init_from=str(tmp_path / "lm"), batch_size=8)
    with pytest.raises(RnnkitError, match=f"needs a word language model .*; .* reads {kind} tokens"):
        train_classifier(options, {}, TrainConfig(epochs=1, quiet=True, device="cpu"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_init_from_classifier_copies_every_layer_and_pairs_the_output_rows():
    config = ClassifierConfig(vocab_size=7, num_classes=2, embedding_size=5, hidden_size=6, num_layers=2, dropout=0.0)
    torch.manual_seed(0)
    source, model = TextClassifier(config), TextClassifier(replace(config, ensemble=2))
    copied = model.init_from_classifier(source, None)
    assert "output.weight" not in copied and "attention.0.weight" in copied and "rnn.weight_hh_l1_reverse" in copied
    theirs = source.members[0]
    for network in model.members:  # both members start from the source's only one
        for name in copied:
            torch.testing.assert_close(network.state_dict()[name], theirs.state_dict()[name])
        assert not torch.equal(network.output.weight, theirs.output.weight)  # no pairing: a fresh output layer
    model.init_from_classifier(source, [1, 0])  # our class 0 continues their class 1
    torch.testing.assert_close(model.members[1].output.weight, theirs.output.weight.flip(0))
    torch.testing.assert_close(model.members[1].output.bias, theirs.output.bias.flip(0))
    ids, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([3])
    torch.testing.assert_close(model.eval()(ids, lengths), source.eval()(ids, lengths).flip(1))
    wrong = TextClassifier(replace(config, pooling="max"))
    with pytest.raises(RnnkitError, match=r"attention\.0\.weight has no place in this one"):
        wrong.init_from_classifier(TextClassifier(config))
    with pytest.raises(RnnkitError, match=r"rnn\.weight_ih_l0 \(\(24, 5\)\) does not fit this one.s \(16, 5\)"):
        TextClassifier(replace(config, hidden_size=4)).init_from_classifier(source)


def test_map_classes_pairs_by_name_or_by_the_given_pairs():
    from rnnkit.tasks.classify_training import map_classes

    assert map_classes(["neg", "pos"], ["pos", "neg"], "") == [1, 0]
    assert map_classes(["fresh", "rotten"], ["negative", "positive"], "") is None
    assert map_classes(["fresh", "rotten"], ["negative", "positive"], "fresh=positive, rotten=negative") == [1, 0]
    for pairs, message in (
        ("fresh=positive", "no source class for negative"),
        ("fresh=positive,rotten=positive", "two source classes to 'positive'"),
        ("stale=positive,rotten=negative", "pair 'stale=positive' must be source=ours"),
        ("fresh", "pair 'fresh' must be source=ours"),
    ):
        with pytest.raises(RnnkitError, match=message):
            map_classes(["fresh", "rotten"], ["negative", "positive"], pairs)


def test_train_classifier_init_from_a_classifier_takes_its_shape_vocabulary_and_output_layer(tmp_path):
    import pandas as pd

    from rnnkit.tasks import load
    from rnnkit.tasks.classify_training import ClassifyData, train_classifier
    from rnnkit.train import TrainConfig

    def write(name, labels):
        rows = [{"text": f"the film was {'good' if i % 2 else 'bad'} {i}", "label": labels[i % 2]} for i in range(60)]
        pd.DataFrame(rows).to_csv(tmp_path / name, index=False)

    write("snippets.csv", ["rotten", "fresh"])
    write("reviews.csv", ["negative", "positive"])
    config = TrainConfig(epochs=1, quiet=True, device="cpu", seed=0)
    first = {"hidden_size": 5, "embedding_size": 4, "pooling": "max", "dropout": 0.0}
    train_classifier(ClassifyData(csv=str(tmp_path / "snippets.csv"), vectors="random", batch_size=8), first, config,
                     tmp_path / "snippets")  # fmt: skip
    source = load(tmp_path / "snippets")
    options = ClassifyData(csv=str(tmp_path / "reviews.csv"), init_from=str(tmp_path / "snippets"),
                           init_classes="fresh=positive,rotten=negative", batch_size=8)  # fmt: skip
    untrained = replace(config, learning_rate=1e-12)
    summary = train_classifier(options, {"hidden_size": 99, "pooling": "mean"}, untrained, tmp_path / "run")
    model = load(tmp_path / "run")
    assert (model.config.hidden_size, model.config.embedding_size, model.config.pooling) == (5, 4, "max")
    assert model.run_config["tokenizer"] == source.run_config["tokenizer"]
    assert model.run_config["classes"] == ["negative", "positive"] and source.run_config["classes"] == [
        "fresh",
        "rotten",
    ]
    # (almost) no training: the model is the source with its two output rows swapped
    torch.testing.assert_close(model.members[0].output.weight, source.members[0].output.weight.flip(0))
    assert summary["test"]["n"] == summary["sizes"]["test"]
    with pytest.raises(RnnkitError, match="no source class for negative"):
        train_classifier(replace(options, init_classes="fresh=positive"), {}, config, tmp_path / "bad")
    with pytest.raises(RnnkitError, match="needs --init-from"):
        ClassifyData(csv="x.csv", init_classes="fresh=positive")


def test_predicting_many_texts_can_count_its_batches_on_a_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    torch.manual_seed(0)
    model = TextClassifier(ClassifierConfig(vocab_size=9, num_classes=2, embedding_size=4, hidden_size=4)).eval()
    data = TextBatches([[1, 2, 3]] * 300, [0] * 300, 128, shuffle=False)
    for quiet, shown in ((False, True), (True, False)):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        logits, _ = model.predict_logits(data, quiet=quiet)
        assert ("classifying:" in terminal.getvalue()) == shown and logits.shape == (300, 2)


def test_no_texts_give_no_predictions_and_a_one_line_refusal_to_score(tmp_path):
    from dataclasses import asdict

    from rnnkit import checkpoint
    from rnnkit.data.sentiment import LabelledTexts
    from rnnkit.data.text import WordTokenizer
    from rnnkit.tasks import load
    from rnnkit.tasks.classify_training import evaluate_classifier, predict_texts

    model = TextClassifier(ClassifierConfig(vocab_size=3, num_classes=2, embedding_size=4, hidden_size=4))
    run_config = {"task": "classify", "model": asdict(model.config), "classes": ["n", "p"],
                  "tokenizer": WordTokenizer(["good", "bad"]).to_config()}  # fmt: skip
    checkpoint.save_model(tmp_path, model, run_config)
    assert predict_texts(load(tmp_path), []) == []
    assert len(predict_texts(load(tmp_path), ["good"])) == 1
    with pytest.raises(RnnkitError, match="no texts"):
        evaluate_classifier(tmp_path, LabelledTexts([], []))
