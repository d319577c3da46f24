r"""Speech recognition: log-mel -> conv subsampling -> stacked (bi)directional LSTM/GRU -> CTC over characters.

The shape of DeepSpeech 2, SpeechBrain's CRDNN and ESPnet's RNN encoders:

.. math::
    x_{1..L} = \mathrm{logmel}(\text{audio}) \in \mathbb{R}^{L \times 80} \quad (10\ \text{ms frames})

    u_{1..L/4} = \mathrm{ReLU}(\mathrm{Conv}_{3\times3}^{/2}(\mathrm{ReLU}(\mathrm{Conv}_{3\times3}^{/2}(x))))
    \quad (\text{time and frequency halved twice: 40 ms frames, } C \cdot 20 \text{ features})

    o_t = [\overrightarrow{h}_t; \overleftarrow{h}_t] \ \text{(num\_layers BiLSTM/BiGRU over the true lengths)},
    \qquad y_{t,k} = \mathrm{softmax}(W_k o_t + b_k) \in \Delta^{V}, \quad k = 1..K

where :math:`K` (``upsampling``, default 1) output frames per 40 ms frame give CTC room for fast speech: it
needs a frame per character, and one more between repeated characters, and fast synthetic speech reaches 0.8
characters per 40 ms frame, where its deletions double. The output frames are ``y_{1,1}, .., y_{1,K}, y_{2,1},
..``: each 40 ms state writes K, so the recurrence costs the same.

The model is trained with the CTC loss :math:`-\log P(W \mid x)` (``torch.nn.functional.ctc_loss``, blank id 0, averaged
over each text's length) and decoded greedily or by prefix beam search (:mod:`rnnkit.tasks.ctc_decode`).

The **streaming** variant (``bidirectional=False``) reads only the past: its convolutions pad time on the
left only, so encoder frame ``j`` sees input frames up to ``4j + 3``, and its features are normalised with
mean and deviation fitted on the training set (``normalisation="global"``) instead of per utterance.
:class:`rnnkit.tasks.asr_streaming.StreamingRecognizer` then feeds audio chunk by chunk and carries the
convolution caches and the recurrent state, giving the same output as the whole file at once.

Shapes: N batch, L frames (10 ms), L' = ceil(ceil(L/2)/2) encoder frames (40 ms), K L' output frames,
F mel bands, C channels, D directions, H hidden, V = characters + 1 (blank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jiwer
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from rnnkit.data.audio import (
    FRAME_SHIFT,
    NUM_MELS,
    SAMPLE_RATE,
    LogMel,
    normalise_utterance,
    perturb_speed,
    spec_augment,
    warp_frequencies,
)
from rnnkit.data.buckets import bucketed_batches
from rnnkit.data.speech_texts import ALPHABET
from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM
from rnnkit.tasks.ctc_decode import greedy
from rnnkit.train import LossOutput

LAYERS = {"lstm": LSTM, "gru": GRU}
NORMALISATIONS = ("utterance", "global")
SUBSAMPLING = 4


@dataclass(frozen=True)
class SpeechRecognizerConfig:
    alphabet: str = ALPHABET
    num_mels: int = NUM_MELS
    conv_channels: int = 32
    cell: str = "gru"
    hidden_size: int = 256
    num_layers: int = 3
    bidirectional: bool = True  # False: the streaming variant (causal convolutions, global normalisation)
    dropout: float = 0.2  # between recurrent layers and before the output layer
    normalisation: str = "utterance"  # "global" for streaming: a stream has no whole utterance to average
    upsampling: int = 1  # CTC output frames per 40 ms encoder frame

    def __post_init__(self) -> None:
        if self.cell not in LAYERS:
            raise RnnkitError(f"Unknown cell {self.cell!r}. Select from {', '.join(LAYERS)}.")
        if self.normalisation not in NORMALISATIONS:
            raise RnnkitError(f"Unknown normalisation {self.normalisation!r}. Select from {', '.join(NORMALISATIONS)}.")
        if not self.bidirectional and self.normalisation != "global":
            raise RnnkitError("the streaming (unidirectional) model needs normalisation='global'.")
        for name in ("num_mels", "conv_channels", "hidden_size", "num_layers", "upsampling"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not 0 <= self.dropout < 1:
            raise RnnkitError(f"dropout must be a probability in [0, 1), got {self.dropout}.")
        if len(set(self.alphabet)) != len(self.alphabet) or not self.alphabet:
            raise RnnkitError("the alphabet must be non-empty characters without repeats.")


def output_lengths(lengths: Tensor) -> Tensor:
    """Frames after two stride-2 convolutions: ``ceil(ceil(L / 2) / 2)``."""
    return (((lengths + 1) // 2) + 1) // 2


class ConvSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions with ReLU over (time, mel): ``(N, L, F)`` -> ``(N, L', C * F'')``.

    ``causal``: time is padded by 2 frames on the left (the previous chunk's last frames when streaming,
    zeros at the start) and none on the right; otherwise 1 on each side. Frequency is padded 1 each side.
    """

    def __init__(self, num_mels: int, channels: int, *, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2)
        self.output_size = channels * ((((num_mels + 1) // 2) + 1) // 2)

    def _conv(self, conv: nn.Conv2d, x: Tensor, lengths: Tensor, left: Tensor | None):
        """One padded convolution + ReLU; zeros after each sequence's end. -> (y, lengths, new left context)."""
        if self.causal:
            if left is None:
                left = x.new_zeros(x.shape[0], x.shape[1], 2, x.shape[3])
            x = torch.cat([left, x], dim=2)  # -> (N, C_in, 2 + L, F)
            left = x[:, :, -2:]
            x = F.pad(x, (1, 1, 0, 0))
        else:
            x = F.pad(x, (1, 1, 1, 1))
        y = F.relu(conv(x))  # -> (N, C, ceil(L/2), ceil(F/2))
        lengths = (lengths + 1) // 2
        # what lies past a sequence's end must look like the zero padding it would have alone
        valid = torch.arange(y.shape[2], device=y.device)[None, :] < lengths.to(y.device)[:, None]
        return y * valid[:, None, :, None], lengths, left

    def forward(self, x: Tensor, lengths: Tensor, cache: tuple | None = None):
        """``x`` ``(N, L, F)`` -> ``(N, L', C * F'')``, lengths ``(N,)``, and the cache for the next chunk."""
        first, second = cache if cache is not None else (None, None)
        y, lengths, first = self._conv(self.conv1, x.unsqueeze(1), lengths, first)
        y, lengths, second = self._conv(self.conv2, y, lengths, second)
        y = y.permute(0, 2, 1, 3).flatten(2)  # (N, C, L', F'') -> (N, L', C * F'')
        return y, lengths, (first, second)


# features (N, L, F), lengths (N,), targets (N, max U) padded, target lengths (N,)
Batch = tuple[Tensor, Tensor, Tensor, Tensor]


class SpeechRecognizer(nn.Module):
    """The acoustic model and its CTC decoding (see the module docstring).

    Attributes:
        feature_mean, feature_std: ``(F,)`` buffers, the training set's statistics (global normalisation).
    """

    def __init__(self, config: SpeechRecognizerConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = ConvSubsampling(config.num_mels, config.conv_channels, causal=not config.bidirectional)
        self.rnn = LAYERS[config.cell](
            self.frontend.output_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        directions = 2 if config.bidirectional else 1
        self.output = nn.Linear(config.hidden_size * directions, config.upsampling * (len(config.alphabet) + 1))
        self.register_buffer("feature_mean", torch.zeros(config.num_mels))
        self.register_buffer("feature_std", torch.ones(config.num_mels))
        self.log_mel = LogMel(config.num_mels)
        self.char_ids = {c: i + 1 for i, c in enumerate(config.alphabet)}

    @classmethod
    def from_config(cls, model_config: dict) -> SpeechRecognizer:
        return cls(SpeechRecognizerConfig(**model_config))

    @property
    def frame_seconds(self) -> float:
        return SUBSAMPLING * FRAME_SHIFT / SAMPLE_RATE / self.config.upsampling  # 40 ms / K per output frame

    # --- features and text ---------------------------------------------------------------------------------

    def raw_features(self, audio: np.ndarray) -> Tensor:
        """Unnormalised log-mel ``(L, F)`` of a 16 kHz waveform."""
        return self.log_mel(audio)

    def normalise(self, raw: Tensor) -> Tensor:
        if self.config.normalisation == "utterance":
            return normalise_utterance(raw)
        return (raw - self.feature_mean.cpu()) / self.feature_std.cpu()

    def features(self, audio: np.ndarray) -> Tensor:
        """Normalised log-mel ``(L, F)``, on the model's device: what :meth:`forward` reads."""
        return self.normalise(self.raw_features(audio).to(self.feature_mean.device))

    def fit_normalisation(self, raw_features: list[Tensor]) -> None:
        """Set the global mean and deviation per band from training features (Chan's pooled variance)."""
        frames = torch.cat([f.double() for f in raw_features])
        self.feature_mean.copy_(frames.mean(dim=0).float())
        self.feature_std.copy_(frames.std(dim=0, unbiased=False).float().clamp_min(1e-5))

    def encode_text(self, text: str) -> list[int]:
        unknown = sorted({c for c in text if c not in self.char_ids})
        if unknown:
            raise RnnkitError(f"the transcript {text!r} has characters outside the alphabet: {''.join(unknown)!r}.")
        return [self.char_ids[c] for c in text]

    # --- the network ---------------------------------------------------------------------------------------

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``features`` ``(N, L, F)``, ``lengths`` ``(N,)`` -> log-probabilities ``(N, K L', V)``, ``(N,)`` lengths."""
        x, out_lengths, _ = self.frontend(features, lengths)  # -> (N, L', C * F'')
        output, _ = self.rnn(x, lengths=out_lengths)  # -> (N, L', D*H)
        output = F.dropout(output, self.config.dropout, self.training)
        return self.classify(output), out_lengths * self.config.upsampling

    def classify(self, output: Tensor) -> Tensor:
        """Recurrent outputs ``(N, L', D*H)`` -> log-probabilities ``(N, K L', V)``, K = ``upsampling``."""
        logits = self.output(output)  # -> (N, L', K V)
        logits = logits.reshape(logits.shape[0], -1, len(self.config.alphabet) + 1)  # frame t's K in a row
        return F.log_softmax(logits, dim=-1)

    def loss(self, batch: Batch) -> LossOutput:
        """CTC loss, each utterance's divided by its text length, averaged over the batch."""
        features, lengths, targets, target_lengths = batch
        log_probs, out_lengths = self(features, lengths)
        return LossOutput(ctc_loss(log_probs, out_lengths, targets, target_lengths), features.shape[0])

    @torch.no_grad()
    def log_probs(self, data: SpeechBatches) -> list[np.ndarray]:
        """Per utterance of ``data``, in its own order, the log-probabilities ``(L', V)``."""
        return self._score(data, with_loss=False)[0]

    def evaluate(self, data: SpeechBatches) -> dict:
        """CTC loss, and greedy-decoding CER and WER (jiwer) of ``data``."""
        outputs, loss = self._score(data, with_loss=True)
        hypotheses = [greedy(lp, self.config.alphabet)[0] for lp in outputs]
        return {"loss": loss, **error_rates(data.texts, hypotheses)}

    @torch.no_grad()
    def _score(self, data: SpeechBatches, *, with_loss: bool) -> tuple[list[np.ndarray], float]:
        """Per utterance the log-probabilities ``(L', V)``, and (``with_loss``) the mean CTC loss per utterance,
        from one forward pass (validation runs every epoch inside the training budget; it used to run the
        network twice)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        result: list[np.ndarray | None] = [None] * len(data.texts)
        total = 0.0
        for features, lengths, targets, target_lengths, index in data.batches_with_index():
            log_probs, out_lengths = self(features.to(device), lengths.to(device))
            if with_loss:
                loss = ctc_loss(log_probs, out_lengths, targets.to(device), target_lengths.to(device))
                total += loss.item() * len(index)
            for row, i in enumerate(index.tolist()):
                result[i] = log_probs[row, : out_lengths[row]].float().cpu().numpy()
        self.train(was_training)
        return result, total / max(1, len(data.texts))


def ctc_loss(log_probs: Tensor, out_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """``torch.nn.functional.ctc_loss`` of ``(N, L', V)`` log-probabilities, blank id 0, each utterance's loss
    divided by its text length and averaged over the batch."""
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),  # -> (L', N, V), as ctc_loss wants
        targets,
        out_lengths,
        target_lengths,
        blank=0,
        reduction="mean",
        zero_infinity=True,  # a text too long for its audio gives no gradient instead of inf
    )


def error_rates(references: list[str], hypotheses: list[str]) -> dict:
    """Corpus WER and CER by jiwer (errors summed over utterances / reference words or characters)."""
    if not references:
        return {"wer": math.nan, "cer": math.nan}
    return {"wer": float(jiwer.wer(references, hypotheses)), "cer": float(jiwer.cer(references, hypotheses))}


# --- batches -----------------------------------------------------------------------------------------------


class SpeechBatches:
    """Normalised features and transcripts in length-bucketed batches of ``(features, lengths, targets,
    target_lengths)``.

    Training order (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, cut into pools of 50
    batches, each pool sorted by length and cut into batches, batches shuffled; augmentation (``augment``:
    speed perturbation by a factor uniform in ``[1 - speed, 1 + speed]`` per utterance when ``speed > 0``,
    a frequency warp (VTLP) by a factor uniform in ``[1 - warp, 1 + warp]`` when ``warp > 0``, then
    SpecAugment) is seeded by ``(seed, epoch, batch)``; so ``batches(epoch)`` is the same for the same
    epoch (the Trainer's resume contract). Evaluation order (``shuffle=False``): longest first, unchanged.

    ``weights`` (training only): each epoch draws as many utterances as there are, with replacement, each with
    probability proportional to its weight (as ``torch.utils.data.WeightedRandomSampler``), seeded by
    ``(seed, epoch)``; the draw is then bucketed as above.
    """

    def __init__(self, features: list[Tensor], targets: list[list[int]], texts: list[str], batch_size: int, *,
                 shuffle: bool, seed: int = 0, augment: bool = False, speed: float = 0.0,
                 warp: float = 0.0, weights: Tensor | None = None) -> None:  # fmt: skip
        if batch_size < 1:
            raise RnnkitError(f"batch_size must be at least 1, got {batch_size}.")
        if not 0 <= speed < 0.5:
            raise RnnkitError(f"speed perturbation must be in [0, 0.5), got {speed}.")
        if not 0 <= warp < 0.5:
            raise RnnkitError(f"the frequency warp must be in [0, 0.5), got {warp}.")
        self.features = features
        self.targets = [torch.tensor(t, dtype=torch.long) for t in targets]
        self.texts = texts
        self.lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
        self.batch_size, self.shuffle, self.seed, self.augment = batch_size, shuffle, seed, augment
        self.speed, self.warp = speed, warp
        if weights is not None and (
            len(weights) != len(features) or not bool((weights >= 0).all() and weights.sum() > 0)
        ):
            raise RnnkitError("sampling weights need one non-negative weight per utterance, not all zero.")
        self.weights = weights

    def __len__(self) -> int:
        return math.ceil(len(self.features) / self.batch_size)

    def _order(self, epoch: int) -> list[list[int]]:
        if self.weights is None or not self.shuffle:
            return bucketed_batches(
                self.lengths.tolist(), self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch
            )
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        drawn = torch.multinomial(self.weights.double(), len(self.features), replacement=True, generator=generator)
        drawn = drawn.tolist()
        lengths = [int(self.lengths[i]) for i in drawn]
        batches = bucketed_batches(lengths, self.batch_size, shuffle=True, seed=self.seed, epoch=epoch)
        return [[drawn[j] for j in batch] for batch in batches]

    def _collate(self, index: list[int], generator: torch.Generator | None) -> Batch:
        clips = [self.features[i].float() for i in index]
        if generator is not None and self.speed > 0:
            factors = 1 + self.speed * (2 * torch.rand(len(clips), generator=generator, dtype=torch.float64) - 1)
            clips = [perturb_speed(clip, float(factor)) for clip, factor in zip(clips, factors, strict=True)]
        if generator is not None and self.warp > 0:
            factors = 1 + self.warp * (2 * torch.rand(len(clips), generator=generator, dtype=torch.float64) - 1)
            clips = [warp_frequencies(clip, float(factor)) for clip, factor in zip(clips, factors, strict=True)]
        features = pad_sequence(clips, batch_first=True)  # -> (N, L, F)
        lengths = torch.tensor([len(clip) for clip in clips], dtype=torch.long)
        if generator is not None:
            features = spec_augment(features, lengths, generator)
        # (N, S) padded, not one concatenated row: under torchrun each rank takes whole rows of the batch
        targets = pad_sequence([self.targets[i] for i in index], batch_first=True)
        target_lengths = torch.tensor([len(self.targets[i]) for i in index], dtype=torch.long)
        return features, lengths, targets, target_lengths

    def batches(self, epoch: int = 0):
        for number, index in enumerate(self._order(epoch)):
            generator = None
            if self.augment and self.shuffle:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 10_007 + number)
            yield self._collate(index, generator)

    def batches_with_index(self):
        for index in self._order(0):
            yield (*self._collate(index, None), torch.tensor(index))
