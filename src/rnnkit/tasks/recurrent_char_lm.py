r"""A trained rnnkit character language model as the LM of CTC beam search (shallow fusion).

The n-gram of :mod:`rnnkit.tasks.char_ngram` sees the last five characters, less than a word: it cannot
tell where one unheard word ends and the next begins, which synthetic speech (no pauses between words)
leaves to the LM. A recurrent LM reads the whole prefix. Trained on sentences one per line (``rnnkit lm
train --data sentences.txt --tokenizer char``), it gives

.. math:: P(c \mid W) \propto P_{LM}(c \mid \text{"\textbackslash n"} \cdot W), \quad c \in \text{alphabet} \cup \{\$\}

with the line break as both the sentence start and its end ``$``; the mass the LM puts on characters the
recogniser cannot write is dropped and the rest renormalised, so each distribution sums to one over the
beam search's support, as the n-gram's does.

**Cost.** Each prefix keeps the LM state after it, ``state(W c) = step(state(W), c)``. Beam search extends
the kept prefixes by one character per frame, so :meth:`RecurrentCharLM.prepare` computes all new prefixes
of a frame as one batched step (one row per prefix): a frame costs one LM step, not one per prefix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnkit.data.text import CharTokenizer, tokenizer_from_config
from rnnkit.errors import RnnkitError
from rnnkit.tasks.lm import LanguageModel
from rnnkit.unroll import map_state

SENTENCE_BREAK = "\n"  # a sentence's start and end in the LM's training text (one sentence per line)
MAX_CACHED = 200_000  # prefixes kept; past that the cache starts again (a prefix is recomputed from its parent)


def _select(state: tuple, row: int) -> tuple:
    """One row of per-layer states (each ``(1, N, H)`` or a tuple of such), as ``(1, 1, H)`` views."""
    return tuple(map_state(lambda s: s[:, row : row + 1], layer) for layer in state)


def _stack(states: list[tuple]) -> tuple:
    """Per-layer states of single rows -> one per-layer state of all of them, ``(1, N, H)``."""
    return tuple(map_state(lambda *rows: torch.cat(rows, dim=1), *layers) for layers in zip(*states, strict=True))


class RecurrentCharLM:
    """The ``distribution(history)`` interface of :class:`~rnnkit.tasks.char_ngram.CharNgram`, from a network.

    Args:
        model: a character-level :class:`~rnnkit.tasks.lm.LanguageModel`.
        tokenizer: its character tokenizer; it must know the line break (sentences one per line).
        alphabet: the recogniser's characters, in the order the beam search indexes them.
    """

    def __init__(self, model: LanguageModel, tokenizer: CharTokenizer, alphabet: str) -> None:
        if not isinstance(tokenizer, CharTokenizer):
            raise RnnkitError("fusion needs a character language model (rnnkit lm train --tokenizer char).")
        if SENTENCE_BREAK not in tokenizer.chars:
            raise RnnkitError("the language model never saw a line break: train it on sentences, one per line.")
        self.model = model.eval()
        self.tokenizer, self.alphabet = tokenizer, alphabet
        self._ids = {c: tokenizer.encode(c)[0] for c in tokenizer.chars}
        # the support's ids in beam-search order: alphabet characters (0, unknown, for one the LM lacks), then $
        self.support = torch.tensor([self._id(c) for c in alphabet + SENTENCE_BREAK])
        self.missing = torch.tensor([c not in self._ids for c in alphabet] + [False])
        self._cache: dict[str, tuple[object, np.ndarray]] = {}  # prefix -> (state after it, log P over support)
        # the state every sentence starts from: zeros, as at the start of the LM's training stream
        device, dtype = model.device, next(model.parameters()).dtype
        self._root = tuple(layer.initial_state(1, device=device, dtype=dtype) for layer in model.layers)

    def _id(self, c: str) -> int:
        return self._ids.get(c, CharTokenizer.unknown_id)

    @classmethod
    def load(cls, directory: Path | str, alphabet: str) -> RecurrentCharLM:
        """From an ``rnnkit lm train`` run directory (weights verified, no pickle)."""
        from rnnkit.tasks import load  # the task registry imports this module's neighbours

        model = load(directory, task="lm")
        return cls(model, tokenizer_from_config(model.run_config["tokenizer"]), alphabet)

    def distribution(self, history: str) -> np.ndarray:
        """:math:`\\log P(\\cdot \\mid \\text{history})` over ``alphabet + '$'``."""
        if history not in self._cache:
            self.prepare([history])
        return self._cache[history][1]

    def prepare(self, histories: list[str]) -> None:
        """Compute every history not yet cached, one batched LM step per character position still missing."""
        todo = [h for h in dict.fromkeys(histories) if h not in self._cache]
        if not todo:
            return
        if len(self._cache) + len(todo) > MAX_CACHED:
            self._cache.clear()
        # each history and its uncached ancestors (normally none: a frame extends the previous frame's prefixes;
        # after a clear, all of them), gathered by a loop: a recursion per character overflowed Python's stack
        # on transcripts longer than about 1,000 characters
        wave: dict[str, int] = {}  # history -> the step that computes it, once its parent is there
        for history in todo:
            while history not in self._cache and history not in wave:
                wave[history] = 0
                if not history:
                    break
                history = history[:-1]
        for history in sorted(wave, key=len):  # parents first
            if history and history[:-1] in wave:
                wave[history] = wave[history[:-1]] + 1
        steps: dict[int, list[str]] = {}
        for history, number in wave.items():
            steps.setdefault(number, []).append(history)
        for number in sorted(steps):
            self._step(steps[number])

    @torch.no_grad()
    def _step(self, todo: list[str]) -> None:
        """Cache the given histories, whose parents are cached, in one batched LM step."""
        states, last = [], []
        for history in todo:
            if history:
                states.append(self._cache[history[:-1]][0])
                last.append(history[-1])
            else:
                states.append(None)
                last.append(SENTENCE_BREAK)
        ids = torch.tensor([self._id(c) for c in last])  # -> (N,)
        states = [self._root if s is None else s for s in states]
        hidden, new_state = self.model.step(ids, _stack(states))
        log_probs = self.model.log_probs(hidden)[:, self.support].double()  # -> (N, support)
        log_probs = log_probs.masked_fill(self.missing, -torch.inf)
        log_probs = (log_probs - log_probs.logsumexp(dim=1, keepdim=True)).numpy()
        for row, history in enumerate(todo):
            self._cache[history] = (_select(new_state, row), log_probs[row])
