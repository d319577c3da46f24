"""The CTC recogniser: subsampled lengths, padding invariance, streaming equal to offline, learning a tiny
task, error rates against hand counts, deterministic batches."""

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.errors import RnnkitError
from rnnkit.tasks.asr import SpeechBatches, SpeechRecognizer, SpeechRecognizerConfig, error_rates, output_lengths
from rnnkit.tasks.asr_streaming import StreamingRecognizer
from rnnkit.tasks.ctc_decode import greedy
from rnnkit.train import TrainConfig, Trainer

TINY = {"num_mels": 16, "conv_channels": 4, "hidden_size": 12, "num_layers": 2, "dropout": 0.0}


@pytest.mark.parametrize("bidirectional", [True, False])
def test_frontend_output_lengths_follow_the_formula(bidirectional):
    config = SpeechRecognizerConfig(**TINY, bidirectional=bidirectional,
                                    normalisation="utterance" if bidirectional else "global")  # fmt: skip
    model = SpeechRecognizer(config)
    for length in (1, 2, 3, 4, 5, 8, 13):
        x, lengths, _ = model.frontend(torch.randn(1, length, 16), torch.tensor([length]))
        assert x.shape == (1, int(output_lengths(torch.tensor(length))), model.frontend.output_size)
        assert int(lengths) == math.ceil(math.ceil(length / 2) / 2)


@pytest.mark.parametrize("upsampling", [1, 2])
def test_padded_batch_gives_each_utterance_its_own_output(upsampling):
    model = SpeechRecognizer(SpeechRecognizerConfig(**TINY, upsampling=upsampling)).eval()
    lengths = torch.tensor([23, 9, 16])
    features = torch.randn(3, 23, 16) * (torch.arange(23)[None, :, None] < lengths[:, None, None])
    with torch.no_grad():
        batched, out_lengths = model(features, lengths)
        for n in range(3):
            alone, _ = model(features[n : n + 1, : lengths[n]], lengths[n : n + 1])
            torch.testing.assert_close(batched[n, : out_lengths[n]], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cell", "upsampling"), [("gru", 1), ("lstm", 1), ("gru", 2)])
def test_streaming_chunk_by_chunk_equals_the_whole_file(cell, upsampling):
    torch.manual_seed(1)
    config = SpeechRecognizerConfig(**TINY, cell=cell, bidirectional=False, normalisation="global",
                                    upsampling=upsampling)  # fmt: skip
    model = SpeechRecognizer(config).eval()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 + 777) + 0.3 * np.sin(np.arange(16777) * 0.05)).astype(np.float32)
    model.fit_normalisation([model.raw_features(audio[:8000]), model.raw_features(audio[5000:])])
    with torch.no_grad():
        features = model.features(audio)
        offline, _ = model(features[None], torch.tensor([len(features)]))
    stream = StreamingRecognizer(model, beam=4)
    for start in range(0, len(audio), 1234):  # chunks that cut frames and subsampling groups anywhere
        stream.feed(audio[start : start + 1234])
    stream.finish()
    torch.testing.assert_close(torch.from_numpy(stream.all_log_probs()), offline[0], atol=1e-5, rtol=1e-5)


def test_upsampled_output_writes_each_encoder_frame_k_frames_in_a_row():
    torch.manual_seed(0)
    model = SpeechRecognizer(SpeechRecognizerConfig(**TINY, upsampling=3)).eval()
    features, lengths = torch.randn(2, 21, 16), torch.tensor([21, 13])
    with torch.no_grad():
        log_probs, out_lengths = model(features, lengths)
        encoded, encoder_lengths, _ = model.frontend(features, lengths)
        states, _ = model.rnn(encoded, lengths=encoder_lengths)
    assert out_lengths.tolist() == (3 * encoder_lengths).tolist() == [18, 12]
    vocabulary = len(model.config.alphabet) + 1
    weight, bias = model.output.weight.view(3, vocabulary, -1), model.output.bias.view(3, vocabulary)
    for k in range(3):  # output frame 3t + k is head k of encoder state t
        expected = torch.log_softmax(states @ weight[k].T + bias[k], dim=-1)
        torch.testing.assert_close(log_probs[:, k::3], expected)
    assert model.frame_seconds == pytest.approx(0.04 / 3)


def test_a_checkpoint_config_from_before_upsampling_loads_with_one_output_frame_per_state():
    old = {key: value for key, value in asdict(SpeechRecognizerConfig(**TINY)).items() if key != "upsampling"}
    model = SpeechRecognizer.from_config(old)
    assert model.config.upsampling == 1 and model.output.out_features == len(model.config.alphabet) + 1


def test_streaming_refuses_a_bidirectional_model():
    with pytest.raises(RnnkitError, match="unidirectional"):
        StreamingRecognizer(SpeechRecognizer(SpeechRecognizerConfig(**TINY)))
    with pytest.raises(RnnkitError, match="normalisation='global'"):
        SpeechRecognizerConfig(bidirectional=False)


def _toy_data(model: SpeechRecognizer, n: int = 8, frames: int = 8) -> SpeechBatches:
    """Each character is a distinct pattern of ``frames`` frames: a task a tiny recogniser can learn in seconds."""
    generator = torch.Generator().manual_seed(0)
    patterns = {c: torch.randn(frames, 16, generator=generator) for c in "abc"}
    texts = ["abc", "cab", "ba", "ccab", "acb", "b", "bca", "aab"][:n]
    features = [torch.cat([patterns[c] for c in text]) for text in texts]
    targets = [model.encode_text(t) for t in texts]
    return SpeechBatches(features, targets, texts, 4, shuffle=True, seed=0)


def test_a_tiny_recogniser_learns_to_transcribe(tmp_path):
    torch.manual_seed(0)
    model = SpeechRecognizer(SpeechRecognizerConfig(**{**TINY, "hidden_size": 24}))
    data = _toy_data(model)
    before = model.evaluate(data)
    config = TrainConfig(epochs=60, learning_rate=2e-2, quiet=True, device="cpu", schedule="constant")
    Trainer(model, config, tmp_path, data).fit()  # no validation data: the epochs stay cheap
    after = model.evaluate(data)
    assert after["loss"] < 0.3 * before["loss"] and after["cer"] <= 0.1


def test_upsampling_lets_ctc_read_speech_faster_than_a_character_per_encoder_frame(tmp_path):
    # 30 ms a character: "ccab" has 4 encoder frames (40 ms) but CTC needs 5 (a blank between the c's)
    torch.manual_seed(0)
    fast = {**TINY, "hidden_size": 24}
    model = SpeechRecognizer(SpeechRecognizerConfig(**fast, upsampling=2))
    data = _toy_data(model, frames=3)
    config = TrainConfig(epochs=60, learning_rate=2e-2, quiet=True, device="cpu", schedule="constant")
    Trainer(model, config, tmp_path, data).fit()
    assert model.evaluate(data)["cer"] <= 0.1
    starved = SpeechRecognizer(SpeechRecognizerConfig(**fast))
    finite = []
    with torch.no_grad():
        for features, lengths, targets, target_lengths, _ in data.batches_with_index():
            log_probs, out_lengths = starved(features, lengths)
            losses = F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths, reduction="none")
            finite += torch.isfinite(losses).tolist()
    assert not all(finite)  # without upsampling, "ccab" and "aab" cannot be aligned


def test_evaluate_gives_the_training_loss_and_greedy_rates_from_one_pass():
    torch.manual_seed(0)
    model = SpeechRecognizer(SpeechRecognizerConfig(**TINY)).eval()
    data = _toy_data(model)
    metrics = model.evaluate(data)
    with torch.no_grad():
        outputs = [(model.loss(batch).loss.item(), len(batch[1])) for batch in data.batches(0)]
    expected = sum(loss * n for loss, n in outputs) / sum(n for _, n in outputs)
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    hypotheses = [greedy(lp, model.config.alphabet)[0] for lp in model.log_probs(data)]
    assert metrics["cer"] == pytest.approx(error_rates(data.texts, hypotheses)["cer"])


def test_error_rates_are_jiwers_corpus_rates():
    rates = error_rates(["a b c", "d e"], ["a x c", "d"])
    assert rates["wer"] == pytest.approx(2 / 5)  # one substitution, one deletion, over 5 reference words
    assert rates["cer"] == pytest.approx(3 / 8)  # b->x; " e" deleted; over 8 reference characters


def test_batches_repeat_per_epoch_and_augment_only_when_training():
    model = SpeechRecognizer(SpeechRecognizerConfig(**TINY))
    data = _toy_data(model)
    data.augment = True
    first = [b[0] for b in data.batches(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, [b[0] for b in data.batches(3)], strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(first, [b[0] for b in data.batches(4)], strict=False))
    evaluation = SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=False)
    # speed perturbation: new lengths (the same for the same epoch), the same transcripts
    fast = SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=True,
                         augment=True, speed=0.2)  # fmt: skip
    plain = SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=True)
    for a, b, c in zip(fast.batches(2), fast.batches(2), plain.batches(2), strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert torch.equal(a[2], c[2]) and torch.equal(a[3], c[3])
        assert a[1].shape == c[1].shape and int(a[0].shape[1]) == int(a[1].max())
        assert (a[1] >= (c[1] / 1.2).floor()).all() and (a[1] <= (c[1] / 0.8).ceil()).all()
    assert any(not torch.equal(a[1], c[1]) for a, c in zip(fast.batches(2), plain.batches(2), strict=True))
    with pytest.raises(RnnkitError, match="speed perturbation"):
        SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=True, speed=0.5)
    # a frequency warp: the same lengths and transcripts, other features, the same for the same epoch
    warped = SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=True,
                           augment=True, warp=0.15)  # fmt: skip
    masked = SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=True,
                           augment=True)  # fmt: skip
    for a, b, c in zip(warped.batches(1), warped.batches(1), masked.batches(1), strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert torch.equal(a[1], c[1]) and torch.equal(a[2], c[2]) and not torch.equal(a[0], c[0])
    with pytest.raises(RnnkitError, match="frequency warp"):
        SpeechBatches(data.features, [t.tolist() for t in data.targets], data.texts, 4, shuffle=True, warp=0.5)
    _, lengths, targets, target_lengths = next(evaluation.batches())
    assert lengths.tolist() == sorted(lengths.tolist(), reverse=True)
    assert targets.shape == (len(target_lengths), int(target_lengths.max()))  # one padded row per utterance
    with pytest.raises(RnnkitError, match="outside the alphabet"):
        model.encode_text("hello!")


def test_weighted_batches_draw_by_weight_per_epoch():
    n = 40
    features = [torch.zeros(10 + i, 4) for i in range(n)]
    targets, texts = [[1]] * n, ["a"] * n
    weights = torch.tensor([1.0] * 10 + [0.0] * 30)  # only the first ten can be drawn
    data = SpeechBatches(features, targets, texts, 8, shuffle=True, weights=weights)
    drawn = [i for batch in data._order(0) for i in batch]
    assert len(drawn) == n and set(drawn) <= set(range(10)) and len(set(drawn)) > 5  # with replacement
    assert data._order(0) == data._order(0) and data._order(0) != data._order(1)
    evaluation = SpeechBatches(features, targets, texts, 8, shuffle=False, weights=weights)
    assert sorted(i for batch in evaluation._order(0) for i in batch) == list(range(n))  # evaluation reads all
    with pytest.raises(RnnkitError, match="weights"):
        SpeechBatches(features, targets, texts, 8, shuffle=True, weights=torch.zeros(n))


def test_engine_balance_weights_give_each_engine_its_share():
    import pandas as pd

    from rnnkit.tasks.asr_training import AsrData, engine_weights

    rows = pd.DataFrame({"engine": ["espeak-ng"] * 90 + ["flite"] * 10})
    assert engine_weights(rows, 0.0) is None and engine_weights(rows.drop(columns="engine"), 0.5) is None
    for balance, flite_share in [(0.5, 10**0.5 / (90**0.5 + 10**0.5)), (1.0, 0.5)]:
        weights = engine_weights(rows, balance)
        assert float(weights[90:].sum() / weights.sum()) == pytest.approx(flite_share)
    with pytest.raises(RnnkitError, match="balance-engines"):
        AsrData("corpus", balance=1.5)


def test_a_negative_max_train_is_refused():
    from rnnkit.tasks.asr_training import AsrData

    with pytest.raises(RnnkitError, match="--max-train must be 0 \\(all\\) or positive, got -1"):
        AsrData("corpus", max_train=-1)
    assert AsrData("corpus", max_train=0).max_train == 0


def _one_hot_log_probs(text: str, alphabet: str) -> np.ndarray:
    """Frames that CTC reads as ``text`` exactly: each character, then a blank (so doubled spaces stay)."""
    ids = [i for c in text for i in (alphabet.index(c) + 1, 0)]
    log_probs = np.full((len(ids), len(alphabet) + 1), -20.0, dtype=np.float32)
    log_probs[np.arange(len(ids)), ids] = 0.0
    return log_probs


@pytest.mark.parametrize("beam", [0, 4])
def test_decoded_transcripts_are_single_spaced(beam):
    from rnnkit.tasks.asr_inference import Decoder

    alphabet = SpeechRecognizerConfig().alphabet
    assert Decoder(alphabet, beam=beam)(_one_hot_log_probs(" one  two ", alphabet)) == "one two"


def test_audio_shorter_than_a_frame_is_refused_in_one_line():
    from rnnkit.tasks.asr_inference import Decoder, transcribe_audio

    model = SpeechRecognizer(SpeechRecognizerConfig(**TINY)).eval()
    decoder = Decoder(model.config.alphabet)
    for samples in (0, 10):
        with pytest.raises(RnnkitError, match="at least 25 ms"):
            transcribe_audio(model, np.zeros(samples, dtype=np.float32), decoder)
    assert isinstance(transcribe_audio(model, np.full(400, 0.1, dtype=np.float32), decoder)["text"], str)


def test_a_streamed_transcript_is_single_spaced_and_keeps_its_word_times(tmp_path, monkeypatch):
    import soundfile as sf

    from rnnkit.tasks import asr_inference

    config = SpeechRecognizerConfig(**TINY, bidirectional=False, normalisation="global")
    model = SpeechRecognizer(config).eval()
    log_probs = _one_hot_log_probs(" one  two ", config.alphabet)

    class SpacedRecognizer:  # the streaming beam's text as the tester saw it, spaces and all
        def __init__(self, model, **options):
            pass

        def feed(self, audio):
            return " one "

        def finish(self):
            return " one  two "

        def all_log_probs(self):
            return log_probs

    monkeypatch.setattr(asr_inference, "StreamingRecognizer", SpacedRecognizer)
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(np.arange(8000) * 0.05)).astype(np.float32), 16000)
    shown = []
    result = asr_inference.stream_file(
        model, path, asr_inference.Decoder(config.alphabet, beam=4), on_text=shown.append
    )
    assert result["text"] == "one two" and shown == ["one", "one two"]
    assert [w["word"] for w in result["words"]] == ["one", "two"]
    assert 0 < result["words"][0]["end"] <= result["words"][1]["start"]


def test_a_batch_cut_between_data_parallel_ranks_keeps_each_utterances_transcript():
    """Under torchrun each rank takes whole rows of the batch: its loss, weighted by its rows, adds up to the
    whole batch's (targets joined into one row were cut by characters, not utterances)."""
    from rnnkit.distributed import Context, shard_batch

    torch.manual_seed(0)
    config = SpeechRecognizerConfig(num_mels=16, conv_channels=2, hidden_size=4, num_layers=1)
    model = SpeechRecognizer(config).eval()  # no dropout: the parts must see what the whole saw
    batch = next(iter(_toy_data(model, n=7).batches(0)))
    whole = model.loss(batch).loss
    parts = [shard_batch(batch, Context(rank, 2)) for rank in range(2)]
    for (_, _, targets, target_lengths), _ in parts:
        assert targets.shape[0] == target_lengths.shape[0] and targets.shape[1] >= target_lengths.max()
    torch.testing.assert_close(sum(model.loss(part).loss * weight for part, weight in parts) / 2, whole)
