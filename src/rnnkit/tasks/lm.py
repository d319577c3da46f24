r"""Language models: embedding -> stacked RNN / LSTM / GRU -> (tied) output layer, with generation.

The AWD-LSTM regularisers (Merity et al. 2017) are options: embedding dropout (whole word types), locked
dropout (one mask per sequence, reused at every step) on the embeddings, between layers and before the
output, and weight drop (DropConnect on each hidden-to-hidden matrix). Large vocabularies can use an
adaptive softmax (Grave et al. 2017).

Metrics are per token of the tokenizer: ``loss`` in nats, ``perplexity`` = e^loss, ``bits_per_token`` =
loss / ln 2 (bits per character for a character tokenizer).

Shapes: N batch (parallel streams), T steps, V vocabulary, E embedding size, H hidden size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.text import batchify, stream_windows
from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.tasks.adaptive_input import TiedAdaptiveEmbedding
from rnnkit.train import LossOutput

LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
ADAPTIVE_DIV = 4  # each adaptive-softmax cluster projects to a quarter of the one before (Grave et al.)


@dataclass(frozen=True)
class LanguageModelConfig:
    vocab_size: int
    cell: str = "lstm"
    embedding_size: int = 256
    hidden_size: int = 512
    num_layers: int = 2
    # output layer shares the embedding matrix (Inan et al. 2016; Press & Wolf 2017); with an adaptive softmax,
    # the input embeds words with the softmax's own matrices (adaptive input, rnnkit.tasks.adaptive_input)
    tie_weights: bool = True
    embedding_dropout: float = 0.0  # drop whole word types from the embedding
    input_dropout: float = 0.1  # locked dropout on the embedded input
    hidden_dropout: float = 0.1  # locked dropout between recurrent layers
    output_dropout: float = 0.2  # locked dropout before the output layer
    weight_drop: float = 0.0  # DropConnect on every hidden-to-hidden matrix
    adaptive_cutoffs: tuple[int, ...] = ()  # adaptive softmax cluster edges; () is a full softmax
    init_range: float = 0.0  # > 0: embedding (and output) weights start U(-r, r), output bias 0; 0: torch's

    def __post_init__(self) -> None:
        if self.cell not in LAYERS:
            raise RnnkitError(f"Unknown cell {self.cell!r}. Select from {', '.join(LAYERS)}.")
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_drop"):
            if not 0 <= getattr(self, name) < 1:
                raise RnnkitError(f"{name} must be a probability in [0, 1), got {getattr(self, name)}.")
        if self.init_range < 0:
            raise RnnkitError(f"init_range must be at least 0, got {self.init_range}.")
        cutoffs = list(self.adaptive_cutoffs)
        if cutoffs and (cutoffs != sorted(set(cutoffs)) or cutoffs[0] < 1 or cutoffs[-1] >= self.vocab_size):
            raise RnnkitError(
                f"adaptive_cutoffs must increase within (0, vocab_size={self.vocab_size}), got {cutoffs}."
            )
        top = self.embedding_size if self.tie_weights else self.hidden_size  # what the softmax reads
        if cutoffs and top // ADAPTIVE_DIV ** len(cutoffs) < 1:
            raise RnnkitError(
                f"the adaptive softmax's last cluster projects {top} units to {top} / {ADAPTIVE_DIV}^{len(cutoffs)}, "
                "which rounds to 0; give fewer adaptive_cutoffs or a wider output."
            )


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with one mask per sequence, shared by all steps: ``x`` ``(N, T, H)``, mask ``(N, 1, H)``."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(embedding: nn.Embedding | TiedAdaptiveEmbedding, ids: Tensor, p: float, training: bool) -> Tensor:
    """Embed ``ids``, dropping whole rows (word types) of the matrix with probability ``p``."""
    if isinstance(embedding, TiedAdaptiveEmbedding):
        return embedding(ids, p if training else 0.0)
    weight = embedding.weight
    if training and p > 0:
        weight = weight * weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return F.embedding(ids, weight)


class LanguageModel(nn.Module):
    """Predicts each next token of a stream; carries its recurrent state from batch to batch."""

    carries_state = True

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = config
        tied_adaptive = bool(config.adaptive_cutoffs) and config.tie_weights
        # (DDP) the adaptive softmax skips a tail cluster that no target of the batch falls in, so its weights may go
        # without a gradient in a step; tied, they are the input embedding's too, which runs every band, an empty one
        # as well (TiedAdaptiveEmbedding), so each has a gradient (zeros) at every step and none can be skipped
        self.may_skip_parameters = bool(config.adaptive_cutoffs) and not tied_adaptive
        if not tied_adaptive:
            self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        layers = []
        for index in range(config.num_layers):
            last = index == config.num_layers - 1
            input_size = config.embedding_size if index == 0 else config.hidden_size
            # a tied output layer needs the last layer to emit embedding-sized vectors
            hidden_size = config.embedding_size if last and config.tie_weights else config.hidden_size
            layers.append(LAYERS[config.cell](input_size, hidden_size, batch_first=True))
        self.layers = nn.ModuleList(layers)
        top_size = layers[-1].output_size
        if config.adaptive_cutoffs:
            self.output = nn.AdaptiveLogSoftmaxWithLoss(
                top_size, config.vocab_size, list(config.adaptive_cutoffs), div_value=ADAPTIVE_DIV
            )
            if tied_adaptive:
                self.embedding = TiedAdaptiveEmbedding(self.output)
        else:
            self.output = nn.Linear(top_size, config.vocab_size)
            if config.tie_weights:
                self.output.weight = self.embedding.weight
        # by default the embedding keeps torch's N(0, 1) start: AWD-LSTM's U(-0.1, 0.1) learns far slower with
        # Adam; with SGD at a large rate and a tied output layer (Zaremba et al.) the small start is the one
        # that trains, since N(0, 1) output weights start the softmax saturated
        if config.init_range > 0 and isinstance(self.embedding, nn.Embedding):
            nn.init.uniform_(self.embedding.weight, -config.init_range, config.init_range)
            if isinstance(self.output, nn.Linear):
                nn.init.uniform_(self.output.weight, -config.init_range, config.init_range)
                nn.init.zeros_(self.output.bias)

    @classmethod
    def from_config(cls, model_config: dict) -> LanguageModel:
        model_config = dict(model_config)
        model_config["adaptive_cutoffs"] = tuple(model_config.get("adaptive_cutoffs", ()))
        return cls(LanguageModelConfig(**model_config))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- the network ---------------------------------------------------------------------------------------

    def forward(self, ids: Tensor, state: tuple | None = None) -> tuple[Tensor, tuple]:
        """``ids`` ``(N, T)`` -> top-layer outputs ``(N, T, H_top)`` and the per-layer states."""
        config = self.config
        x = embedding_dropout(self.embedding, ids, config.embedding_dropout, self.training)  # -> (N, T, E)
        x = locked_dropout(x, config.input_dropout, self.training)
        states = []
        for index, layer in enumerate(self.layers):
            layer_state = None if state is None else state[index]
            if self.training and config.weight_drop > 0:
                # DropConnect: a fresh mask on each W_hh per batch, the same for every step of it
                dropped = {
                    f"cells.{i}.weight_hh": F.dropout(cell.weight_hh, config.weight_drop)
                    for i, cell in enumerate(layer.cells)
                }
                x, layer_state = torch.func.functional_call(layer, dropped, (x, layer_state), strict=False)
            else:
                x, layer_state = layer(x, layer_state)
            states.append(layer_state)
            last = index == len(self.layers) - 1
            x = locked_dropout(x, config.output_dropout if last else config.hidden_dropout, self.training)
        return x, tuple(states)

    def log_probs(self, hidden: Tensor) -> Tensor:
        """Log-probabilities of the next token, ``(..., H_top) -> (..., V)``."""
        if isinstance(self.output, nn.AdaptiveLogSoftmaxWithLoss):
            flat = self.output.log_prob(hidden.reshape(-1, hidden.shape[-1]))
            return flat.view(*hidden.shape[:-1], -1)
        return F.log_softmax(self.output(hidden), dim=-1)

    def _token_loss(self, hidden: Tensor, targets: Tensor) -> Tensor:
        hidden, targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
        if isinstance(self.output, nn.AdaptiveLogSoftmaxWithLoss):
            return self.output(hidden, targets).loss
        return F.cross_entropy(self.output(hidden), targets)

    # --- the task-model contract ---------------------------------------------------------------------------

    def loss(self, batch: tuple[Tensor, Tensor], state: tuple | None = None) -> LossOutput:
        """Mean next-token cross-entropy (nats) of a window ``(x, y)``, each ``(N, T)``."""
        x, y = batch
        hidden, state = self(x, state)
        return LossOutput(self._token_loss(hidden, y), y.numel(), state)

    @torch.no_grad()
    def evaluate(self, data) -> dict[str, float]:
        """Per-token loss over a whole stream (state carried across windows), as nats, bits and perplexity."""
        self.eval()
        device = self.device
        total, count, state = 0.0, 0, None
        for x, y in data.batches(0):
            x, y = x.to(device), y.to(device)
            hidden, state = self(x, state)
            total += self._token_loss(hidden, y).item() * y.numel()
            count += y.numel()
        return stream_metrics(total, count)

    def generate(
        self,
        prime: list[int],
        length: int,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        never: tuple[int, ...] = (),
    ) -> Iterator[int]:
        """Sample ``length`` tokens after ``prime``, one at a time through the layers' step API.

        ``temperature`` divides the logits; ``top_k`` keeps the k likeliest tokens; ``top_p`` keeps the
        smallest set whose probability reaches p (nucleus sampling, Holtzman et al. 2020); ``never`` lists ids
        that are not drawn (a character model's unknown character, which no training target is). The arguments
        are checked here, before the first token is asked for, so a caller can refuse them before printing.
        """
        if not prime:
            raise RnnkitError("generation needs a prime of at least one token.")
        if not 0 < temperature < math.inf or not 0 < top_p <= 1 or top_k < 0 or length < 0:
            raise RnnkitError(
                f"need temperature > 0, 0 < top_p <= 1, top_k >= 0 and length >= 0; got {temperature}, "
                f"{top_p}, {top_k}, {length}."
            )
        return self._sample(prime, length, temperature, top_k, top_p, generator, list(never))

    @torch.no_grad()
    def _sample(self, prime, length, temperature, top_k, top_p, generator, never) -> Iterator[int]:
        self.eval()
        device = self.device
        # the prime in one pass; then step by step
        hidden, state = self(torch.tensor([prime], device=device))
        hidden = hidden[:, -1]  # (1, H_top)
        for _ in range(length):
            log_probs = self.log_probs(hidden)[0] / temperature
            if never:  # no indexing op per token where nothing is barred
                log_probs[never] = -math.inf
            token = int(sample(log_probs, top_k, top_p, generator))
            yield token
            hidden, state = self.step(torch.tensor([token], device=device), state)

    def step(self, ids: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        """One token per row, ``ids`` ``(N,)`` -> top-layer outputs ``(N, H_top)`` and the per-layer states:
        ``forward`` on a length-1 sequence in eval mode, through each layer's streaming ``step`` (far less
        overhead per call than a sequence kernel)."""
        x = self.embedding(ids)  # -> (N, E)
        new_states = []
        for layer, layer_state in zip(self.layers, state, strict=True):
            x, layer_state = layer.step(x, layer_state)
            new_states.append(layer_state)
        return x, tuple(new_states)


def never_sampled(tokenizer) -> tuple[int, ...]:
    """Ids that generation should not draw: a character tokenizer's unknown character, which no training target is
    (a word tokenizer's ``<unk>`` is one, in corpora that mark rare words with it), but which a barely trained model
    still gives some probability."""
    return (tokenizer.unknown_id,) if hasattr(tokenizer, "unknown_char") else ()


def stream_metrics(total: float, count: int) -> dict[str, float]:
    """Summed nats over ``count`` tokens -> mean loss, bits per token and perplexity."""
    if count == 0:
        raise RnnkitError("the evaluation data holds no tokens; give a longer text.")
    loss = total / count
    perplexity = math.exp(min(loss, 50.0))  # capped: an untrained model's e^loss would overflow
    return {"loss": loss, "bits_per_token": loss / math.log(2), "perplexity": perplexity, "tokens": count}


def sample(logits: Tensor, top_k: int, top_p: float, generator: torch.Generator | None) -> Tensor:
    """Draw one index from ``logits`` ``(V,)`` after top-k and nucleus filtering."""
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop tokens once the mass before them already reaches p (the first token always stays)
        drop = (cumulative - sorted_logits.softmax(-1)) >= top_p
        logits = logits.index_put((order[drop],), torch.tensor(-math.inf, device=logits.device))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[0]


class TokenStream:
    """Training data for the trainer: a token stream as ``batch_size`` parallel rows, read in windows.

    Rows and windows come from :func:`rnnkit.data.text.batchify` and :func:`~rnnkit.data.text.stream_windows`:
    the state a window leaves behind is exactly the state the next window of that row needs (truncated
    BPTT). ``batches(epoch)`` is the same every epoch, so a resumed run reads what it would have.
    """

    def __init__(self, ids, batch_size: int, window: int) -> None:
        if window < 1:
            raise RnnkitError(f"window must be at least 1 step, got {window}.")
        self.batched = batchify(ids, batch_size)  # (N, T_total)
        self.window = window

    def __len__(self) -> int:
        return math.ceil((self.batched.shape[1] - 1) / self.window)

    def batches(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        return stream_windows(self.batched, self.window)

    def shard(self, rank: int, world_size: int) -> TokenStream:
        """Process ``rank``'s rows of every window when ``world_size`` processes train together (torchrun):
        rows ``[rank N/W, (rank + 1) N/W)``, contiguous token streams of their own."""
        rows = self.batched.shape[0]
        if rows % world_size:
            raise RnnkitError(
                f"{rows} parallel streams (batch size) do not split evenly over {world_size} processes; "
                f"use a batch size that is a multiple of {world_size}."
            )
        part = copy.copy(self)
        part.batched = self.batched.tensor_split(world_size)[rank]  # -> (N / W, T_total), a view
        return part
