"""Checkpoints: atomic writes, no pickles, and clear refusals of truncated, corrupt or mismatched files."""

import json
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from rnnkit import RnnkitError, checkpoint
from rnnkit.tasks.lm import LanguageModel, LanguageModelConfig

CONFIG = LanguageModelConfig(vocab_size=11, embedding_size=4, hidden_size=6)


def saved_lm(directory):
    model = LanguageModel(CONFIG)
    checkpoint.save_model(directory, model, {"task": "lm", "model": {**CONFIG.__dict__}})
    return model


def test_saved_model_loads_back_equal(tmp_path):
    model = saved_lm(tmp_path)
    loaded = rnnkit.load(tmp_path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert json.loads((tmp_path / "config.json").read_text())["rnnkit_version"] == rnnkit.__version__


def test_truncated_weights_are_refused(tmp_path):
    saved_lm(tmp_path)
    path = tmp_path / checkpoint.WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RnnkitError, match="does not match the checksum"):
        rnnkit.load(tmp_path)


def test_corrupt_weights_without_checksum_are_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(RnnkitError, match="not a readable safetensors file"):
        checkpoint.load_tensors(path)


def test_corrupt_config_is_refused(tmp_path):
    saved_lm(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(RnnkitError, match=r"config\.json is not valid JSON"):
        rnnkit.load(tmp_path)


def test_other_format_version_is_refused(tmp_path):
    saved_lm(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "format": 99}))
    with pytest.raises(RnnkitError, match="checkpoint format 99"):
        rnnkit.load(tmp_path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    saved_lm(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["hidden_size"] = 7
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RnnkitError, match=r"does not fit the model .*\(wrong shape: layers\.0\.weight_ih_l0"):
        rnnkit.load(tmp_path)


def test_missing_directory_and_unknown_task_are_refused(tmp_path):
    with pytest.raises(RnnkitError, match="is not a directory"):
        rnnkit.load(tmp_path / "nope")
    checkpoint.save_model(tmp_path, nn.Linear(2, 2), {"task": "chess"})
    with pytest.raises(RnnkitError, match="names task 'chess'"):
        rnnkit.load(tmp_path)


def test_an_unknown_task_asked_for_is_refused_in_one_line(tmp_path):
    saved_lm(tmp_path)
    assert isinstance(rnnkit.load(tmp_path, task="lm"), LanguageModel)
    with pytest.raises(RnnkitError, match="Unknown task 'classifier'"):
        rnnkit.load(tmp_path, task="classifier")


def test_nested_state_round_trips_without_pickle(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "tuple": (1, "a", None), "rng": torch.get_rng_state()}
    checkpoint.save_state(tmp_path / "s.safetensors", state)
    loaded = checkpoint.load_state(tmp_path / "s.safetensors")
    assert loaded["tuple"] == (1, "a", None) and torch.equal(loaded["rng"], state["rng"])
    assert list(loaded["optimizer"]["state"]) == [0, 1]  # integer keys survive JSON
    fresh = torch.optim.AdamW(model.parameters())
    fresh.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_named_tuples_are_stored_by_their_fields_and_rebuilt_like_a_live_value(tmp_path):
    Carry, Other = namedtuple("Carry", "h c"), namedtuple("Other", "h x")
    layers = [Carry(torch.ones(2), torch.zeros(2)), Carry(torch.ones(3), torch.zeros(3))]  # one state per layer
    checkpoint.save_state(tmp_path / "s.safetensors", {"carried": layers})
    loaded = checkpoint.load_state(tmp_path / "s.safetensors")["carried"]
    assert all(type(layer) is checkpoint.NamedFields and layer.fields == ("h", "c") for layer in loaded)
    live = [Carry(torch.full((2,), 5.0), None), Carry(None, None)]  # only the structure is read
    restored = checkpoint.restore_named(loaded, live, "s.safetensors")
    assert all(type(layer) is Carry for layer in restored) and torch.equal(restored[1].h, torch.ones(3))
    with pytest.raises(RnnkitError, match=r"fields \('h', 'c'\) where the model now gives Other"):
        checkpoint.restore_named(loaded, [Other(None, None)] * 2, "s.safetensors")


def test_truncated_resume_state_is_refused(tmp_path):
    path = tmp_path / "s.safetensors"
    checkpoint.save_state(path, {"x": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RnnkitError, match="truncated or corrupt"):
        checkpoint.load_state(path)


def test_objects_that_would_need_pickle_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="without pickling"):
        checkpoint.save_state(tmp_path / "s.safetensors", {"f": object()})


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "file.bin"
    checkpoint.write_atomic(path, b"old")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary file left behind


def test_atomic_writes_get_the_permissions_the_umask_gives_any_new_file(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        checkpoint.write_atomic(tmp_path / "config.json", b"{}")
        (tmp_path / "plain.txt").write_bytes(b"")
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o644


def test_json_files_are_strict_json_with_nan_as_null(tmp_path):
    # a Diebold-Mariano p-value of one origin is NaN; Python's json would write a bare NaN token into backtest.json
    checkpoint.write_json(tmp_path / "m.json", {"p": float("nan"), "inf": [np.float32("inf")], "n": np.int64(3)})

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse) == {"p": None, "inf": [None], "n": 3}
