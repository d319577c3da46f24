"""Built-in series: vega_datasets read in place; CO2 copied once out of a (here: stand-in) statsmodels wheel."""

import hashlib
import zipfile

import pytest

from rnnkit.data import series_sources
from rnnkit.data.series import SeriesSpec, load_series
from rnnkit.data.sources import PypiArchive
from rnnkit.errors import RnnkitError


def test_co2_is_copied_out_of_the_cached_wheel(tmp_path, monkeypatch):
    wheel = tmp_path / "pypi" / "statsmodels-fake.whl"
    wheel.parent.mkdir()
    csv = "date,co2\n19580329,316.1\n19580405,317.3\n19580412,\n19580419,317.5\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(series_sources.CO2_MEMBER, csv)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setattr(series_sources, "STATSMODELS", PypiArchive("statsmodels", "0", wheel.name, digest))
    path = series_sources.co2_csv(cache=tmp_path)
    assert path == tmp_path / "series" / "co2.csv" and path.read_text() == csv
    data = load_series(path, SeriesSpec("date", ("co2",), fill=True))
    assert data.freq == "W-SAT" and data.series[0].filled == 1


def test_unknown_name_is_a_missing_file():
    with pytest.raises(RnnkitError, match="does not exist"):
        load_series("seattle-rain", SeriesSpec("date", ("y",)))
    with pytest.raises(RnnkitError, match="built-in series"):
        series_sources.builtin_csv("seattle-rain")
