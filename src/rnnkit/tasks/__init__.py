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


# what each task's model is called in an error message
TASK_MODELS = {
    "lm": "language model",
    "forecast": "forecaster",
    "classify": "classifier",
    "translate": "translation model",
    "asr": "speech recogniser",
}


def load(path: Path | str, task: str | None = None) -> nn.Module:
    """Rebuild the model of a run directory from its ``config.json`` and verified ``model.safetensors``.

    The returned model is in eval mode; ``model.run_config`` holds the whole ``config.json`` (tokenizer,
    data settings) for the task's inference. ``task`` (``"lm"``, ``"forecast"``, ...): the run must be of that
    task, else a one-line :class:`RnnkitError` names the command that takes it.
    """
    if task is not None and task not in TASK_MODELS:
        raise RnnkitError(f"Unknown task {task!r}. Select from {', '.join(TASK_MODELS)}.")
    config = checkpoint.read_config(path)
    classes = _task_classes()
    found = config.get("task")
    if found not in classes:
        raise RnnkitError(f"{Path(path) / checkpoint.CONFIG_FILE} names task {found!r}; known: {', '.join(classes)}.")
    if task is not None and found != task:
        raise RnnkitError(
            f"{path} holds a {TASK_MODELS[found]}, not a {TASK_MODELS[task]}; use `rnnkit {found} ...` with it."
        )
    try:
        model = classes[found].from_config(config["model"])
    except (KeyError, TypeError) as error:
        raise RnnkitError(f"{Path(path) / checkpoint.CONFIG_FILE} has no valid model config ({error}).") from None
    checkpoint.load_weights(path, model, config)
    model.run_config = config
    return model.eval()


from_pretrained = load
