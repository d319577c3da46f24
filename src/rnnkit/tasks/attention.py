r"""Attention of a decoder state over the encoder's outputs: Luong's dot and general, Bahdanau's additive.

For a query :math:`h_t` (the decoder's state at step t) and the source memory :math:`\bar h_s` (one vector
per source position s), a score per position, masked where the source is padding, softmax-normalised to
weights, and the weighted sum of the memory as the context vector:

.. math::
    \mathrm{score}(h_t, \bar h_s) =
        \begin{cases}
            h_t^\top \bar h_s                          & \text{dot (Luong et al. 2015)} \\
            h_t^\top W_a \bar h_s                      & \text{general (Luong et al. 2015)} \\
            v_a^\top \tanh(W_q h_t + W_k \bar h_s)     & \text{additive (Bahdanau et al. 2015)}
        \end{cases}

    a_{t,s} = \frac{\exp \mathrm{score}(h_t, \bar h_s)}{\sum_{s'} \exp \mathrm{score}(h_t, \bar h_{s'})},
    \qquad c_t = \sum_s a_{t,s} \bar h_s

The parts that depend only on the memory (:math:`W_a \bar h_s`, :math:`W_k \bar h_s`) are computed once per
sentence by :meth:`Attention.keys`, not at every decoder step.

Shapes: query (N, H); memory (N, S, H); mask (N, S), True at real source tokens -> context (N, H),
weights (N, S).
"""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.errors import RnnkitError

KINDS = ("dot", "general", "additive")


class Attention(nn.Module):
    """One of :data:`KINDS` over a memory of width ``hidden_size`` (see the module docstring).

    Attributes:
        key: :math:`W_a` (general) or :math:`W_k` (additive), ``(H, H)``; absent for dot.
        query: :math:`W_q` ``(H, H)`` and ``score`` :math:`v_a` ``(1, H)``, additive only.
    """

    def __init__(self, hidden_size: int, kind: str = "general") -> None:
        super().__init__()
        if kind not in KINDS:
            raise RnnkitError(f"Unknown attention {kind!r}. Select from {', '.join(KINDS)}.")
        self.kind = kind
        if kind in ("general", "additive"):
            self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        if kind == "additive":
            self.query = nn.Linear(hidden_size, hidden_size, bias=True)
            self.score = nn.Linear(hidden_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        """The memory's share of the score, once per sentence: ``(N, S, H)``."""
        return memory if self.kind == "dot" else self.key(memory)

    def forward(self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Context ``(N, H)`` and weights ``(N, S)`` of ``query`` ``(N, H)`` over ``memory`` ``(N, S, H)``;
        ``keys`` is :meth:`keys` of the memory, ``mask`` ``(N, S)`` is True at real tokens."""
        if self.kind == "additive":
            # -> (N, S): v^T tanh(W_q h_t + W_k h_s)
            scores = self.score((self.query(query)[:, None, :] + keys).tanh()).squeeze(-1)
        else:
            # -> (N, S): h_t^T (W_a) h_s, one batched product
            scores = (keys @ query[:, :, None]).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        context = (weights[:, None, :] @ memory).squeeze(1)  # (N, 1, S) @ (N, S, H) -> (N, H)
        return context, weights
