"""Reading time series: roles, frequency or integer step, calendar features, one clear error per kind of bad file."""

import math

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.series import SeriesSpec, calendar_features, future_times, load_series
from rnnkit.errors import RnnkitError

SPEC = SeriesSpec("date", ("y",), covariates=("rain",))


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def daily(n=10, start="2020-01-01"):
    times = pd.date_range(start, periods=n, freq="D")
    return "date,y,rain\n" + "".join(f"{t:%Y-%m-%d},{i}.5,{i % 3}\n" for i, t in enumerate(times))


def test_reads_roles_frequency_and_calendar(tmp_path):
    data = load_series(write(tmp_path, daily()), SPEC)
    series = data.series[0]
    assert data.freq == "D" and len(series) == 10
    assert data.calendar == ("day_of_year_sin", "day_of_year_cos", "day_of_week_sin", "day_of_week_cos")
    np.testing.assert_allclose(series.target[:, 0], np.arange(10) + 0.5)
    np.testing.assert_allclose(series.past[:, 0], np.arange(10) % 3)
    assert series.future.shape == (10, 4)
    # 1 January is day 1 of the year: angle 0; 2020-01-01 is a Wednesday (day 2 of the week)
    np.testing.assert_allclose(series.future[0, :2], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(series.future[0, 2:], [math.sin(2 * math.pi * 2 / 7), math.cos(2 * math.pi * 2 / 7)])


def test_hourly_steps_add_hour_of_day():
    times = pd.date_range("2020-01-01", periods=3, freq="h")
    names = ("hour_sin", "hour_cos")
    np.testing.assert_allclose(calendar_features(times, names)[1], [math.sin(math.pi / 12), math.cos(math.pi / 12)])


def test_yyyymmdd_integers_and_weekly_frequency(tmp_path):
    text = "date,co2\n19580329,316.1\n19580405,317.3\n19580412,317.6\n19580419,317.5\n"
    data = load_series(write(tmp_path, text), SeriesSpec("date", ("co2",)))
    assert data.freq == "W-SAT" and data.calendar == ("day_of_year_sin", "day_of_year_cos")
    assert str(future_times(data.series[0], data.freq, 1)[0].date()) == "1958-04-26"


def test_monthly_gap_is_found_and_filled(tmp_path):
    text = "date,y\n2020-01-01,1\n2020-02-01,2\n2020-04-01,4\n2020-05-01,5\n"
    with pytest.raises(RnnkitError, match=r"misses 1 time step.*2020-03-01.*--fill"):
        load_series(write(tmp_path, text), SeriesSpec("date", ("y",)))
    data = load_series(write(tmp_path, text), SeriesSpec("date", ("y",), fill=True))
    assert data.freq == "MS" and data.series[0].filled == 1
    # linear in time: March lies 29 of 60 days between February (2) and April (4)
    np.testing.assert_allclose(data.series[0].target[2, 0], 2 + 2 * 29 / 60, rtol=1e-6)


def test_empty_values_need_fill(tmp_path):
    text = "date,y,rain\n2020-01-01,1,0\n2020-01-02,,0\n2020-01-03,3,0\n"
    with pytest.raises(RnnkitError, match=r"column 'y' .* 1 empty value.*2020-01-02.*--fill"):
        load_series(write(tmp_path, text), SPEC)
    filled = load_series(write(tmp_path, text), SeriesSpec("date", ("y",), ("rain",), fill=True))
    np.testing.assert_allclose(filled.series[0].target[:, 0], [1, 2, 3])


def test_long_format_gives_one_series_per_id(tmp_path):
    rows = "".join(f"{s},2020-01-0{d},{d * (1 if s == 'a' else 10)}\n" for s in "ab" for d in range(1, 6))
    data = load_series(write(tmp_path, "id,date,y\n" + rows), SeriesSpec("date", ("y",), id_col="id"))
    assert [s.id for s in data.series] == ["a", "b"]
    np.testing.assert_allclose(data.series[1].target[:, 0], [10, 20, 30, 40, 50])


def test_a_row_without_an_id_is_refused(tmp_path):
    # grouped by id, the row would vanish and series 'b' would end a day early
    rows = ["2020-01-01,a,1", "2020-01-01,b,2", "2020-01-02,a,3", "2020-01-02,b,4", "2020-01-03,a,5", "2020-01-03,,6"]
    text = "date,shop,y\n" + "".join(row + "\n" for row in rows)
    with pytest.raises(RnnkitError, match=r"id column 'shop' of .* is empty at row 6 \(2020-01-03 00:00:00\)"):
        load_series(write(tmp_path, text), SeriesSpec("date", ("y",), id_col="shop"))


def test_known_future_rows_are_kept_apart(tmp_path):
    text = "date,y,holiday\n2020-01-01,1,0\n2020-01-02,2,1\n2020-01-03,3,0\n2020-01-04,,1\n2020-01-05,,0\n"
    data = load_series(write(tmp_path, text), SeriesSpec("date", ("y",), future_covariates=("holiday",)))
    series = data.series[0]
    assert len(series) == 3 and series.future.shape == (5, 1 + 4)
    np.testing.assert_allclose(series.future[:, 0], [0, 1, 0, 1, 0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"is empty"),
        ("date,y,rain\n", r"has a header \(date, y, rain\) but no rows"),
        ("date,y,rain\n2020-01-01,1,0\n2020-01-02,2,0,7\n", r"line 3 has 4 fields but the header has 3"),
        ("date,y,rain\n2020-01-01,1,0\n2020-01-02,2\n", r"line 3 has 2 fields but the header has 3"),
        ("date,y,rain\n2020-01-01,1,0\n2020-01-02,warm,0\n", r"column 'y' .* holds text \('warm'"),
        ("date,y,rain\n2020-01-01,1,0\n2020-01-02,2,-inf\n", r"column .rain. .* infinite value \(-inf at 2020-01-02"),
        (
            "date,y,rain\n2020-01-01,1,0\n2020-01-01,2,0\n2020-01-02,2,0\n",
            r"2020-01-01 00:00:00 appears more than once",
        ),
        ("date,y,rain\n2020-01-02,1,0\n2020-01-01,2,0\n2020-01-03,2,0\n", r"not sorted"),
        ("date,y,rain\nsoon,1,0\nlater,2,0\n", r"does not parse as dates"),
        ("date,temp,rain\n2020-01-01,1,0\n", r"column 'y' is not in .*; its columns are date, temp, rain"),
    ],
    ids=[
        "empty",
        "header-only",
        "long-row",
        "short-row",
        "text",
        "infinite",
        "duplicate",
        "unsorted",
        "bad-time",
        "unknown",
    ],
)
def test_bad_files_raise_one_line(tmp_path, text, message):
    with pytest.raises(RnnkitError, match=message) as caught:
        load_series(write(tmp_path, text), SPEC)
    assert "\n" not in str(caught.value)


def test_missing_file_and_irregular_steps(tmp_path):
    with pytest.raises(RnnkitError, match="does not exist"):
        load_series(tmp_path / "nope.csv", SPEC)
    days = "".join(f"2020-01-0{d},1,0\n" for d in range(1, 6))
    text = "date,y,rain\n" + days + "2020-01-05 12:00,1,0\n"
    with pytest.raises(RnnkitError, match="regular"):
        load_series(write(tmp_path, text), SPEC)


def test_a_column_cannot_play_two_roles():
    with pytest.raises(RnnkitError, match="more than one role"):
        SeriesSpec("date", ("y",), covariates=("y",))


def test_builtin_seattle_weather_reads_from_the_installed_package():
    data = load_series("seattle-weather", SeriesSpec("date", ("temp_max",), ("precipitation", "temp_min", "wind")))
    assert data.freq == "D" and len(data.series[0]) == 1461 and data.series[0].past.shape == (1461, 3)


def test_a_broken_parquet_file_is_one_clear_error(tmp_path):
    path = write(tmp_path, "not parquet", name="data.parquet")
    with pytest.raises(RnnkitError, match=r"pyarrow|not a readable Parquet"):
        load_series(path, SPEC)


def test_zoned_times_across_daylight_saving(tmp_path):
    # New York's midnights: -05:00 before 14 March 2021, -04:00 after; in UTC they would be 23 or 25 hours apart
    days = pd.date_range("2021-03-10", periods=8, freq="D", tz="America/New_York")
    text = "date,y\n" + "".join(f"{t},{i}\n" for i, t in enumerate(days))
    data = load_series(write(tmp_path, text), SeriesSpec("date", ("y",)))
    assert data.freq == "D" and str(data.series[0].times[-1]) == "2021-03-17 00:00:00"
    frame = pd.DataFrame({"date": days, "y": np.arange(8.0)})
    frame.to_parquet(tmp_path / "days.parquet")
    assert load_series(tmp_path / "days.parquet", SeriesSpec("date", ("y",))).freq == "D"
    # hourly steps go by UTC, where the clock neither skips nor repeats an hour
    hours = pd.date_range("2021-03-28", periods=6, freq="h", tz="Europe/Berlin")
    text = "date,y\n" + "".join(f"{t},{i}\n" for i, t in enumerate(hours))
    data = load_series(write(tmp_path, text), SeriesSpec("date", ("y",)))
    assert data.freq == "h" and str(data.series[0].times[0]) == "2021-03-27 23:00:00"


# --- an integer step index ----------------------------------------------------------------------------------------


def steps(values):
    return "t,y\n" + "".join(f"{t},{i}\n" for i, t in enumerate(values))


@pytest.mark.parametrize(("values", "step"), [(range(10), 1), (range(0, 50, 5), 5), (range(1990, 2000), 1)])
def test_integer_times_are_steps_on_their_common_step(tmp_path, values, step):
    data = load_series(write(tmp_path, steps(values)), SeriesSpec("t", ("y",)))
    series = data.series[0]
    assert data.freq == step and data.time_index == "steps"
    assert series.times.tolist() == list(values) and series.times.dtype == "int64"
    # no calendar on steps, though calendar features are on by default
    assert data.calendar == () and series.future.shape == (10, 0)
    assert future_times(series, data.freq, 2).tolist() == [values[-1] + step, values[-1] + 2 * step]


def test_long_format_on_integer_steps_gives_one_series_per_id(tmp_path):
    rows = "".join(f"{s},{t},{t * (1 if s == 'a' else 10)}\n" for s in "ab" for t in range(5, 30, 5))
    data = load_series(write(tmp_path, "id,t,y\n" + rows), SeriesSpec("t", ("y",), id_col="id"))
    assert data.freq == 5 and [s.id for s in data.series] == ["a", "b"]
    assert data.series[1].times.tolist() == [5, 10, 15, 20, 25]
    np.testing.assert_allclose(data.series[1].target[:, 0], [50, 100, 150, 200, 250])


def test_a_gap_in_integer_steps_is_found_and_filled(tmp_path):
    text = "t,y\n0,0\n5,1\n10,2\n20,6\n25,7\n"
    with pytest.raises(RnnkitError, match=r"misses 1 time step\(s\) of its 5-step grid \(first at 15\).*--fill"):
        load_series(write(tmp_path, text), SeriesSpec("t", ("y",)))
    data = load_series(write(tmp_path, text), SeriesSpec("t", ("y",), fill=True))
    series = data.series[0]
    assert data.freq == 5 and series.filled == 1 and series.times.tolist() == [0, 5, 10, 15, 20, 25]
    np.testing.assert_allclose(series.target[:, 0], [0, 1, 2, 4, 6, 7])  # linear between steps 10 and 20


def test_yyyymmdd_integers_stay_dates_unless_read_as_steps(tmp_path):
    path = write(tmp_path, steps([20150101, 20150102, 20150103, 20150104]))
    assert load_series(path, SeriesSpec("t", ("y",))).freq == "D"
    counted = load_series(path, SeriesSpec("t", ("y",), time_index="steps"))
    assert counted.freq == 1 and counted.series[0].times[0] == 20150101
    # integers all in YYYYMMDD's range with one impossible date: a date file with a typo, which says what to do
    with pytest.raises(RnnkitError, match=r"does not parse as dates.*--time-index steps"):
        load_series(write(tmp_path, steps([20150227, 20150228, 20150229])), SeriesSpec("t", ("y",)))
    with pytest.raises(RnnkitError, match=r"does not parse as dates"):
        load_series(write(tmp_path, steps(range(4))), SeriesSpec("t", ("y",), time_index="dates"))
    # an empty cell among YYYYMMDD dates (pandas reads the column as floats) is named as such
    with pytest.raises(RnnkitError, match=r"time column 't' .* is empty at row 2; give every row a time"):
        load_series(write(tmp_path, "t,y\n20150101,1\n,2\n20150103,3\n"), SeriesSpec("t", ("y",)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,y\n0,1\n1,2\n1,3\n2,4\n", r"time 1 appears more than once in the series"),
        ("t,y\n0,1\n2,2\n1,3\n3,4\n", r"not sorted \(1 comes after 2\)"),
        ("t,y\n0,1\n,2\n2,3\n", r"time column 't' .* is empty at row 2"),
        ("t,y\n0,1\n1.5,2\n2,3\n", r"holds 1.5 at row 2, not a whole number"),
        ("t,y\n0,1\n2,2\n3,3\n5,4\n", r"not on a regular grid \(the most common step is 2\)"),
        ("t,y\n0,1\n1,2\n2,3\n999999,4\n", r"has 4 rows but spans 1000000 steps .* stray time"),
    ],
    ids=["duplicate", "unsorted", "empty", "fraction", "irregular", "stray"],
)
def test_bad_integer_steps_raise_one_line(tmp_path, text, message):
    with pytest.raises(RnnkitError, match=message) as caught:
        load_series(write(tmp_path, text), SeriesSpec("t", ("y",)))
    assert "\n" not in str(caught.value)


def test_text_read_as_steps_and_an_unknown_time_index_are_refused(tmp_path):
    path = write(tmp_path, daily())
    with pytest.raises(RnnkitError, match=r"holds '2020-01-01' at row 1, not an integer step"):
        load_series(path, SeriesSpec("date", ("y",), time_index="steps"))
    with pytest.raises(RnnkitError, match=r"unknown time index 'ints'; select from 'auto', 'dates' or 'steps'"):
        SeriesSpec("date", ("y",), time_index="ints")
