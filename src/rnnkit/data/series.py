r"""Time series from a CSV or Parquet file: checked, on a regular time grid, with calendar features.

A file holds one series (a time column and value columns) or several in long format (plus an id column).
Columns play one of three roles:

* **targets** — what is forecast (one or more numeric columns);
* **past covariates** — observed alongside the targets, unknown in the future (precipitation, wind);
* **future covariates** — known ahead (a holiday flag, a price plan). Calendar features are made from the
  timestamps and are always known: :math:`\sin, \cos(2\pi\,\text{day of year}/365.25)`, day of week
  (steps shorter than a week), hour of day (steps shorter than a day).

The time column holds dates, or integer steps (``0, 1, 2, ...``, ``1990, 1991, ...``; a series on a step index
has no calendar features): :mod:`rnnkit.data.series_times` says how the two are told apart and how the grid's
frequency, or step, is found.

The rows after a series' last target are its known future, and each must give every future covariate:
:func:`rnnkit.tasks.forecast_training.predict` reads the horizon's covariates from them; training ignores them.
A model keeps its training file's grid: at predict time a file at another frequency or step, or with dates where
it was trained on steps (or the other way round), is refused.

Times with a zone (``2021-03-15 00:00-04:00``, or a zoned Parquet column) lose it: steps of a day or longer keep
their local clock (a daylight-saving change would otherwise move midnight by an hour), shorter steps go by UTC
(the local clock skips or repeats an hour there); forecasts are timed on that clock.

Every problem with the file is an :class:`RnnkitError` in one line: a missing file, an empty file, a header
without rows, ragged rows, unknown columns, unparsable times, text in a numeric column, duplicated or
unsorted timestamps, gaps in the grid and empty values (``fill=True`` interpolates the last two).

Interpolation reads both neighbours of a gap, so a gap right before a backtest origin borrows from the first
step after it; a file whose test part has gaps is better filled causally (carried forward) by hand.

Shapes: T time steps of one series; C_y targets, C_p past covariates, C_f future covariates (file + calendar).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.data.series_sources import resolve
from rnnkit.data.series_times import (
    TIME_INDEXES,
    Freq,
    calendar_features,
    calendar_names,
    check_order,
    check_spacing,
    check_trained_kind,
    freq_kind,
    grid,
    grid_name,
    infer_frequency,
    parse_times,
    steps_after,
)
from rnnkit.errors import RnnkitError, first_line

PARQUET_SUFFIXES = (".parquet", ".pq")
# a gap's remedy, true at training and at predict time alike (a trained model keeps its fill setting)
FILL_HINT = "fill them in the file, or train with --fill to interpolate them (its model then fills its inputs too)."


@dataclass(frozen=True)
class SeriesSpec:
    """Which column plays which role; saved with a trained model so ``predict`` reads files the same way."""

    time_col: str
    targets: tuple[str, ...]
    covariates: tuple[str, ...] = ()  # past-observed
    future_covariates: tuple[str, ...] = ()  # known ahead; calendar features come on top
    id_col: str | None = None  # long format: one series per distinct id
    fill: bool = False  # interpolate gaps and empty values instead of refusing them
    calendar: bool = True  # add calendar features made from the timestamps (none on integer steps)
    time_index: str = "auto"  # "dates", "steps" (integers), or "auto": see rnnkit.data.series_times

    def __post_init__(self) -> None:
        if self.time_index not in TIME_INDEXES:
            raise RnnkitError(f"unknown time index {self.time_index!r}; select from 'auto', 'dates' or 'steps'.")
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "covariates", tuple(self.covariates))
        object.__setattr__(self, "future_covariates", tuple(self.future_covariates))
        if not self.targets:
            raise RnnkitError("name at least one target column (--target).")
        named = [self.time_col, *self.targets, *self.covariates, *self.future_covariates]
        if self.id_col:
            named.append(self.id_col)
        repeated = sorted({name for name in named if named.count(name) > 1})
        if repeated:
            raise RnnkitError(f"column {repeated[0]!r} is given more than one role; give each column one role.")

    @property
    def value_columns(self) -> tuple[str, ...]:
        return (*self.targets, *self.covariates, *self.future_covariates)


@dataclass
class Series:
    """One series on a regular grid: ``target`` (T, C_y), ``past`` (T, C_p), ``future`` (T + F, C_f).

    ``future`` runs ``F`` steps beyond the last target where the file gave known-future rows.
    """

    id: str
    times: pd.Index  # (T,) the observed steps: a DatetimeIndex, or int64 steps
    target: np.ndarray
    past: np.ndarray
    future: np.ndarray
    filled: int = 0  # values interpolated by fill=True

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class SeriesSet:
    """The series of one file, their shared frequency and the names of the calendar features."""

    spec: SeriesSpec
    freq: Freq  # a pandas offset alias, e.g. "D", "W-SAT", "h", "MS"; or the int step of an integer index
    series: list[Series]
    calendar: tuple[str, ...] = field(default=())

    @property
    def time_index(self) -> str:
        """``"dates"`` or ``"steps"``: how the file's time column was read."""
        return freq_kind(self.freq)

    @property
    def future_names(self) -> tuple[str, ...]:
        return (*self.spec.future_covariates, *self.calendar)

    def __len__(self) -> int:
        return len(self.series)

    def by_id(self) -> dict[str, Series]:
        return {s.id: s for s in self.series}


# --- reading the file ------------------------------------------------------------------------------------------


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV or Parquet file as a data frame, or an :class:`RnnkitError` saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path} does not exist or is not a file; check the path.")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise RnnkitError(f"reading {path} needs pyarrow; `pip install pyarrow`, or give a CSV.") from None
        except Exception as error:  # pyarrow's errors have no common base class worth naming
            raise RnnkitError(f"{path} is not a readable Parquet file ({first_line(error)}).") from None
    else:
        if path.stat().st_size == 0:
            raise RnnkitError(f"{path} is empty; give a CSV with a header line and one row per time step.")
        _check_ragged(path)
        try:
            frame = pd.read_csv(path, skipinitialspace=True, index_col=False)
        except pd.errors.EmptyDataError:
            raise RnnkitError(f"{path} is empty; give a CSV with a header line and one row per time step.") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise RnnkitError(f"{path} is not a readable CSV ({first_line(error)}).") from None
    if frame.empty:
        raise RnnkitError(f"{path} has a header ({', '.join(map(str, frame.columns))}) but no rows.")
    return frame


def _check_ragged(path: Path) -> None:
    """Refuse rows with more or fewer fields than the header (pandas would quietly pad or shift them)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        rows = csv.reader(file)
        header = next(rows, None)
        if header is None:
            return
        for row in rows:
            if row and len(row) != len(header):
                raise RnnkitError(
                    f"{path} line {rows.line_num} has {len(row)} fields but the header has {len(header)}; "
                    "fix that row (a stray comma or a missing value)."
                )


def load_series(path: Path | str, spec: SeriesSpec, *, freq: Freq | None = None) -> SeriesSet:
    """Read ``path`` (or a built-in series by name, :mod:`rnnkit.data.series_sources`) and check it against
    ``spec`` (see :func:`series_from_frame`)."""
    path = resolve(path)
    return series_from_frame(read_table(path), spec, source=str(path), freq=freq)


def load_series_as_trained(path: Path | str, saved: dict) -> SeriesSet:
    """Read ``path`` as a trained model's training file was read: ``saved`` is its run config's ``series``
    (the spec's fields, the grid's frequency or int step and the calendar features' names)."""
    fields = {k: v for k, v in saved.items() if k not in ("freq", "calendar")}
    # the run config keeps the calendar features' names where the spec has its on/off switch
    spec = SeriesSpec(**fields, calendar=bool(saved["calendar"]))
    series_set = load_series(path, spec, freq=saved["freq"])
    if list(series_set.calendar) != list(saved["calendar"]):  # a guard: the same grid gives the same features
        raise RnnkitError(
            f"the model was trained with calendar features {saved['calendar']}, {path} gives {series_set.calendar}."
        )
    return series_set


def series_from_frame(
    frame: pd.DataFrame, spec: SeriesSpec, *, source: str = "the data", freq: Freq | None = None
) -> SeriesSet:
    """Check a data frame and cut it into series on a regular grid.

    ``freq`` forces the grid (a trained model's, at predict time), and with it the kind of index (a str: dates,
    an int: steps); otherwise both come from the time column (``spec.time_index``) and its spacing.
    """
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    for name in (spec.time_col, *spec.value_columns, *([spec.id_col] if spec.id_col else [])):
        if name not in columns:
            raise RnnkitError(f"column {name!r} is not in {source}; its columns are {', '.join(columns)}.")
    time_index = spec.time_index
    if freq is not None:
        check_trained_kind(frame[spec.time_col], freq, spec.time_col, source)
        time_index = freq_kind(freq)
    times = parse_times(frame[spec.time_col], spec.time_col, source, time_index=time_index)
    frame = frame.assign(**{spec.time_col: times})
    for name in spec.value_columns:
        frame[name] = _numeric(frame[name], name, frame[spec.time_col], source)
    if spec.id_col:
        empty = frame[spec.id_col].isna().to_numpy()
        if empty.any():  # groupby would drop those rows without a word, and the series would end early
            row = int(np.flatnonzero(empty)[0])
            raise RnnkitError(
                f"id column {spec.id_col!r} of {source} is empty at row {row + 1} ({frame[spec.time_col].iloc[row]}); "
                "give every row the id of its series."
            )
        groups = [(str(key), group) for key, group in frame.groupby(spec.id_col, sort=False)]
    else:
        groups = [("0", frame)]
    for key, group in groups:
        check_order(group[spec.time_col], _label(key, spec), source)
    if freq is not None:
        for key, group in groups:
            check_spacing(group[spec.time_col], freq, _label(key, spec), source)
    else:
        freq = infer_frequency([g[spec.time_col] for _, g in groups], source)
    # calendar on is the default: on integer steps there is no calendar, so none apply (as hour features do not
    # on daily steps)
    calendar = calendar_names(freq) if spec.calendar else ()
    series = [_one_series(key, group, spec, freq, calendar, source) for key, group in groups]
    return SeriesSet(spec=spec, freq=freq, series=series, calendar=calendar)


def _numeric(column: pd.Series, name: str, times: pd.Series, source: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    text = values.isna() & column.notna()
    if text.any():
        row = int(np.flatnonzero(text.to_numpy())[0])
        raise RnnkitError(
            f"column {name!r} of {source} holds text ({column.iloc[row]!r} at {times.iloc[row]}); "
            "targets and covariates must be numbers."
        )
    # "inf" parses as a number, and one infinite value turns the scaler and every loss into NaN
    infinite = np.isinf(values.to_numpy(dtype="float64"))
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise RnnkitError(
            f"column {name!r} of {source} holds an infinite value ({float(values.iloc[row])} at {times.iloc[row]}); "
            "give finite numbers, or leave the cell empty and train with --fill."
        )
    return values.astype("float64")


def _label(key: str, spec: SeriesSpec) -> str:
    return f"series {key!r}" if spec.id_col else "the series"


def _one_series(
    key: str, group: pd.DataFrame, spec: SeriesSpec, freq: Freq, calendar: tuple[str, ...], source: str
) -> Series:
    label = _label(key, spec)
    frame = group.set_index(spec.time_col)[list(spec.value_columns)]
    known_future = _known_future_rows(frame, spec, label, source)
    observed, ahead = frame.iloc[: len(frame) - known_future], frame.iloc[len(frame) - known_future :]
    if len(observed) == 0:
        raise RnnkitError(f"{label} of {source} has no target values; give it some history.")
    full = grid(observed.index[0], observed.index[-1], freq)
    if len(full) > 100 * len(observed):  # a stray time far off (a typo, 100000 for 1000) would not be a gap
        raise RnnkitError(
            f"{label} of {source} has {len(observed)} rows but spans {len(full)} steps of its {grid_name(freq)} grid "
            f"(from {observed.index[0]} to {observed.index[-1]}); check its time column for a stray time."
        )
    off_grid = observed.index.difference(full)
    if len(off_grid):
        raise RnnkitError(
            f"time {off_grid[0]} of {label} in {source} is off the {grid_name(freq)} grid; "
            "resample the data to a regular frequency."
        )
    missing = full.difference(observed.index)
    empty = observed.isna()
    filled = int(len(missing) * observed.shape[1] + empty.to_numpy().sum())
    if len(missing) and not spec.fill:
        raise RnnkitError(
            f"{label} of {source} misses {len(missing)} time step(s) of its {grid_name(freq)} grid (first at "
            f"{missing[0]}); {FILL_HINT}"
        )
    if empty.to_numpy().any() and not spec.fill:
        column = empty.any().idxmax()
        when = empty.index[empty[column].to_numpy()][0]
        count = int(empty[column].sum())
        raise RnnkitError(
            f"column {column!r} of {label} in {source} has {count} empty value(s) (first at {when}); " + FILL_HINT
        )
    if filled:
        # linear in time between neighbours (the index's values: dates or steps); the ends take their nearest
        # value (no look-ahead beyond the file)
        observed = observed.reindex(full).interpolate(method="index", limit_direction="both")
        if observed.isna().to_numpy().any():
            column = observed.isna().any().idxmax()
            raise RnnkitError(f"column {column!r} of {label} in {source} is entirely empty; drop it or give values.")
    if len(ahead):
        expected = steps_after(observed.index[-1], len(ahead), freq)
        if not ahead.index.equals(expected):
            raise RnnkitError(
                f"the known-future rows of {label} in {source} are not the steps right after its last target; "
                "give one row per step without gaps."
            )
    times = _index(observed.index)
    all_times = times.append(_index(ahead.index))
    future_file = pd.concat([observed, ahead])[list(spec.future_covariates)].to_numpy(np.float32)
    future = np.concatenate([future_file, calendar_features(all_times, calendar)], axis=1)
    return Series(
        id=key,
        times=times,
        target=observed[list(spec.targets)].to_numpy(np.float32),
        past=observed[list(spec.covariates)].to_numpy(np.float32),
        future=future,
        filled=filled,
    )


def _known_future_rows(frame: pd.DataFrame, spec: SeriesSpec, label: str, source: str) -> int:
    """How many rows follow the last target: the series' known future, which must give every future covariate."""
    if not spec.future_covariates:
        return 0
    has_target = frame[list(spec.targets)].notna().any(axis=1).to_numpy()
    count = len(frame) - (int(np.flatnonzero(has_target)[-1]) + 1 if has_target.any() else 0)
    ahead = frame.iloc[len(frame) - count :][list(spec.future_covariates)]
    empty = ahead.isna().any(axis=1).to_numpy()
    if empty.any():  # neither observed (no target) nor known: filling it would invent targets up to it
        raise RnnkitError(
            f"the known-future row at {ahead.index[empty][0]} of {label} in {source} leaves "
            f"{', '.join(spec.future_covariates)} empty; every row after the last target must give them all."
        )
    return count


def _index(index: pd.Index) -> pd.Index:
    """A series' times as one kind of index: a DatetimeIndex, or int64 steps (not a RangeIndex after a fill)."""
    if pd.api.types.is_integer_dtype(index):
        return pd.Index(np.asarray(index, dtype=np.int64))
    return pd.DatetimeIndex(index)


def future_times(series: Series, freq: Freq, horizon: int) -> pd.Index:
    """The ``horizon`` times right after the series' last observed step: timestamps, or the next int steps."""
    return steps_after(series.times[-1], horizon, freq)


def check_length(series_set: SeriesSet, needed: int, why: str) -> None:
    """Refuse series shorter than ``needed`` steps, naming the shortest and the reason it must be longer."""
    shortest = min(series_set.series, key=len)
    if len(shortest) < needed:
        who = f"series {shortest.id!r}" if series_set.spec.id_col else "the series"
        raise RnnkitError(f"{who} has {len(shortest)} time steps but needs at least {needed} ({why}).")
