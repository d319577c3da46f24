"""Streaming recognition: audio in chunks -> text as it arrives, with the unidirectional model.

Everything the offline model computes over a whole file is computed here piece by piece, carrying what
crosses a chunk edge:

* samples not yet filling a 25 ms frame (frames start every 10 ms, so up to 399 samples wait);
* log-mel frames not yet a multiple of 4 (the two stride-2 convolutions consume 4 frames per output);
* each convolution's last 2 input frames (its left context, :class:`rnnkit.tasks.asr.ConvSubsampling`);
* the recurrent layers' state ``h`` (and ``c``), passed as ``hx`` into the next chunk's forward;
* the CTC decoder's state: the last greedy symbol, or the prefix beam (:class:`PrefixBeamSearch`).

So the text equals offline decoding of the whole file with the same model (the tests check the
log-probabilities match); latency is the chunk length plus one 40 ms output frame.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.data.audio import FRAME_LENGTH, FRAME_SHIFT
from rnnkit.errors import RnnkitError
from rnnkit.tasks.asr import SUBSAMPLING, SpeechRecognizer
from rnnkit.tasks.ctc_decode import PrefixBeamSearch


class StreamingRecognizer:
    """Feed 16 kHz audio with :meth:`feed`; read the running transcript; :meth:`finish` flushes the tail."""

    def __init__(self, model: SpeechRecognizer, *, beam: int = 0, **beam_options) -> None:
        if model.config.bidirectional:
            raise RnnkitError(
                "streaming needs a unidirectional model (train with --streaming); this one is bidirectional."
            )
        self.model = model.eval()
        self.samples = np.zeros(0, dtype=np.float32)  # audio not yet framed
        # normalised frames not yet a multiple of 4, on the model's device (that of its normalisation buffers)
        self.frames = torch.zeros(0, model.config.num_mels, device=model.feature_mean.device)
        self.conv_cache = None
        self.state = None  # the recurrent layers' (h, c) or h
        self.beam = PrefixBeamSearch(model.config.alphabet, beam, **beam_options) if beam else None
        self.greedy_text, self.previous = "", 0
        self.log_probs: list[np.ndarray] = []  # every output frame so far (for alignment afterwards)

    @torch.no_grad()
    def _run(self, frames: torch.Tensor) -> None:
        if len(frames) == 0:
            return
        lengths = torch.tensor([len(frames)])
        x, _, self.conv_cache = self.model.frontend(frames[None], lengths, self.conv_cache)
        output, self.state = self.model.rnn(x, self.state)  # carry the state into the next chunk
        log_probs = self.model.classify(output)[0].cpu().numpy()  # -> (K L', V), for the decoders
        self.log_probs.append(log_probs)
        for k in log_probs.argmax(axis=1):
            if k != 0 and k != self.previous:
                self.greedy_text += self.model.config.alphabet[k - 1]
            self.previous = k
        if self.beam is not None:
            self.beam.advance(log_probs)

    def feed(self, audio: np.ndarray) -> str:
        """Add samples; returns the transcript so far."""
        self.samples = np.concatenate([self.samples, np.asarray(audio, dtype=np.float32)])
        num_frames = 0 if len(self.samples) < FRAME_LENGTH else 1 + (len(self.samples) - FRAME_LENGTH) // FRAME_SHIFT
        if num_frames:
            raw = self.model.raw_features(self.samples[: (num_frames - 1) * FRAME_SHIFT + FRAME_LENGTH])
            self.samples = self.samples[num_frames * FRAME_SHIFT :]
            self.frames = torch.cat([self.frames, self.model.normalise(raw.to(self.frames.device))])
        ready = len(self.frames) // SUBSAMPLING * SUBSAMPLING  # whole groups of 4 only, so strides line up
        self._run(self.frames[:ready])
        self.frames = self.frames[ready:]
        return self.text

    def finish(self) -> str:
        """Run the last (fewer than 4) frames; returns the final transcript."""
        self._run(self.frames)
        self.frames = self.frames[:0]
        return self.text

    @property
    def text(self) -> str:
        return self.beam.best() if self.beam is not None else self.greedy_text

    def all_log_probs(self) -> np.ndarray:
        width = len(self.model.config.alphabet) + 1
        return np.concatenate(self.log_probs) if self.log_probs else np.zeros((0, width), dtype=np.float32)
