"""The native loops' build: one cached build per source digest and per torch installation."""

import torch.utils.cpp_extension

from rnnkit.kernels import native


def test_two_venvs_build_in_folders_of_their_own(monkeypatch):
    # torch writes its header and library folders into the build command, so two checkouts' .venvs sharing one
    # build folder made ninja rebuild it (a minute of both cores) whenever the other venv had built last
    here = native._name()
    other = "/elsewhere/.venv/lib/python3.11/site-packages/torch"
    monkeypatch.setattr(torch.utils.cpp_extension, "include_paths", lambda *a, **k: [f"{other}/include"])
    monkeypatch.setattr(torch.utils.cpp_extension, "library_paths", lambda *a, **k: [f"{other}/lib"])
    assert native._name() != here
    assert native._name().startswith("rnnkit_loops_")
