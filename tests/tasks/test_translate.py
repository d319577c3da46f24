"""The translator: teacher forcing equals step-by-step decoding, padding changes nothing, a tiny model learns
to copy, label smoothing, configs, and the metrics are sacrebleu's."""

from dataclasses import asdict

import pytest
import torch
from sacrebleu.metrics import BLEU, CHRF

import rnnkit
from rnnkit import checkpoint
from rnnkit.data.pairs import Pairs
from rnnkit.data.subwords import BOS, EOS, PAD, SubwordVocabulary
from rnnkit.errors import RnnkitError
from rnnkit.tasks.beam import translate_ids
from rnnkit.tasks.translate import PairBatches, Translator, TranslatorConfig
from rnnkit.tasks.translate_metrics import corpus_scores
from rnnkit.tasks.translate_training import evaluate_translator, load_translator, translate_texts


def tiny(**options):
    torch.manual_seed(0)
    config = {"embedding_size": 8, "hidden_size": 8, "dropout": 0.0, **options}
    return Translator(TranslatorConfig(12, 12, **config)).eval()


@pytest.mark.parametrize(("cell", "attention"), [("lstm", "general"), ("gru", "dot"), ("lstm", "additive")])
def test_teacher_forcing_equals_the_step_api(cell, attention):
    model = tiny(cell=cell, attention=attention, num_layers=2)
    source, lengths = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]]), torch.tensor([4, 2])
    target_in = torch.tensor([[BOS, 5, 6, 7], [BOS, 9, 10, EOS]])
    with torch.no_grad():
        logits = model(source, lengths, target_in)
        memory = model.encode(source, lengths)
        state = model.start(memory)
        for t in range(target_in.shape[1]):
            log_probs, state, weights = model.step(target_in[:, t], state, memory)
            torch.testing.assert_close(log_probs, logits[:, t].log_softmax(-1))
            assert torch.all(weights[1, 2:] == 0)  # never attends to padding


def test_padding_does_not_change_a_sentence():
    model = tiny()
    alone = model(torch.tensor([[7, 8]]), torch.tensor([2]), torch.tensor([[BOS, 9]]))
    padded = model(torch.tensor([[7, 8, 0, 0], [3, 4, 5, 6]]), torch.tensor([2, 4]), torch.tensor([[BOS, 9], [BOS, 5]]))
    torch.testing.assert_close(alone[0], padded[0], atol=1e-6, rtol=1e-5)


def test_a_tiny_model_learns_to_reverse():
    torch.manual_seed(0)
    model = Translator(TranslatorConfig(12, 12, embedding_size=16, hidden_size=32, dropout=0.0, label_smoothing=0.0))
    sources = [[3 + (i % 9), 3 + (i * 7 % 9), 3 + (i * 5 % 9)] for i in range(30)]
    data = PairBatches(sources, [s[::-1] for s in sources], 30, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    model.train()
    for epoch in range(80):
        for batch in data.batches(epoch):
            optimizer.zero_grad()
            model.loss(batch).loss.backward()
            optimizer.step()
    decoded = translate_ids(model, sources, beam_size=3)
    assert sum(h[0].tokens == s[::-1] for h, s in zip(decoded, sources, strict=True)) >= 27


def test_loss_counts_target_tokens_and_smooths():
    source, lengths = torch.tensor([[3, 4]]), torch.tensor([2])
    target_in, target_out = torch.tensor([[BOS, 5, EOS]]), torch.tensor([[5, EOS, PAD]])
    plain = tiny(label_smoothing=0.0).loss((source, lengths, target_in, target_out))
    smoothed = tiny(label_smoothing=0.2).loss((source, lengths, target_in, target_out))
    assert plain.units == 2  # padding is not a token
    assert smoothed.loss > 0 and not torch.isclose(plain.loss, smoothed.loss)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"cell": "rnn"}, "Unknown cell"), ({"attention": "x"}, "Unknown attention"), ({"hidden_size": 7}, "even"),
     ({"dropout": 1.0}, "dropout")],
)  # fmt: skip
def test_bad_configs_are_refused(options, message):
    with pytest.raises(RnnkitError, match=message):
        TranslatorConfig(10, 10, **options)


def test_metrics_are_sacrebleus():
    hypotheses = ["The house is very old.", "We go home.", "A dog barks."]
    references = ["The house is very old.", "We are going home.", "The dog barks loudly."]
    scores = corpus_scores(hypotheses, references)
    assert scores["bleu"] == round(BLEU().corpus_score(hypotheses, [references]).score, 2)
    assert scores["chrf"] == round(CHRF().corpus_score(hypotheses, [references]).score, 2)
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    with pytest.raises(RnnkitError, match="2 translations but 3 references"):
        corpus_scores(hypotheses[:2], references)


def save_tiny_run(directory):
    vocabulary = SubwordVocabulary.fit(["der hund", "the dog"], 260)
    model = Translator(TranslatorConfig(vocabulary.vocab_size, vocabulary.vocab_size, embedding_size=8, hidden_size=8))
    run_config = {"task": "translate", "model": asdict(model.config), "vocabularies": [vocabulary.to_config()] * 2}
    checkpoint.save_model(directory, model, run_config)


def test_translate_texts_takes_a_model_from_rnnkit_load(tmp_path):
    save_tiny_run(tmp_path)
    loaded = rnnkit.load(tmp_path)  # no vocabularies attached: translate_texts reads them from config.json
    [result] = translate_texts(loaded, ["der hund"], beam_size=2)
    assert result == translate_texts(load_translator(tmp_path), ["der hund"], beam_size=2)[0]
    with pytest.raises(RnnkitError, match="load_translator"):
        translate_texts(tiny(), ["der hund"])


def test_evaluate_translator_leaves_the_callers_grad_mode_as_it_was(tmp_path):
    save_tiny_run(tmp_path)
    with torch.no_grad():
        scores = evaluate_translator(tmp_path, Pairs(["der hund"], ["the dog"]), beam_size=1)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled() and scores["n"] == 1
