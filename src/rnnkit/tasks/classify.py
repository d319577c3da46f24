r"""Text classification: embedding -> bidirectional LSTM/GRU over the true lengths -> pooling -> classes.

.. math::
    e_t = E[w_t],\quad (o_1 \dots o_T) = \mathrm{BiRNN}(e_1 \dots e_T),\quad o_t = [\overrightarrow{h}_t;
    \overleftarrow{h}_t]

    \text{pool} = \begin{cases}
        [\overrightarrow{h}_T; \overleftarrow{h}_1] & \text{last} \\
        \max_t o_t & \text{max (per unit)} \\
        \tfrac{1}{T}\sum_t o_t & \text{mean} \\
        \sum_t \alpha_t o_t,\ \alpha = \mathrm{softmax}_t(v^\top \tanh(W o_t)) & \text{attention}
    \end{cases}

    z = W_c\, \mathrm{dropout}(\text{pool}) + b_c,\qquad p(y \mid x) = \mathrm{softmax}(z / \tau)

``T`` is each text's own length: the layers run with ``lengths=``, so padded steps neither feed the
backward direction nor enter the pooling. **Long documents are unrolled over their full length** (no
truncation, no chunking): a 2,000-word review is 2,000 steps each way, and a gradient reaches its first word.
Batches are bucketed by length (:class:`TextBatches`), so short texts are not padded to long ones.

The loss is class-weighted cross-entropy, :math:`-\sum_i w_{y_i} \log p(y_i) / \sum_i w_{y_i}` (``torch``'s
``weight=``). The temperature :math:`\tau` (1 while training) is fitted afterwards on validation logits by
minimising their negative log-likelihood (:func:`fit_temperature`, Guo et al. 2017); it changes the
probabilities, never the predicted class. Calibration is reported as the expected calibration error over 15
equal-width confidence bins, :math:`\mathrm{ECE} = \sum_b \frac{n_b}{n} |\mathrm{acc}_b - \mathrm{conf}_b|`.

**Ensembles.** ``ensemble=K`` holds K such networks, each with its own embedding, recurrent layer, pooling
and output layer, started from different random weights and trained side by side on the same batches, each on
its own loss (the training loss is their mean, so each member's gradient is its own loss's, over K). The
ensemble's logits are the members' mean, :math:`z = \frac{1}{K}\sum_k z_k`, then one temperature is fitted to
them. Averaging independently trained networks removes the part of their error that comes from their
random start (Lakshminarayanan et al. 2017); it costs K times the compute.

**Starting from another model.** From a word language model (ULMFiT-style, Howard & Ruder 2018): its
vocabulary, embedding and first recurrent layer. From another classifier of the same shape (a model of
sentence-level sentiment seeding one of whole reviews, say): its vocabulary and every layer; the output layer
too when its classes can be paired with this task's (by name, or by a given mapping such as fresh -> positive),
otherwise that layer starts afresh.

Shapes: N batch, L time (longest in the batch), E embedding, D directions, H hidden, C classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from rnnkit.data.buckets import bucketed_batches
from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM
from rnnkit.train import LossOutput

LAYERS = {"lstm": LSTM, "gru": GRU}
POOLINGS = ("last", "max", "mean", "attention")
ECE_BINS = 15


@dataclass(frozen=True)
class ClassifierConfig:
    vocab_size: int
    num_classes: int
    cell: str = "lstm"
    embedding_size: int = 50  # GloVe 6B 50d, the vectors we ship
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "attention"  # the best of the four on both sentiment sets (bench/classify.py)
    dropout: float = 0.5  # on the embedded input and on the pooled vector
    word_dropout: float = 0.0  # training only: each token becomes <unk> (id 0) with this probability
    freeze_embeddings: bool = False  # keep the (pretrained) vectors fixed
    class_weights: tuple[float, ...] = ()  # () = all 1; else one weight per class
    ensemble: int = 1  # independent networks whose logits are averaged
    # learning-rate multiplier of the tensors copied from another model (ULMFiT's discriminative
    # fine-tuning); 1 by default: on the snippets 0.1 scored lower than 1 (bench/classify.py --transfer)
    pretrained_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.cell not in LAYERS:
            raise RnnkitError(f"Unknown cell {self.cell!r}. Select from {', '.join(LAYERS)}.")
        if self.pooling not in POOLINGS:
            raise RnnkitError(f"Unknown pooling {self.pooling!r}. Select from {', '.join(POOLINGS)}.")
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "ensemble"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_classes < 2:
            raise RnnkitError(f"num_classes must be at least 2, got {self.num_classes}.")
        if not 0 < self.pretrained_lr_scale < math.inf:
            raise RnnkitError(f"pretrained_lr_scale must be positive, got {self.pretrained_lr_scale}.")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be a probability in [0, 1), got {getattr(self, name)}.")
        if self.class_weights and (len(self.class_weights) != self.num_classes or min(self.class_weights) <= 0):
            raise RnnkitError(
                f"class_weights must be {self.num_classes} positive numbers, one per class, got {self.class_weights}."
            )


Batch = tuple[Tensor, Tensor, Tensor]  # ids (N, L), lengths (N,), labels (N,)


class ClassifierNetwork(nn.Module):
    """One network: embedding -> bidirectional LSTM/GRU -> pooling -> output layer (the module docstring's
    equations without the temperature). :class:`TextClassifier` averages one or more of them."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.embedding.weight.requires_grad_(not config.freeze_embeddings)
        self.rnn = LAYERS[config.cell](
            config.embedding_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
        )
        width = config.hidden_size * (2 if config.bidirectional else 1)
        if config.pooling == "attention":
            self.attention = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False))
        self.output = nn.Linear(width, config.num_classes)

    def load_vectors(self, vectors: Tensor, known: Tensor) -> None:
        """Copy pretrained vectors ``(V, E)`` into the rows where ``known`` ``(V,)`` is True."""
        with torch.no_grad():
            self.embedding.weight[known] = vectors[known].to(self.embedding.weight)

    def init_from_language_model(self, lm: nn.Module) -> list[str]:
        """Start from an rnnkit language model (ULMFiT-style transfer): its embedding, and its first recurrent
        layer as this network's forward direction of layer 0; returns the names of the copied tensors.

        The classifier must use the LM's tokenizer (same ids), cell, embedding and first-layer hidden size.
        """
        source = lm.state_dict()
        if "embedding.weight" not in source and hasattr(lm.embedding, "num_embeddings"):
            # a tied adaptive input has no table of its own: every word's vector, read from the softmax
            with torch.no_grad():
                words = torch.arange(lm.embedding.num_embeddings, device=next(lm.parameters()).device)
                source["embedding.weight"] = lm.embedding(words)
        pairs = {"embedding.weight": "embedding.weight"}
        pairs.update(
            {f"rnn.{name}_l0": f"layers.0.{name}_l0" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        )
        target = self.state_dict()
        for ours, theirs in pairs.items():
            if theirs not in source or source[theirs].shape != target[ours].shape:
                found = tuple(source[theirs].shape) if theirs in source else "missing"
                raise RnnkitError(
                    f"the language model's {theirs} ({found}) does not fit the classifier's {ours} "
                    f"{tuple(target[ours].shape)}; use the LM's cell, embedding size and first-layer hidden size."
                )
        with torch.no_grad():
            for ours, theirs in pairs.items():
                target[ours].copy_(source[theirs])
        return list(pairs)

    def init_from_classifier(self, source: ClassifierNetwork, class_map: list[int] | None) -> list[str]:
        """Start from another classifier's network of the same shape: every tensor but the output layer's, and
        its rows as well when ``class_map`` gives, for each of this network's classes, the index of the source
        class it continues (``None``: the output layer keeps its random start). Returns the copied names."""
        theirs, ours = source.state_dict(), self.state_dict()
        names = [name for name in ours if not name.startswith("output.")]
        for name in names:
            if name not in theirs or theirs[name].shape != ours[name].shape:
                found = tuple(theirs[name].shape) if name in theirs else "missing"
                raise RnnkitError(
                    f"the source classifier's {name} ({found}) does not fit this one's {tuple(ours[name].shape)}; "
                    "use the source's cell, sizes, layers and pooling."
                )
        unused = [name for name in theirs if name not in ours]
        if unused:
            raise RnnkitError(
                f"the source classifier's {unused[0]} has no place in this one; use the source's layers and pooling."
            )
        with torch.no_grad():
            for name in names:
                ours[name].copy_(theirs[name])
            if class_map is not None:
                rows = torch.tensor(class_map, dtype=torch.long)
                for name in ("output.weight", "output.bias"):
                    ours[name].copy_(theirs[name][rows])
                names += ["output.weight", "output.bias"]
        return names

    def encode(self, embedded: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Embedded texts ``(N, L, E)`` -> pooled ``(N, D*H)`` and attention weights ``(N, L)`` (or None)."""
        x = F.dropout(embedded, self.config.dropout, self.training)
        output, h_n = self.rnn(x, lengths=lengths)  # output (N, L, D*H), zeros at padded steps
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        steps = torch.arange(output.shape[1], device=output.device)
        mask = steps[None, :] < lengths.to(output.device)[:, None]  # (N, L), True on real tokens
        weights = None
        pooling = self.config.pooling
        if pooling == "last":
            directions = 2 if self.config.bidirectional else 1
            # -> (N, D*H): the top layer's forward state after the last token, backward after the first
            pooled = h_n[-directions:].transpose(0, 1).reshape(output.shape[0], -1)
        elif pooling == "max":
            pooled = output.masked_fill(~mask[..., None], -math.inf).amax(dim=1)
        elif pooling == "mean":
            pooled = output.sum(dim=1) / lengths.to(output)[:, None]  # padded outputs are zeros
        else:
            scores = self.attention(output).squeeze(-1).masked_fill(~mask, -math.inf)  # (N, L)
            weights = scores.softmax(dim=1)
            pooled = torch.einsum("nl,nlh->nh", weights, output)
        return pooled, weights

    def logits_from_embedded(self, embedded: Tensor, lengths: Tensor) -> Tensor:
        """Uncalibrated class scores ``(N, C)`` from embedded texts (the input integrated gradients vary)."""
        pooled, _ = self.encode(embedded, lengths)
        return self.output(F.dropout(pooled, self.config.dropout, self.training))

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """``ids`` ``(N, L)``, ``lengths`` ``(N,)`` -> uncalibrated logits ``(N, C)``."""
        if self.training and self.config.word_dropout > 0:
            # word dropout: the model must not lean on any single word (padding stays padding, it is masked)
            dropped = torch.rand(ids.shape, device=ids.device) < self.config.word_dropout
            ids = ids.masked_fill(dropped, 0)
        return self.logits_from_embedded(self.embedding(ids), lengths)


class TextClassifier(nn.Module):
    """Recurrent text classifier: the mean logits of ``config.ensemble`` :class:`ClassifierNetwork` members,
    with a fitted softmax temperature (see the module docstring).

    Attributes:
        members: the networks (one unless ``config.ensemble`` > 1).
        temperature: a buffer (saved with the weights), 1 until :func:`fit_temperature` sets it.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(ClassifierNetwork(config) for _ in range(config.ensemble))
        self.register_buffer("temperature", torch.ones(()))
        weights = torch.tensor(config.class_weights or [1.0] * config.num_classes)
        self.register_buffer("class_weights", weights, persistent=False)
        self.pretrained: list[str] = []  # names (within a member) of the tensors copied from another model

    @classmethod
    def from_config(cls, model_config: dict) -> TextClassifier:
        model_config = dict(model_config)
        model_config["class_weights"] = tuple(model_config.get("class_weights", ()))
        return cls(ClassifierConfig(**model_config))

    def load_vectors(self, vectors: Tensor, known: Tensor) -> None:
        """Copy pretrained vectors ``(V, E)`` into every member's rows where ``known`` ``(V,)`` is True."""
        for member in self.members:
            member.load_vectors(vectors, known)

    def init_from_language_model(self, lm: nn.Module) -> list[str]:
        """Start every member from an rnnkit language model (:meth:`ClassifierNetwork.init_from_language_model`);
        returns the names of the tensors copied into each member."""
        copied = [member.init_from_language_model(lm) for member in self.members]
        self.pretrained = copied[0]
        return self.pretrained

    def init_from_classifier(self, source: TextClassifier, class_map: list[int] | None = None) -> list[str]:
        """Start member ``k`` from the source's member ``k mod K_source`` (see
        :meth:`ClassifierNetwork.init_from_classifier`); returns the names copied into each member."""
        sources = source.members
        copied = [net.init_from_classifier(sources[k % len(sources)], class_map) for k, net in enumerate(self.members)]
        self.pretrained = copied[0]
        return self.pretrained

    def parameter_groups(self) -> list[dict]:
        """The trainer's optimizer groups: the tensors copied from another model learn at
        ``config.pretrained_lr_scale`` times the learning rate, the rest at the learning rate."""
        scale = self.config.pretrained_lr_scale
        # by identity, through the state dict: the copied names are torch's (rnn.weight_ih_l0), which the
        # layers' state dict keeps while their parameters live in cells
        tensors = self.state_dict(keep_vars=True)
        members = range(len(self.members))
        scaled = {id(tensors[f"members.{k}.{n}"]) for k in members for n in self.pretrained} if scale != 1 else set()
        groups = [{"params": [p for p in self.parameters() if id(p) not in scaled]}]
        if scaled:
            groups.append({"params": [p for p in self.parameters() if id(p) in scaled], "lr_scale": scale})
        return groups

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """``ids`` ``(N, L)``, ``lengths`` ``(N,)`` -> uncalibrated logits ``(N, C)``, the members' mean."""
        return torch.stack([member(ids, lengths) for member in self.members]).mean(dim=0)

    # --- the task-model contract ---------------------------------------------------------------------------

    def loss(self, batch: Batch) -> LossOutput:
        """Class-weighted mean cross-entropy over the batch's texts, averaged over the members (each member is
        trained on its own prediction, not on the ensemble's)."""
        ids, lengths, labels = batch
        losses = [F.cross_entropy(member(ids, lengths), labels, weight=self.class_weights) for member in self.members]
        # a class-weighted mean divides by the batch's summed class weights, not by its examples
        averaged_over = float(self.class_weights[labels].sum()) if self.config.class_weights else None
        return LossOutput(torch.stack(losses).mean(), labels.numel(), averaged_over=averaged_over)

    @torch.no_grad()
    def predict_logits(self, data: TextBatches, *, quiet: bool = True) -> tuple[Tensor, Tensor]:
        """Uncalibrated logits ``(n, C)`` and labels ``(n,)`` of every text in ``data``, in its own order;
        ``quiet=False`` counts the batches on a progress bar (shown on a terminal only)."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        logits, labels, order = [], [], []
        bar = tqdm(data.batches_with_index(), total=len(data), desc="classifying", unit="batch", leave=False,
                   disable=True if quiet else None)  # fmt: skip
        for ids, lengths, y, index in bar:
            logits.append(self(ids.to(device), lengths.to(device)).float().cpu())
            labels.append(y)
            order.append(index)
        self.train(was_training)
        inverse = torch.empty_like(torch.cat(order))
        inverse[torch.cat(order)] = torch.arange(inverse.numel())
        return torch.cat(logits)[inverse], torch.cat(labels)[inverse]

    def evaluate(self, data: TextBatches) -> dict:
        """Loss (unweighted NLL at the current temperature), accuracy and error of ``data``."""
        logits, labels = self.predict_logits(data)
        loss = F.cross_entropy(logits / self.temperature.cpu(), labels).item()
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        return {"loss": loss, "accuracy": accuracy, "error": 1 - accuracy}


# --- batches -----------------------------------------------------------------------------------------------


class TextBatches:
    """Token-id sequences and labels in length-bucketed batches of ``(ids, lengths, labels)``.

    Training order (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, cut into pools of 50
    batches, each pool sorted by length and cut into batches, batches shuffled; so ``batches(epoch)`` is the
    same for the same epoch (the Trainer's resume contract) and a batch's texts have similar lengths.
    Evaluation order (``shuffle=False``): longest first.
    """

    def __init__(
        self, sequences: list[list[int]], labels: list[int], batch_size: int, *, shuffle: bool, seed: int = 0
    ) -> None:
        if batch_size < 1:
            raise RnnkitError(f"batch_size must be at least 1, got {batch_size}.")
        empty = [i for i, s in enumerate(sequences) if not s]
        if empty:
            raise RnnkitError(f"text {empty[0]} has no tokens after tokenising; drop it or give it some words.")
        self.sequences = [torch.tensor(s, dtype=torch.long) for s in sequences]
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.lengths = torch.tensor([len(s) for s in sequences])
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed

    def __len__(self) -> int:
        return math.ceil(len(self.sequences) / self.batch_size)

    def _order(self, epoch: int) -> list[list[int]]:
        return bucketed_batches(
            self.lengths.tolist(), self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch
        )

    def _collate(self, index: list[int]) -> Batch:
        ids = pad_sequence([self.sequences[i] for i in index], batch_first=True)  # -> (N, L), zeros after the end
        return ids, self.lengths[index], self.labels[index]

    def batches(self, epoch: int = 0):
        for index in self._order(epoch):
            yield self._collate(index)

    def batches_with_index(self):
        for index in self._order(0):
            yield (*self._collate(index), torch.tensor(index))


# --- calibration and metrics -------------------------------------------------------------------------------


def fit_temperature(logits: Tensor, labels: Tensor, *, max_iter: int = 100) -> float:
    r"""The temperature :math:`\tau` minimising :math:`\mathrm{NLL}(\mathrm{softmax}(z/\tau), y)` on held-out
    logits, by L-BFGS on :math:`\log \tau` (so :math:`\tau` stays positive), under a standard normal prior on
    :math:`\log \tau` (MAP over the ``n`` examples):

    .. math:: \frac{1}{n}\sum_i \mathrm{NLL}_i(\tau) + \frac{(\log \tau)^2}{2n}

    Without it a small validation split that the model separates perfectly drives :math:`\tau` towards 0 (the
    NLL only falls as the logits sharpen; a review measured :math:`\tau = 10^{-4}` and a test NLL of 7 nats at
    95% accuracy). With thousands of examples the prior moves :math:`\tau` by well under 1%."""
    logits, labels = logits.detach().double(), labels.detach()
    count = max(1, len(labels))
    log_tau = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_tau], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_tau.exp(), labels) + log_tau**2 / (2 * count)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_tau.detach().exp())


def expected_calibration_error(probabilities: Tensor | np.ndarray, labels: Tensor | np.ndarray, bins: int = ECE_BINS):
    r""":math:`\sum_b \frac{n_b}{n} |\mathrm{acc}_b - \mathrm{conf}_b|` over ``bins`` equal-width bins of the
    top probability (bin ``b`` holds confidences in ``(b/B, (b+1)/B]``)."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # bin b holds (b/B, (b+1)/B]; ceil(c * B) - 1 gives it
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def classification_report(predicted: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support and the confusion matrix (rows true,
    columns predicted); a class never predicted has precision 0 (as scikit-learn's ``zero_division=0``). The
    macro-F1 averages over the classes that occur among the labels or the predictions, as scikit-learn's does: a
    class absent from both (a small test file's) says nothing about the model and would pull the mean to 0."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    size = len(classes)
    confusion = np.zeros((size, size), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_positive = np.diag(confusion).astype(np.float64)
    predicted_count, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(size), where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros(size), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(size), where=both > 0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(classes)
    }  # fmt: skip
    return {
        "accuracy": float(true_positive.sum() / max(1, len(labels))),
        "macro_f1": float(f1[(support + predicted_count) > 0].mean()) if len(labels) else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
