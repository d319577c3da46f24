"""Run directories: weights as safetensors, everything else as JSON, every file written atomically.

A run directory holds::

    config.json              task, model config, data/tokenizer config, rnnkit version, weights checksum
    model.safetensors        the model to use (the best on validation)
    trainer_state/
        resume.safetensors   what --resume needs: latest weights, optimizer, scheduler, RNG, data position;
                             tensors as tensors, the nesting as JSON in the file's metadata (one file, so
                             a crash can never pair new tensors with an old structure)
    metrics.json, log.csv    written by the trainer
    loss.png, report.html, inspect/, confusion.png, backtest.json, ...
                             written by the task and by other rnnkit commands (ARTEFACTS): a run replaced by a
                             fresh one takes them along (:func:`remove_artefacts`), and nothing else

Nothing here unpickles or executes anything from a file: a checkpoint is data. Truncated, corrupt or
mismatched files are refused with a :class:`RnnkitError` that names the file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from rnnkit.errors import RnnkitError, a_task

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINER_DIR = "trainer_state"
RESUME_FILE = "trainer_state/resume.safetensors"
RUN_MARKS = (CONFIG_FILE, WEIGHTS_FILE, RESUME_FILE)  # a directory holding one of these holds a run
# what rnnkit writes into a run directory at fixed names besides the checkpoint (the trainer, the tasks' training,
# `report`, `classify eval`, `forecast backtest`, `export`, `inspect`): each describes the run it sits beside.
# Only these go with a replaced run; the names are exact (patterns only inside inspect/, which rnnkit names)
ARTEFACTS = ("metrics.json", "loss.png", "report.html", "backtest.json", "confusion.png", "confusion-eval.png",
             "model.onnx")  # fmt: skip
INSPECT_DIR = "inspect"
INSPECT_ARTEFACTS = ("input.json", "unfolded.png", "unfolded.svg", "gradient-flow.png", "gradient-flow.svg",
                     "states-*.png", "states-*.svg")  # fmt: skip


# --- atomic files ------------------------------------------------------------------------------------------


def write_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either its old or its new content, never a mix.

    The bytes go to a temporary file in the same directory, are flushed to disk (fsync), then renamed over
    ``path`` (a rename within one file system is atomic); the directory is synced so the rename survives a crash.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private (0600); a run's files read like any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _umask() -> int:
    mask = os.umask(0)  # reading the mask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_json(path: Path | str, obj: Any) -> None:
    """``obj`` as strict JSON (NaN and infinities, e.g. a test statistic of too few origins, as null), atomically."""
    write_atomic(path, (strict_json(obj, indent=2) + "\n").encode())


def strict_json(obj: Any, **options) -> str:
    """``json.dumps`` that every parser reads: NaN and infinities become null (Python's default writes bare ``NaN``
    tokens, which JSON does not have); numpy scalars become numbers."""
    return json.dumps(_finite(obj), default=lambda value: _finite(float(value)), allow_nan=False, **options)


def _finite(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


def read_json(path: Path | str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist; is {path.parent} a run directory written by rnnkit?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RnnkitError(f"{path} is not valid JSON ({error}); the checkpoint is corrupt.") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- run directories -------------------------------------------------------------------------------------


def holds_run(directory: Path | str) -> bool:
    """Whether ``directory`` holds a run: its config, weights or resume state."""
    return any((Path(directory) / mark).exists() for mark in RUN_MARKS)


def remove_artefacts(directory: Path | str) -> list[Path]:
    """Remove the files other rnnkit commands wrote beside a run (:data:`ARTEFACTS`, rnnkit's pictures in
    ``inspect/``, which goes too once empty) and return them; any other file stays where it is."""
    directory = Path(directory)
    removed = [directory / name for name in ARTEFACTS if (directory / name).is_file()]
    inspect = directory / INSPECT_DIR
    if inspect.is_dir():
        removed += [
            path
            for path in sorted(inspect.iterdir())
            if path.is_file() and any(fnmatch.fnmatchcase(path.name, pattern) for pattern in INSPECT_ARTEFACTS)
        ]
    for path in removed:
        path.unlink(missing_ok=True)
    if inspect.is_dir() and not any(inspect.iterdir()):
        inspect.rmdir()
    return removed


# --- tensors -----------------------------------------------------------------------------------------------


def save_tensors(path: Path | str, tensors: dict[str, torch.Tensor]) -> str:
    """Write tensors as safetensors, atomically; return the file's sha256."""
    # safetensors wants contiguous, non-shared storage
    data = save_safetensors_bytes({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()})
    write_atomic(path, data)
    return sha256(data)


def load_tensors(path: Path | str, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file, refusing it clearly if missing, truncated, corrupt or not the one expected."""
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist; the checkpoint is incomplete.")
    data = path.read_bytes()
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise RnnkitError(
            f"{path} does not match the checksum in its config.json: the file is truncated, corrupt or from "
            "another run; restore it or train again."
        )
    try:
        return load_safetensors_bytes(data)
    except (SafetensorError, ValueError, OSError) as error:
        raise RnnkitError(f"{path} is not a readable safetensors file ({error}); the checkpoint is corrupt.") from None


# --- nested state (optimizer, scheduler, RNG) without pickles ---------------------------------------------


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """JSON-able copy of ``obj`` whose tensors move into ``tensors`` and leave ``{"__tensor__": key}``."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        # JSON keys are strings: remember int keys (optimizer state is keyed by parameter index)
        return {"__dict__": [[k, flatten_state(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        items = [flatten_state(v, tensors, prefix) for v in obj]
        if hasattr(obj, "_fields"):  # a named tuple: its field names, not its class (see NamedFields)
            return {"__tuple__": items, "__fields__": list(obj._fields)}
        return {"__tuple__": items}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, prefix) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickling it")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            items = (unflatten_state(v, tensors) for v in obj["__tuple__"])
            return NamedFields(items, obj["__fields__"]) if "__fields__" in obj else tuple(items)
        return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


class NamedFields(tuple):
    """A named tuple as a checkpoint gives it back: its items, and its field names in ``fields``.

    The class is not stored: named in a file it would have to be imported, which runs code. The reader that
    needs it back takes it from a live value of the same structure (:func:`restore_named`).
    """

    fields: tuple[str, ...]

    def __new__(cls, items, fields) -> NamedFields:
        named = super().__new__(cls, items)
        named.fields = tuple(fields)
        return named


def holds_named(obj: Any) -> bool:
    """Whether a loaded state holds any :class:`NamedFields`."""
    if isinstance(obj, NamedFields):
        return True
    if isinstance(obj, dict):
        return any(holds_named(v) for v in obj.values())
    return isinstance(obj, tuple | list) and any(holds_named(v) for v in obj)


def restore_named(saved: Any, live: Any, source: Path | str) -> Any:
    """``saved`` with each :class:`NamedFields` made the named tuple at the same place in ``live`` (a value of
    that structure made now, such as the state a model returns), which must have the same fields."""
    if isinstance(saved, NamedFields):
        if getattr(live, "_fields", None) != saved.fields or len(live) != len(saved):
            raise RnnkitError(
                f"{source} holds a named tuple with fields {saved.fields} where the model now gives "
                f"{type(live).__name__}; resume with the model (and code) that wrote it."
            )
        return type(live)(*(restore_named(s, v, source) for s, v in zip(saved, live, strict=True)))
    if isinstance(saved, dict) and isinstance(live, dict):
        return {k: restore_named(v, live.get(k), source) for k, v in saved.items()}
    if isinstance(saved, tuple | list) and isinstance(live, tuple | list) and len(saved) == len(live):
        return type(saved)(restore_named(s, v, source) for s, v in zip(saved, live, strict=True))
    if holds_named(saved):
        raise RnnkitError(
            f"{source} holds a carried state of another structure than the model now gives; resume with the "
            "model (and code) that wrote it."
        )
    return saved


def save_state(path: Path | str, state: dict[str, Any]) -> None:
    """Store nested state (tensors, numbers, strings, lists, dicts, tuples) in one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    structure = flatten_state(state, tensors)
    data = save_safetensors_bytes(
        {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()},
        metadata={"format": str(FORMAT_VERSION), "state": json.dumps(structure)},
    )
    write_atomic(path, data)


def load_state(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist; there is no saved training state to resume.")
    try:
        # the bytes in one read: safe_open opens the path again for the tensors, so a save renamed over the file
        # in between (a trainer still running) would pair one file's header with the other's data
        data = path.read_bytes()
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        structure = json.loads(header["__metadata__"]["state"])
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, OSError, KeyError, TypeError) as error:
        raise RnnkitError(
            f"{path} is truncated or corrupt ({error}); resume from another copy or start over."
        ) from None
    return unflatten_state(structure, tensors)


# --- models ------------------------------------------------------------------------------------------------


def save_model(directory: Path | str, model: nn.Module, config: dict[str, Any]) -> None:
    """Write ``model.safetensors`` then ``config.json`` (with the weights' checksum) into ``directory``."""
    from rnnkit import __version__

    directory = Path(directory)
    digest = save_tensors(directory / WEIGHTS_FILE, model.state_dict())
    write_json(
        directory / CONFIG_FILE,
        {
            "format": FORMAT_VERSION,
            "rnnkit_version": __version__,
            **config,
            "weights_sha256": digest,
        },
    )


def resumed_config(directory: Path | str, task: str) -> dict[str, Any]:
    """The config of the ``task`` run that ``--resume`` continues in ``directory`` ({} before its first
    checkpoint wrote one). Its model is rebuilt from it: the command line's model options describe a new run,
    and taken instead they would change the run silently or fail to fit its saved weights."""
    if not (Path(directory) / CONFIG_FILE).is_file():
        return {}
    config = read_config(directory)
    if config.get("task") != task:
        raise RnnkitError(
            f"{directory} holds {a_task(str(config.get('task')))} run, not {a_task(task)} one; --resume continues "
            "a run of the same task."
        )
    return config


def read_config(directory: Path | str) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise RnnkitError(f"{directory} is not a directory; pass the --out directory of a training run.")
    config = read_json(directory / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != FORMAT_VERSION:
        found = config.get("format") if isinstance(config, dict) else None
        raise RnnkitError(
            f"{directory / CONFIG_FILE} has checkpoint format {found!r}; this rnnkit reads format {FORMAT_VERSION}."
        )
    return config


def load_weights(directory: Path | str, model: nn.Module, config: dict[str, Any]) -> None:
    """Load verified weights into ``model``; refuse missing, extra or misshapen tensors by name."""
    tensors = load_tensors(Path(directory) / WEIGHTS_FILE, config.get("weights_sha256"))
    load_into(model, tensors, Path(directory) / WEIGHTS_FILE)


def load_into(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    source: Path | str,
    what: str = "the model its config.json describes",
) -> None:
    """Load ``tensors`` into ``model``; a one-line error naming what differs if they do not fit (``what`` names
    the model in that line)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    misshapen = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or misshapen:
        details = "; ".join(
            f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
            if keys
        )
        raise RnnkitError(f"{source} does not fit {what} ({details}).")
    model.load_state_dict(tensors)
