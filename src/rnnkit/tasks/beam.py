r"""Decoding a sequence-to-sequence model: greedy and batched beam search with length and coverage penalties.

Any model with ``encode(source, lengths) -> memory``, ``start(memory) -> state`` and
``step(token, state, memory) -> (log_probs (N, V), state, attention (N, S))`` decodes here; memory and state
have ``select(index)`` to follow hypotheses as the beam reorders them (:class:`rnnkit.tasks.translate.Translator`).

**Beam search** keeps the ``K`` best partial translations of each sentence (all sentences of a batch at once:
``N*K`` rows). A hypothesis that emits ``<eos>`` leaves the beam for the sentence's finished list, scored
(Wu et al. 2016, GNMT) as

.. math::
    s(Y, X) = \frac{\log P(Y \mid X)}{lp(Y)} + cp(X; Y), \qquad
    lp(Y) = \left(\frac{5 + |Y|}{6}\right)^{\alpha}, \qquad
    cp(X; Y) = \beta \sum_{i=1}^{|X|} \log \min\Big(\sum_j a_{j,i},\ 1\Big)

:math:`\alpha = 0` ranks by raw log-probability (which favours short output), :math:`\alpha = 1` by about the
mean per token (length normalisation); :math:`\beta > 0` penalises source tokens that got little attention
(untranslated words). A sentence is done once it has ``n_best`` finished hypotheses and none still in the beam
could beat the last of them (its log-probability can only fall; ``lp`` is at most ``lp(max_length)``, or for
:math:`\alpha < 0` ``lp`` of the next length), or at ``max_length`` tokens.

**Greedy** decoding takes the most likely token at every step; beam search with ``K = 1``, :math:`\alpha = 0`,
:math:`\beta = 0` gives the same output (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from rnnkit.data.subwords import BOS, EOS, PAD
from rnnkit.errors import RnnkitError


@dataclass
class Hypothesis:
    tokens: list[int]  # without <bos> and <eos>
    score: float  # the ranking score s(Y, X) (the log-probability for greedy)
    log_prob: float
    attention: Tensor  # (T, S): a row per output step (its <eos> included), a column per source token


def length_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def coverage_penalty(coverage: Tensor, beta: float) -> float:
    """``coverage`` ``(S,)``: the attention each real source token received, summed over output steps."""
    if beta == 0:
        return 0.0
    return beta * float(coverage.clamp(min=1e-9, max=1.0).log().sum())


def default_max_lengths(lengths: Tensor) -> Tensor:
    """Output tokens allowed per sentence: twice the source plus 10 (German and English subwords are close)."""
    return 2 * lengths + 10


@torch.no_grad()
def greedy(model, source: Tensor, lengths: Tensor, *, max_lengths: Tensor | None = None) -> list[Hypothesis]:
    """The most likely token at every step, for each of the ``N`` sentences of ``source`` ``(N, S)``."""
    max_lengths = default_max_lengths(lengths) if max_lengths is None else max_lengths
    memory = model.encode(source, lengths)
    state = model.start(memory)
    N = source.shape[0]
    token = torch.full((N,), BOS, dtype=torch.long, device=source.device)
    tokens, log_probs, weights = [], torch.zeros(N), []
    finished = torch.zeros(N, dtype=torch.bool)
    ended_at = torch.full((N,), -1)
    for t in range(int(max_lengths.max())):
        step_log_probs, state, attention = model.step(token, state, memory)
        step_log_probs[:, PAD] = step_log_probs[:, BOS] = -math.inf
        best, token = step_log_probs.max(dim=-1)
        log_probs += torch.where(finished, 0.0, best.cpu())
        tokens.append(token.cpu())
        weights.append(attention.cpu())
        stop = ~finished & ((token.cpu() == EOS) | (t + 1 >= max_lengths.cpu()))
        ended_at[stop] = t
        finished |= stop
        if finished.all():
            break
    tokens, weights = torch.stack(tokens, 1), torch.stack(weights, 1)  # (N, T), (N, T, S)
    results = []
    for n in range(N):
        end = int(ended_at[n])
        sentence = tokens[n, : end + 1].tolist()
        if sentence and sentence[-1] == EOS:
            sentence = sentence[:-1]
        results.append(
            Hypothesis(sentence, float(log_probs[n]), float(log_probs[n]), weights[n, : end + 1, : int(lengths[n])])
        )
    return results


@torch.no_grad()
def beam_search(
    model,
    source: Tensor,
    lengths: Tensor,
    *,
    beam_size: int = 5,
    n_best: int = 1,
    alpha: float = 1.0,
    beta: float = 0.0,
    max_lengths: Tensor | None = None,
) -> list[list[Hypothesis]]:
    """The ``n_best`` highest-scoring translations of each sentence, best first (see the module docstring)."""
    if beam_size < 1 or not 1 <= n_best <= beam_size:
        raise RnnkitError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size} and {n_best}.")
    if not math.isfinite(alpha) or not 0 <= beta < math.inf:
        raise RnnkitError(f"need a finite length penalty alpha and coverage weight beta >= 0, got {alpha} and {beta}.")
    max_lengths = (default_max_lengths(lengths) if max_lengths is None else max_lengths).tolist()
    N, K, device = source.shape[0], beam_size, source.device
    memory = model.encode(source, lengths)
    state = model.start(memory)
    # -> N*K rows, sentence n's beam in rows n*K .. n*K + K-1
    rows = torch.arange(N, device=device).repeat_interleave(K)
    memory, state = memory.select(rows), state.select(rows)
    scores = torch.full((N, K), -math.inf, device=device)
    scores[:, 0] = 0.0  # at first only one hypothesis, the empty one, so the K picks are K different tokens
    token = torch.full((N * K,), BOS, dtype=torch.long, device=device)
    history = torch.empty((N * K, 0), dtype=torch.long, device=device)
    attention_history = memory.mask.new_zeros((N * K, 0, memory.mask.shape[1]), dtype=torch.float)
    finished: list[list[Hypothesis]] = [[] for _ in range(N)]
    done = [False] * N
    source_lengths = lengths.tolist()
    for t in range(max(max_lengths)):
        log_probs, state, attention = model.step(token, state, memory)  # (N*K, V)
        log_probs[:, PAD] = log_probs[:, BOS] = -math.inf
        V = log_probs.shape[-1]
        total = (scores.view(N * K, 1) + log_probs).view(N, K * V)
        scores, picked = total.topk(K, dim=1)  # (N, K) each
        origin = torch.arange(N, device=device)[:, None] * K + picked // V  # -> (N, K) rows they extend
        token = (picked % V).view(-1)
        origin = origin.view(-1)
        state = state.select(origin)
        history = torch.cat([history[origin], token[:, None]], dim=1)
        attention_history = torch.cat([attention_history[origin], attention[origin][:, None]], dim=1)
        # hypotheses ending here (<eos>, or the sentence's length limit) move to the finished lists
        ends = token.view(N, K) == EOS
        for n in range(N):
            if done[n]:
                continue
            last_step = t + 1 >= max_lengths[n]
            for k in range(K):
                if not (ends[n, k] or last_step) or scores[n, k] == -math.inf:
                    continue
                row = n * K + k
                S = source_lengths[n]
                log_prob = float(scores[n, k])
                score = log_prob / length_penalty(t + 1, alpha) + coverage_penalty(state.coverage[row, :S], beta)
                words = history[row].tolist()
                if words[-1] == EOS:
                    words = words[:-1]
                finished[n].append(Hypothesis(words, score, log_prob, attention_history[row, :, :S].cpu()))
            scores[n] = scores[n].masked_fill(ends[n], -math.inf)
            alive_best = float(scores[n].max())
            # the n_best-th best, not the best: a hypothesis still in the beam may yet outrank the later places
            ranked = sorted((h.score for h in finished[n]), reverse=True)
            last_kept = ranked[n_best - 1] if len(ranked) >= n_best else -math.inf
            # an unfinished hypothesis can only lose log-probability; its lp is at most lp(max_length), or, with
            # alpha < 0 (lp falling with length), lp of the next step's length
            longest = max(length_penalty(t + 2, alpha), length_penalty(max_lengths[n], alpha))
            bound = alive_best / longest if alive_best < 0 else alive_best
            if last_step or alive_best == -math.inf or last_kept >= bound:
                done[n] = True
                scores[n] = -math.inf
        if all(done):
            break
    return [sorted(hypotheses, key=lambda h: -h.score)[:n_best] for hypotheses in finished]


def translate_ids(
    model,
    source_ids: list[list[int]],
    *,
    beam_size: int = 5,
    n_best: int = 1,
    alpha: float = 1.0,
    beta: float = 0.0,
    batch_size: int = 32,
    quiet: bool = True,
) -> list[list[Hypothesis]]:
    """Decode every source (lists of ids, cut to the model's ``max_length``) in length-sorted batches;
    results in input order, ``n_best`` hypotheses each. ``beam_size=1`` is greedy."""
    if beam_size < 1 or not 1 <= n_best <= beam_size:  # greedy too: it would give one where n_best asked for more
        raise RnnkitError(f"need beam_size >= 1 and 1 <= n_best <= beam_size, got {beam_size} and {n_best}.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    limit = model.config.max_length
    order = sorted(range(len(source_ids)), key=lambda i: -len(source_ids[i]))
    results: list[list[Hypothesis] | None] = [None] * len(source_ids)
    with tqdm(total=len(source_ids), desc="translating", unit="sent", disable=True if quiet else None) as bar:
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            sequences = [torch.tensor(source_ids[i][:limit] or [EOS], dtype=torch.long) for i in index]
            lengths = torch.tensor([len(s) for s in sequences])
            source = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=PAD).to(device)
            if beam_size == 1:
                decoded = [[h] for h in greedy(model, source, lengths.to(device))]
            else:
                decoded = beam_search(
                    model, source, lengths.to(device), beam_size=beam_size, n_best=n_best, alpha=alpha, beta=beta
                )
            for i, hypotheses in zip(index, decoded, strict=True):
                results[i] = hypotheses
            bar.update(len(index))
    model.train(was_training)
    return results
