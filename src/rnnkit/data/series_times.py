r"""The time column of a series file and its regular grid: parsed timestamps, a pandas frequency, calendar features.

Times are strings (``2012-01-31``, ``2012-01-31 13:00``, with or without a zone) or integers written as YYYYMMDD
(as in Mauna Loa's CO2 file). The grid is a pandas offset alias (``"D"``, ``"W-SAT"``, ``"MS"``, ``"h"``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from rnnkit.errors import RnnkitError, first_line

DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)


def parse_times(column: pd.Series, name: str, source: str) -> pd.Series:
    """Timestamps from strings, or from integers written as YYYYMMDD (as in Mauna Loa's CO2 file)."""
    try:
        if pd.api.types.is_numeric_dtype(column):
            if not column.between(10_000_101, 99_991_231).all():
                raise ValueError("numbers that are not dates")
            times = pd.to_datetime(column.astype("int64").astype(str), format="%Y%m%d")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we retry below
                try:
                    times = pd.to_datetime(column)
                except ValueError as error:
                    if "utc=True" not in str(error):  # formats differ from row to row (a date, a time)
                        times = pd.to_datetime(column, format="mixed")
                    else:  # offsets differ from row to row (daylight saving time): read each on its own clock
                        times = _without_zone(pd.to_datetime(column, utc=True), column.map(_wall_clock))
    except (ValueError, TypeError, OverflowError) as error:
        raise RnnkitError(
            f"time column {name!r} of {source} does not parse as dates ({first_line(error)}); "
            "write times like 2012-01-31 or 2012-01-31 13:00."
        ) from None
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise RnnkitError(f"time column {name!r} of {source} is empty at row {row + 1}; give every row a time.")
    if getattr(times.dt, "tz", None) is not None:
        times = _without_zone(times, times.dt.tz_localize(None))
    return times


def _wall_clock(value) -> pd.Timestamp:
    """One timestamp as its own clock reads it, the zone dropped (NaT stays NaT)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(None) if stamp is not pd.NaT and stamp.tz is not None else stamp


def _without_zone(times: pd.Series, wall: pd.Series) -> pd.Series:
    """Zone-aware ``times`` on one clock without a zone: the local clock (``wall``) where every step falls at one
    time of day (daily and longer steps: in UTC a daylight-saving change would move local midnight by an hour
    and break the grid), else UTC (hourly steps: the local clock skips or repeats an hour there)."""
    wall = pd.to_datetime(wall)
    if wall.notna().all() and (wall - wall.dt.normalize()).nunique() <= 1:
        return wall
    return times.dt.tz_convert(None)


def check_order(times: pd.Series, label: str, source: str) -> None:
    """Refuse duplicated or unsorted times, naming the first."""
    duplicated = times.duplicated()
    if duplicated.any():
        when = times[duplicated].iloc[0]
        raise RnnkitError(f"time {when} appears more than once in {label} of {source}; keep one row per time step.")
    backwards = np.flatnonzero(np.diff(times.to_numpy().astype("datetime64[ns]").astype("int64")) < 0)
    if len(backwards):
        i = int(backwards[0])
        raise RnnkitError(
            f"timestamps of {label} in {source} are not sorted ({times.iloc[i + 1]} comes after "
            f"{times.iloc[i]}); sort the file by time."
        )


def check_spacing(times: pd.Series, offset: pd.DateOffset, label: str, source: str) -> None:
    """Refuse a file at another frequency than a trained model's grid: with ``fill`` it would be interpolated
    onto that grid instead of refused for its gaps. Most steps of a series on the grid are one step apart."""
    times = pd.DatetimeIndex(times)
    if len(times) < 3:
        return
    with warnings.catch_warnings():  # adding a non-fixed offset (months) to an index warns about performance
        warnings.simplefilter("ignore")
        one_step = times[1:].isin(times[:-1] + offset)
    if one_step.mean() < 0.5:
        raise RnnkitError(
            f"the steps of {label} in {source} are not {offset.freqstr} apart, the frequency the model was trained "
            "on; give the data at that frequency."
        )


def infer_frequency(times_list: list[pd.Series], source: str) -> pd.DateOffset:
    """The grid step shared by all series: pandas' inference, else the most common spacing (allowing gaps)."""
    for times in times_list:
        if len(times) >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas 3 warns that a later version returns an offset
                inferred = pd.infer_freq(pd.DatetimeIndex(times))
            if inferred:
                return to_offset(inferred)
    steps = np.concatenate([np.diff(pd.DatetimeIndex(t).as_unit("ns").asi8) for t in times_list])
    if len(steps) == 0:
        raise RnnkitError(f"{source} has a single time step; a series needs many steps to forecast.")
    values, counts = np.unique(steps, return_counts=True)
    step = pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
    days = step / DAY
    candidates: list[str | pd.Timedelta] = [step]
    for low, high, aliases in ((28, 31, ("MS", "ME")), (89, 92, ("QS", "QE")), (365, 366, ("YS", "YE"))):
        if low <= days <= high:
            candidates = list(aliases)
    if days == 7:
        candidates = [f"W-{pd.Timestamp(times_list[0].iloc[0]).day_name()[:3].upper()}", step]
    for candidate in candidates:
        offset = to_offset(candidate)
        if all(pd.DatetimeIndex(t).isin(grid(t.iloc[0], t.iloc[-1], offset)).all() for t in times_list):
            return offset
    raise RnnkitError(
        f"the timestamps of {source} are not on a regular grid (the most common step is {step}); "
        "resample the data to a regular frequency."
    )


def grid(first: pd.Timestamp, last: pd.Timestamp, offset: pd.DateOffset) -> pd.DatetimeIndex:
    return pd.date_range(first, last, freq=offset)


def nominal_step(offset: pd.DateOffset) -> pd.Timedelta:
    """The length of one step (a month counts as its usual 31-day-or-less span)."""
    start = pd.Timestamp("2001-01-01")
    return (start + offset + offset) - (start + offset)


def calendar_names(step: pd.Timedelta) -> tuple[str, ...]:
    names = ["day_of_year_sin", "day_of_year_cos"]
    if step < WEEK:
        names += ["day_of_week_sin", "day_of_week_cos"]
    if step < DAY:
        names += ["hour_sin", "hour_cos"]
    return tuple(names)


def calendar_features(times: pd.DatetimeIndex, names: tuple[str, ...]) -> np.ndarray:
    r"""Known-future features from timestamps, each a point on the unit circle: ``(T, len(names))``.

    .. math:: \sin(2\pi u / P),\ \cos(2\pi u / P)

    with u the day of year (P = 365.25), day of week (P = 7) or fractional hour of day (P = 24), so that
    31 December sits next to 1 January.
    """
    times = pd.DatetimeIndex(times)
    phases = {
        "day_of_year": (times.day_of_year.to_numpy() - 1) / 365.25,
        "day_of_week": times.day_of_week.to_numpy() / 7,
        "hour": (times.hour.to_numpy() + times.minute.to_numpy() / 60) / 24,
    }
    columns = []
    for name in names:
        base, wave = name.rsplit("_", 1)
        angle = 2 * np.pi * phases[base]
        columns.append(np.sin(angle) if wave == "sin" else np.cos(angle))
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(times), 0), np.float32)
