r"""Sequence-to-sequence translation: a bidirectional recurrent encoder, an LSTM decoder with attention and
input feeding (Bahdanau et al. 2015; Luong et al. 2015), tied output embeddings and label smoothing.

Encoder: source ids -> embeddings -> bidirectional rnnkit LSTM/GRU over ``lengths=`` with ``H/2`` units a
direction, so its outputs, the memory :math:`\bar h_s`, are ``H`` wide. The decoder's first state is a bridge
from the encoder's final states, :math:`h_0 = \tanh(W_b [\overrightarrow{h}_S; \overleftarrow{h}_1])` per
layer (:math:`c_0 = 0`).

Decoder, one step through :meth:`rnnkit.LSTM.step` (teacher forcing in training: :math:`y_{t-1}` is the
reference's previous token):

.. math::
    h_t = \mathrm{LSTM}([E y_{t-1}; \tilde h_{t-1}], h_{t-1})      \quad\text{(input feeding)}
    c_t, a_t = \mathrm{attention}(h_t, \bar h)                      \quad\text{(rnnkit.tasks.attention)}
    \tilde h_t = \tanh(W_c [c_t; h_t])
    p(y_t \mid y_{<t}, x) = \mathrm{softmax}(E\, W_p \tilde h_t + b)  \quad\text{(E tied: the target embedding)}

Loss: cross-entropy with label smoothing :math:`\epsilon` (the target distribution is
:math:`(1-\epsilon)\,\mathrm{onehot}(y) + \epsilon/V`), averaged over target tokens (padding ignored).

Decoding (greedy and beam search) is in :mod:`rnnkit.tasks.beam`; it drives :meth:`Translator.encode`,
:meth:`Translator.start` and :meth:`Translator.step`.

Shape legend: N batch, S source length, T target length, E embedding, H hidden, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from rnnkit.data.buckets import bucketed_batches
from rnnkit.data.subwords import BOS, EOS, PAD
from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM
from rnnkit.tasks.attention import KINDS, Attention
from rnnkit.train import LossOutput

ENCODERS = {"lstm": LSTM, "gru": GRU}


@dataclass(frozen=True)
class TranslatorConfig:
    source_vocab_size: int
    target_vocab_size: int
    cell: str = "lstm"  # the encoder's; the decoder is always an LSTM
    embedding_size: int = 256
    hidden_size: int = 256  # decoder; H/2 per encoder direction
    num_layers: int = 1  # encoder and decoder each
    attention: str = "general"
    input_feeding: bool = True
    dropout: float = 0.3  # embeddings, between layers, attentional vector (low-resource: strong dropout helps)
    label_smoothing: float = 0.1
    tie_embeddings: bool = True
    max_length: int = 100  # subword tokens; longer sources are cut at inference, longer pairs skipped in training

    def __post_init__(self) -> None:
        if self.cell not in ENCODERS:
            raise RnnkitError(f"Unknown cell {self.cell!r}. Select from {', '.join(ENCODERS)}.")
        if self.attention not in KINDS:
            raise RnnkitError(f"Unknown attention {self.attention!r}. Select from {', '.join(KINDS)}.")
        for name in ("source_vocab_size", "target_vocab_size", "embedding_size", "num_layers", "max_length"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.hidden_size < 2 or self.hidden_size % 2:
            raise RnnkitError(f"hidden_size must be even (half per encoder direction), got {self.hidden_size}.")
        for name in ("dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be in [0, 1), got {getattr(self, name)}.")


class Memory(NamedTuple):
    """What the decoder attends to: outputs (N, S, H), their attention keys (N, S, H), mask (N, S)."""

    outputs: Tensor
    keys: Tensor
    mask: Tensor

    def select(self, index: Tensor) -> Memory:
        return Memory(*(t.index_select(0, index) for t in self))


class DecoderState(NamedTuple):
    """The decoder between steps: LSTM state ((layers, N, H) twice), the fed-back attentional vector
    (N, H), and the attention summed over steps so far, (N, S) (for the coverage penalty)."""

    rnn: tuple[Tensor, Tensor]
    feed: Tensor
    coverage: Tensor

    def select(self, index: Tensor) -> DecoderState:
        h, c = self.rnn
        return DecoderState(
            (h.index_select(1, index), c.index_select(1, index)),
            self.feed.index_select(0, index),
            self.coverage.index_select(0, index),
        )


Batch = tuple[Tensor, Tensor, Tensor, Tensor]  # source (N, S), lengths (N,), target in (N, T), target out (N, T)


class Translator(nn.Module):
    """The encoder-decoder of the module docstring. ``vocabularies`` (source, target) are attached by the
    training code or :func:`rnnkit.tasks.translate_training.load_translator` (from ``config.json``; not by
    :func:`rnnkit.load`) and used by :meth:`evaluate`'s BLEU."""

    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__()
        self.config = config
        E, H, layers = config.embedding_size, config.hidden_size, config.num_layers
        self.source_embedding = nn.Embedding(config.source_vocab_size, E, padding_idx=PAD)
        self.target_embedding = nn.Embedding(config.target_vocab_size, E, padding_idx=PAD)
        between = config.dropout if layers > 1 else 0.0
        self.encoder = ENCODERS[config.cell](E, H // 2, layers, batch_first=True, bidirectional=True, dropout=between)
        self.bridge = nn.Linear(H, H)
        self.decoder = LSTM(E + (H if config.input_feeding else 0), H, layers, dropout=between)
        self.attention = Attention(H, config.attention)
        self.combine = nn.Linear(2 * H, H, bias=False)  # W_c
        if config.tie_embeddings:
            self.output_projection = nn.Linear(H, E, bias=False)  # W_p, then E^T
            self.output_bias = nn.Parameter(torch.zeros(config.target_vocab_size))
        else:
            self.output = nn.Linear(H, config.target_vocab_size)
        self.vocabularies = None

    @classmethod
    def from_config(cls, model_config: dict) -> Translator:
        return cls(TranslatorConfig(**model_config))

    # --- the network ---------------------------------------------------------------------------------------

    def encode(self, source: Tensor, lengths: Tensor) -> Memory:
        """Source ids ``(N, S)`` and lengths ``(N,)`` -> the memory the decoder attends to."""
        embedded = F.dropout(self.source_embedding(source), self.config.dropout, self.training)
        outputs, _ = self.encoder(embedded, lengths=lengths)  # (N, S, H): [forward; backward] per position
        mask = torch.arange(source.shape[1], device=source.device)[None, :] < lengths.to(source.device)[:, None]
        return Memory(outputs, self.attention.keys(outputs), mask)

    def start(self, memory: Memory) -> DecoderState:
        """The decoder's state before the first target token (the bridge from the encoder's final states)."""
        outputs, _, mask = memory
        N, S, H = outputs.shape
        last = mask.sum(1) - 1  # (N,): each sentence's last real position
        forward_final = outputs[torch.arange(N), last, : H // 2]  # (N, H/2)
        backward_final = outputs[:, 0, H // 2 :]  # the reverse direction ends at position 0
        h0 = torch.tanh(self.bridge(torch.cat([forward_final, backward_final], dim=-1)))  # (N, H)
        h0 = h0[None].expand(self.config.num_layers, N, H).contiguous()  # -> (layers, N, H)
        return DecoderState((h0, torch.zeros_like(h0)), outputs.new_zeros(N, H), outputs.new_zeros(N, S))

    def advance(self, token: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """One decoder step from the previous token ``(N,)``: the attentional vector :math:`\\tilde h_t` ``(N, H)``,
        the new state and the attention weights ``(N, S)``."""
        x = F.dropout(self.target_embedding(token), self.config.dropout, self.training)  # (N, E)
        if self.config.input_feeding:
            x = torch.cat([x, state.feed], dim=-1)  # -> (N, E + H)
        h, rnn_state = self.decoder.step(x, state.rnn)
        context, weights = self.attention(h, memory.outputs, memory.keys, memory.mask)
        attentional = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))
        attentional = F.dropout(attentional, self.config.dropout, self.training)
        return attentional, DecoderState(rnn_state, attentional, state.coverage + weights), weights

    def logits(self, attentional: Tensor) -> Tensor:
        """``(..., H)`` -> ``(..., V)`` through the tied target embedding (or a plain output layer)."""
        if self.config.tie_embeddings:
            return F.linear(self.output_projection(attentional), self.target_embedding.weight, self.output_bias)
        return self.output(attentional)

    def step(self, token: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """Log-probabilities ``(N, V)`` of the next token, the new state and the attention ``(N, S)``."""
        attentional, state, weights = self.advance(token, state, memory)
        return self.logits(attentional).log_softmax(dim=-1), state, weights

    def forward(self, source: Tensor, lengths: Tensor, target_in: Tensor) -> Tensor:
        """Teacher-forced logits ``(N, T, V)`` for ``target_in`` ``(N, T)`` (``<bos>`` then the reference)."""
        memory = self.encode(source, lengths)
        state = self.start(memory)
        attentional = []
        for t in range(target_in.shape[1]):
            a, state, _ = self.advance(target_in[:, t], state, memory)
            attentional.append(a)
        return self.logits(torch.stack(attentional, dim=1))  # one product for every step: (N, T, V)

    # --- the task-model contract ---------------------------------------------------------------------------

    def loss(self, batch: Batch) -> LossOutput:
        """Label-smoothed cross-entropy per target token."""
        source, lengths, target_in, target_out = batch
        logits = self(source, lengths, target_in)
        loss = F.cross_entropy(
            logits.flatten(0, 1),
            target_out.flatten(),
            ignore_index=PAD,
            label_smoothing=self.config.label_smoothing,
        )
        return LossOutput(loss, int((target_out != PAD).sum()))

    @torch.no_grad()
    def evaluate(self, data: PairBatches) -> dict:
        """Per-token NLL (no smoothing) and perplexity of ``data``; with vocabularies attached, also greedy
        sacrebleu BLEU/chrF against its references and ``bleu_gap`` = 100 - BLEU (lower is better, a
        ``monitor`` for the Trainer)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        total, tokens = 0.0, 0
        for source, lengths, target_in, target_out in data.batches():
            logits = self(source.to(device), lengths.to(device), target_in.to(device))
            target_out = target_out.to(device)
            total += F.cross_entropy(
                logits.flatten(0, 1), target_out.flatten(), ignore_index=PAD, reduction="sum"
            ).item()
            tokens += int((target_out != PAD).sum())
        loss = total / max(1, tokens)
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50))}
        if self.vocabularies is not None and data.references is not None:
            from rnnkit.tasks.beam import translate_ids
            from rnnkit.tasks.translate_metrics import corpus_scores

            hypotheses = translate_ids(self, data.source_ids, beam_size=1)
            texts = [self.vocabularies[1].decode(h[0].tokens) for h in hypotheses]
            scores = corpus_scores(texts, data.references)
            metrics.update(bleu=scores["bleu"], chrf=scores["chrf"], bleu_gap=100 - scores["bleu"])
        self.train(was_training)
        return metrics


# --- batches -----------------------------------------------------------------------------------------------


class PairBatches:
    """Source and target id sequences in length-bucketed batches of :data:`Batch`.

    Training order (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, cut into pools of 50
    batches sorted by source length, batches shuffled (the same batches for the same epoch: the Trainer's
    resume contract). Evaluation order: longest first. ``references`` (detokenised target texts, in input
    order) let :meth:`Translator.evaluate` score BLEU.
    """

    def __init__(
        self,
        source_ids: list[list[int]],
        target_ids: list[list[int]],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        references: list[str] | None = None,
    ) -> None:
        if batch_size < 1:
            raise RnnkitError(f"batch_size must be at least 1, got {batch_size}.")
        if len(source_ids) != len(target_ids):
            raise RnnkitError(f"{len(source_ids)} sources but {len(target_ids)} targets; give one target per source.")
        empty = [i for i, (s, t) in enumerate(zip(source_ids, target_ids, strict=True)) if not s or not t]
        if empty:
            raise RnnkitError(f"pair {empty[0]} has an empty side after tokenising; drop it.")
        self.source_ids = source_ids
        self.sources = [torch.tensor(s, dtype=torch.long) for s in source_ids]
        self.targets = [torch.tensor([BOS, *t, EOS], dtype=torch.long) for t in target_ids]
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.references = references

    def __len__(self) -> int:
        return math.ceil(len(self.sources) / self.batch_size)

    def _order(self, epoch: int) -> list[list[int]]:
        return bucketed_batches(
            [len(s) for s in self.sources], self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch
        )

    def batches(self, epoch: int = 0):
        for index in self._order(epoch):
            source = pad_sequence([self.sources[i] for i in index], batch_first=True, padding_value=PAD)
            target = pad_sequence([self.targets[i] for i in index], batch_first=True, padding_value=PAD)
            lengths = torch.tensor([len(self.sources[i]) for i in index])
            yield source, lengths, target[:, :-1], target[:, 1:]  # teacher forcing: input is output shifted
