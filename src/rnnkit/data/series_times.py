r"""The time column of a series file and its regular grid: dates at a pandas frequency, or integer steps.

A time column is read one of two ways (``time_index``):

* **dates** — strings (``2012-01-31``, ``2012-01-31 13:00``, with or without a zone) or integers written as
  YYYYMMDD (as in Mauna Loa's CO2 file). The grid is a pandas offset alias (``"D"``, ``"W-SAT"``, ``"MS"``,
  ``"h"``) and calendar features can be made from the timestamps.
* **steps** — integers counting steps (``0, 1, 2, ...`` or years ``1990, 1991, ...``), like a darts
  ``TimeSeries`` on a ``RangeIndex``. The grid is the common step, an ``int`` (1, or 5 for ``0, 5, 10, ...``);
  there are no calendar features.

``"auto"`` (the default) reads strings as dates and integers as steps, except a column whose integers all lie
between 10000101 and 99991231: those are YYYYMMDD dates, as they always were (a typo such as 20150230 there is
an unparsable date, not a step). ``time_index="steps"`` reads such a column as step numbers instead.

A grid's ``freq`` is what a trained model saves: a string for dates, an int for steps. Its increment ``u`` is
added to a time to get the next one, :math:`t_{k+1} = t_k + u` (a ``DateOffset``, or the step itself).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype
from pandas.tseries.frequencies import to_offset

from rnnkit.errors import RnnkitError, first_line

TIME_INDEXES = ("auto", "dates", "steps")
YYYYMMDD = (10_000_101, 99_991_231)  # the integers that can be a date written as YYYYMMDD
DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)

Freq = str | int  # a pandas offset alias over dates, or the step of an integer index


def index_kind(column: pd.Series, time_index: str = "auto") -> str:
    """``"dates"`` or ``"steps"``: what ``time_index`` names, or under ``"auto"`` what the column holds."""
    if time_index != "auto":
        return time_index
    if not is_numeric_dtype(column) or is_bool_dtype(column):
        return "dates"
    values = column.dropna()
    return "dates" if len(values) and values.between(*YYYYMMDD).all() else "steps"


def freq_kind(freq: Freq) -> str:
    """The kind of index a grid is on: an int step is an integer index."""
    return "steps" if isinstance(freq, int) else "dates"


def grid_name(freq: Freq) -> str:
    """How messages name a grid: ``D`` or ``5-step``."""
    return f"{freq}-step" if isinstance(freq, int) else str(freq)


def parse_times(column: pd.Series, name: str, source: str, *, time_index: str = "auto") -> pd.Series:
    """Timestamps (``datetime64``) or integer steps (``int64``), as :func:`index_kind` tells them apart."""
    if index_kind(column, time_index) == "steps":
        times = _steps(column, name, source)
    else:
        times = _dates(column, name, source)
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise RnnkitError(f"time column {name!r} of {source} is empty at row {row + 1}; give every row a time.")
    if is_integer_dtype(times):
        return times
    if getattr(times.dt, "tz", None) is not None:
        times = _without_zone(times, times.dt.tz_localize(None))
    return times


def _steps(column: pd.Series, name: str, source: str) -> pd.Series:
    """Integer steps; a float column (a Parquet column, or one pandas widened for an empty cell) if whole."""
    values = pd.to_numeric(column, errors="coerce")
    bad = (values.isna() & column.notna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RnnkitError(
            f"time column {name!r} of {source} holds {column.iloc[row]!r} at row {row + 1}, not an integer step; "
            "write steps like 0, 1, 2 or 1990, 1991, or dates like 2012-01-31."
        )
    if values.isna().any():
        return values  # parse_times names the empty row
    fraction = (values % 1 != 0).to_numpy()
    if fraction.any():
        row = int(np.flatnonzero(fraction)[0])
        raise RnnkitError(
            f"time column {name!r} of {source} holds {values.iloc[row]} at row {row + 1}, not a whole number; "
            "number the steps with integers."
        )
    return values.astype("int64")


def _dates(column: pd.Series, name: str, source: str) -> pd.Series:
    """Timestamps from strings, or from integers written as YYYYMMDD (as in Mauna Loa's CO2 file)."""
    numbers = is_numeric_dtype(column)
    try:
        if numbers:
            given = column.dropna()  # an empty cell stays empty (NaT): parse_times names its row
            if not given.between(*YYYYMMDD).all():
                raise ValueError("numbers that are not dates")
            return pd.to_datetime(given.astype("int64").astype(str), format="%Y%m%d").reindex(column.index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": we retry below
            try:
                return pd.to_datetime(column)
            except ValueError as error:
                if "utc=True" not in str(error):  # formats differ from row to row (a date, a time)
                    return pd.to_datetime(column, format="mixed")
                # offsets differ from row to row (daylight saving time): read each on its own clock
                return _without_zone(pd.to_datetime(column, utc=True), column.map(_wall_clock))
    except (ValueError, TypeError, OverflowError) as error:
        # an integer column is read as dates when every value could be YYYYMMDD; step numbers can say so
        hint = "; if they count steps, read them with --time-index steps" if numbers else ""
        raise RnnkitError(
            f"time column {name!r} of {source} does not parse as dates ({first_line(error)}); "
            f"write times like 2012-01-31 or 2012-01-31 13:00{hint}."
        ) from None


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


def check_trained_kind(column: pd.Series, freq: Freq, name: str, source: str) -> None:
    """Refuse a file whose time column is of the other kind than a trained model's grid, in one line."""
    # any numbers pass a steps model, even ones that could all be YYYYMMDD: it may have been trained with
    # --time-index steps on such numbers
    if freq_kind(freq) == "steps" and not is_numeric_dtype(column):
        raise RnnkitError(
            f"the model was trained on integer steps {freq} apart but time column {name!r} of {source} holds "
            f"dates ({column.iloc[0]!r}); give the file with the steps it was trained on."
        )
    if freq_kind(freq) == "dates" and index_kind(column) == "steps":
        raise RnnkitError(
            f"the model was trained on dates ({freq}) but time column {name!r} of {source} holds integer steps "
            f"({column.iloc[0]}); give the file with dates."
        )


def ordinal(times: pd.Series | pd.Index) -> np.ndarray:
    """Times as int64 numbers: nanoseconds for dates, the steps themselves for an integer index."""
    if is_integer_dtype(times):
        return np.asarray(times, dtype=np.int64)
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def check_order(times: pd.Series, label: str, source: str) -> None:
    """Refuse duplicated or unsorted times, naming the first."""
    duplicated = times.duplicated()
    if duplicated.any():
        when = times[duplicated].iloc[0]
        raise RnnkitError(f"time {when} appears more than once in {label} of {source}; keep one row per time step.")
    backwards = np.flatnonzero(np.diff(ordinal(times)) < 0)
    if len(backwards):
        i = int(backwards[0])
        raise RnnkitError(
            f"timestamps of {label} in {source} are not sorted ({times.iloc[i + 1]} comes after "
            f"{times.iloc[i]}); sort the file by time."
        )


def increment(freq: Freq | pd.DateOffset) -> int | pd.DateOffset:
    """What one step adds to a time: the int step, or the pandas offset."""
    return freq if isinstance(freq, int) else to_offset(freq)


def check_spacing(times: pd.Series, freq: Freq, label: str, source: str) -> None:
    """Refuse a file at another frequency than a trained model's grid: with ``fill`` it would be interpolated
    onto that grid instead of refused for its gaps. Most steps of a series on the grid are one step apart."""
    times = pd.Index(times)
    if len(times) < 3:
        return
    with warnings.catch_warnings():  # adding a non-fixed offset (months) to an index warns about performance
        warnings.simplefilter("ignore")
        one_step = times[1:].isin(times[:-1] + increment(freq))
    if one_step.mean() < 0.5:
        what = "step" if isinstance(freq, int) else "frequency"
        raise RnnkitError(
            f"the steps of {label} in {source} are not {freq} apart, the {what} the model was trained on; "
            "give the data at that frequency."
        )


def infer_frequency(times_list: list[pd.Series], source: str) -> Freq:
    """The grid step shared by all series: pandas' inference for dates, else the most common spacing (allowing
    gaps) where every series' times lie on a grid of it from their first."""
    steps_index = is_integer_dtype(times_list[0])
    if not steps_index:
        for times in times_list:
            if len(times) >= 3:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pandas 3 warns that a later version returns an offset
                    inferred = pd.infer_freq(pd.DatetimeIndex(times))
                if inferred:
                    return to_offset(inferred).freqstr
    spacings = np.concatenate([np.diff(ordinal(t)) for t in times_list])
    if len(spacings) == 0:
        raise RnnkitError(f"{source} has a single time step; a series needs many steps to forecast.")
    values, counts = np.unique(spacings, return_counts=True)
    most = int(values[np.argmax(counts)])
    if steps_index:
        # modulo, not a grid: a stray time far off (a typo) would make a grid of billions of steps
        if all(((ordinal(t) - int(t.iloc[0])) % most == 0).all() for t in times_list):
            return most
        raise RnnkitError(
            f"the steps of {source} are not on a regular grid (the most common step is {most}); "
            "number the rows so that steps are a multiple of one step apart."
        )
    step = pd.Timedelta(most, unit="ns")
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
            return offset.freqstr
    raise RnnkitError(
        f"the timestamps of {source} are not on a regular grid (the most common step is {step}); "
        "resample the data to a regular frequency."
    )


def grid(first, last, freq: Freq | pd.DateOffset) -> pd.Index:
    """Every time of the grid from ``first`` to ``last`` (inclusive, when on it)."""
    if isinstance(freq, int):
        return pd.RangeIndex(first, last + 1, freq)  # lazy: its length costs nothing
    return pd.date_range(first, last, freq=to_offset(freq))


def steps_after(last, count: int, freq: Freq) -> pd.Index:
    """The ``count`` times of the grid right after ``last``."""
    if isinstance(freq, int):
        return pd.Index(last + freq * np.arange(1, count + 1, dtype=np.int64))
    return pd.date_range(last, periods=count + 1, freq=to_offset(freq))[1:]


def nominal_step(offset: pd.DateOffset) -> pd.Timedelta:
    """The length of one step (a month counts as its usual 31-day-or-less span)."""
    start = pd.Timestamp("2001-01-01")
    return (start + offset + offset) - (start + offset)


def calendar_names(freq: Freq) -> tuple[str, ...]:
    """The calendar features that vary on the grid: none for integer steps, which have no dates."""
    if isinstance(freq, int):
        return ()
    step = nominal_step(to_offset(freq))
    names = ["day_of_year_sin", "day_of_year_cos"]
    if step < WEEK:
        names += ["day_of_week_sin", "day_of_week_cos"]
    if step < DAY:
        names += ["hour_sin", "hour_cos"]
    return tuple(names)


def calendar_features(times: pd.Index, names: tuple[str, ...]) -> np.ndarray:
    r"""Known-future features from timestamps, each a point on the unit circle: ``(T, len(names))``.

    .. math:: \sin(2\pi u / P),\ \cos(2\pi u / P)

    with u the day of year (P = 365.25), day of week (P = 7) or fractional hour of day (P = 24), so that
    31 December sits next to 1 January.
    """
    if not names:  # an integer index, or calendar features off: its times need not be dates
        return np.zeros((len(times), 0), np.float32)
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
    return np.stack(columns, axis=1).astype(np.float32)
