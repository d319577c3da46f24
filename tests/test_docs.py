"""The documentation site builds with ``mkdocs build --strict`` (any warning fails), offline."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
MISSING = [
    name
    for name in ("mkdocs", "material", "mkdocstrings_handlers.python")
    if importlib.util.find_spec(name.split(".")[0]) is None
]


@pytest.mark.skipif(bool(MISSING), reason=f"the docs need mkdocs, mkdocs-material, mkdocstrings-python ({MISSING})")
def test_site_builds_strictly_with_the_api_reference_and_benchmark_tables(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "api" / "training" / "index.html").read_text()
    assert "rnnkit.train.Trainer" in api and "DistributedDataParallel" in api  # from the docstrings
    assert "LSTMCell" in (tmp_path / "cells" / "index.html").read_text()
    benchmarks = (tmp_path / "benchmarks" / "index.html").read_text()
    assert "reference_ms" in benchmarks  # a table read from bench/results/layers.json
    assert "fonts.googleapis.com" not in (tmp_path / "index.html").read_text()  # nothing to fetch when read
