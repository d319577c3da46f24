"""Task models: one file per application (model + its inference + its metrics), and :func:`load`."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from rnnkit import checkpoint
from rnnkit.errors import RnnkitError


def _task_classes() -> dict:
    # imported here so that loading one task does not import every other task's dependencies
    from rnnkit.tasks.asr import SpeechRecognizer
    from rnnkit.tasks.classify import TextClassifier
    from rnnkit.tasks.forecast import ForecastModel
    from rnnkit.tasks.lm import LanguageModel
    from rnnkit.tasks.translate import Translator

    return {
        "lm": LanguageModel,
        "forecast": ForecastModel,
        "classify": TextClassifier,
        "translate": Translator,
        "asr": SpeechRecognizer,
    }


def load(path: Path | str) -> nn.Module:
    """Rebuild the model of a run directory from its ``config.json`` and verified ``model.safetensors``.

    The returned model is in eval mode; ``model.run_config`` holds the whole ``config.json`` (tokenizer,
    data settings) for the task's inference.
    """
    config = checkpoint.read_config(path)
    classes = _task_classes()
    task = config.get("task")
    if task not in classes:
        raise RnnkitError(f"{Path(path) / checkpoint.CONFIG_FILE} names task {task!r}; known: {', '.join(classes)}.")
    try:
        model = classes[task].from_config(config["model"])
    except (KeyError, TypeError) as error:
        raise RnnkitError(f"{Path(path) / checkpoint.CONFIG_FILE} has no valid model config ({error}).") from None
    checkpoint.load_weights(path, model, config)
    model.run_config = config
    return model.eval()


from_pretrained = load
