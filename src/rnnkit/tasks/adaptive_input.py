r"""Adaptive input (Baevski & Auli 2019) tied to an adaptive softmax (Grave et al. 2017).

An adaptive softmax splits a vocabulary sorted by frequency into a shortlist :math:`[0, c_1)` and tail
clusters :math:`[c_i, c_{i+1})`. The shortlist's logits come from the head :math:`W_0 \in R^{(c_1 + K) \times
E}`; cluster i first projects to :math:`d_i = E / 4^i` dimensions, :math:`P_i \in R^{d_i \times E}`, then scores
its words with :math:`U_i \in R^{n_i \times d_i}`. The tied adaptive input embeds a word with those very
matrices, read the other way round:

.. math:: e(w) = \sqrt{E} \cdot \begin{cases} W_0[w] & w < c_1 \\ U_i[w - c_i]\, P_i & w \in [c_i, c_{i+1})
          \end{cases}

so a rare word costs :math:`d_i` parameters instead of E, and input and output share what they learn about it
(Inan et al. 2016; Press & Wolf 2017). On WikiText-2 (33k words, cutoffs 2,000 and 10,000) the 13 M-parameter
embedding table disappears. The :math:`\sqrt{E}` factor (as in Baevski & Auli) brings the output layer's small
initial weights (:math:`\pm 1/\sqrt{E}`) to unit scale at the recurrent layer's input.
"""

from __future__ import annotations

import math

from torch import Tensor, nn


class TiedAdaptiveEmbedding(nn.Module):
    """Embeds token ids with an :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`'s own weights (no parameters of its
    own: the softmax's head and tail are registered here too, so the tie survives ``.to()`` and loading)."""

    def __init__(self, softmax: nn.AdaptiveLogSoftmaxWithLoss) -> None:
        super().__init__()
        self.head = softmax.head
        self.tail = softmax.tail
        self.edges = [0, *softmax.cutoffs]  # cluster edges, the vocabulary size last
        self.embedding_dim = softmax.in_features
        self.scale = math.sqrt(softmax.in_features)

    @property
    def num_embeddings(self) -> int:
        return self.edges[-1]

    def forward(self, ids: Tensor, word_dropout: float = 0.0) -> Tensor:
        """``ids`` ``(...)`` -> ``(..., E)``; with ``word_dropout`` > 0, whole word types are zeroed (and the
        rest scaled by 1 / (1 - p)), one draw per call, as embedding dropout does on a full table."""
        flat = ids.reshape(-1)
        out = self.head.weight.new_zeros(flat.shape[0], self.embedding_dim)
        for index, (low, high) in enumerate(zip(self.edges[:-1], self.edges[1:], strict=True)):
            # no shortcut for an empty band: a traced graph (ONNX export) must hold every band, and every tail weight
            # then has a gradient at every step, so DDP need not look for unused ones (LanguageModel)
            rows = ((flat >= low) & (flat < high)).nonzero().squeeze(1)
            local = flat[rows] - low
            if index == 0:
                vectors = self.head.weight[local]  # the shortlist's rows of the head
            else:
                project, score = self.tail[index - 1]
                vectors = score.weight[local] @ project.weight  # (n, d_i) @ (d_i, E)
            out = out.index_copy(0, rows, vectors)
        if word_dropout > 0:
            keep = out.new_empty(self.num_embeddings).bernoulli_(1 - word_dropout) / (1 - word_dropout)
            out = out * keep[flat].unsqueeze(1)
        return (out * self.scale).view(*ids.shape, self.embedding_dim)
