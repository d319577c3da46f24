"""Built-in real time series, as CSV files on disk (see ``DATA.md``, "Time series").

* ``seattle-weather``: daily 2012-2015, 1,461 rows: ``temp_max`` with ``precipitation``, ``temp_min``,
  ``wind`` as covariates; ``seattle-temps``: hourly 2010, 8,759 rows (one daylight-saving hour missing).
  Both ship inside the ``vega_datasets`` package (BSD), an rnnkit dependency: read in place.
* ``co2``: Mauna Loa weekly CO2, 1958-2001, 2,284 weeks with 59 empty values (``--fill``). It ships inside
  the statsmodels wheel, which would pull scipy and more; so the one wheel is fetched with
  ``pip download --no-deps`` (pinned, sha256-checked, :mod:`rnnkit.data.sources`) and the CSV copied into
  the cache once. Its dates are YYYYMMDD integers, which :func:`rnnkit.data.series_times.parse_times` reads.

:func:`builtin_csv` maps a name to its path; a name that is an existing file is left to the caller.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from rnnkit.data.sources import PypiArchive, atomic_write_bytes, cache_dir, fetch_archive, read_member
from rnnkit.errors import RnnkitError

VEGA_FILES = {"seattle-weather": "seattle-weather.csv", "seattle-temps": "seattle-temps.csv"}

STATSMODELS = PypiArchive(
    "statsmodels",
    "0.15.0",
    "statsmodels-0.15.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256="b67886b66d9c7ca118526accedb5c6de7ffd74c015dc0492ea0b1690192b65da",
)
CO2_MEMBER = "statsmodels/datasets/co2/co2.csv"

SERIES = (*VEGA_FILES, "co2")


def vega_csv(name: str) -> Path:
    """The path of one of vega_datasets' CSV files, read where pip installed it."""
    try:
        path = Path(distribution("vega_datasets").locate_file(f"vega_datasets/_data/{VEGA_FILES[name]}"))
    except PackageNotFoundError:
        raise RnnkitError("the built-in series need vega_datasets; `pip install vega_datasets`.") from None
    if not path.is_file():
        raise RnnkitError(f"vega_datasets is installed without {VEGA_FILES[name]}; reinstall it.")
    return path


def co2_csv(*, cache: Path | None = None) -> Path:
    """Mauna Loa weekly CO2 as a CSV in the cache (``date`` as YYYYMMDD, ``co2`` in ppm), fetched once."""
    target = (cache if cache is not None else cache_dir()) / "series" / "co2.csv"
    if not target.is_file():
        wheel = fetch_archive(STATSMODELS, cache=cache)
        atomic_write_bytes(target, read_member(wheel, CO2_MEMBER))
    return target


def builtin_csv(name: str) -> Path:
    """The CSV of a built-in series by name (see :data:`SERIES`)."""
    if name in VEGA_FILES:
        return vega_csv(name)
    if name == "co2":
        return co2_csv()
    raise RnnkitError(f"{name!r} is neither a file nor a built-in series ({', '.join(SERIES)}).")


def resolve(data: str | Path) -> Path:
    """A path as given when it exists, else the built-in series of that name."""
    path = Path(data)
    if path.exists() or str(data) not in SERIES:
        return path
    return builtin_csv(str(data))
