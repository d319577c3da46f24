"""Figures, drawn headless with matplotlib (PNG or SVG by the file's suffix)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.errors import RnnkitError
from rnnkit.viz.figure import literal, new_figure, save


def training_curves(log_csv: Path | str, out: Path | str, *, title: str = "") -> Path:
    """Train and validation loss against optimizer steps, from a run's ``log.csv``."""
    log_csv, out = Path(log_csv), Path(out)
    if not log_csv.is_file():
        raise RnnkitError(f"{log_csv} does not exist; train a model first.")
    log = pd.read_csv(log_csv)
    if log.empty:
        raise RnnkitError(f"{log_csv} has no rows yet; wait for the first validation.")
    figure, axis = new_figure(6, 4)
    axis.plot(log["step"], log["train_loss"], marker="o", label="train (mean since the last validation)")
    valid_columns = [c for c in log.columns if c == "valid_loss"]
    for column in valid_columns:
        axis.plot(log["step"], log[column], marker="o", label="validation")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss (nats per unit)")
    axis.set_title(literal(title) or "training curves")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save(figure, out, dpi=120)
    return out


def forecast_plot(
    history_times: pd.Index,
    history: np.ndarray,
    forecast_times: pd.Index,
    quantiles: np.ndarray,
    levels: tuple[float, ...],
    out: Path | str,
    *,
    actual: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """History, the median forecast and the band between the outermost quantiles.

    ``history`` (T,) at ``history_times``; ``quantiles`` (H, Q) at ``forecast_times``, sorted like ``levels``
    (which hold 0.5); ``actual`` (H,), if given, is drawn over the forecast to judge it. The times are dates, or
    integer steps (then the x-axis is labelled with whole steps).
    """
    out = Path(out)
    levels = list(levels)
    figure, axis = new_figure(8, 4)
    axis.plot(history_times, history, color="black", linewidth=1, label="history")
    low, high = quantiles[:, 0], quantiles[:, -1]
    axis.fill_between(
        forecast_times, low, high, color="tab:blue", alpha=0.25, label=f"{levels[-1] - levels[0]:.0%} interval"
    )
    axis.plot(forecast_times, quantiles[:, levels.index(0.5)], color="tab:blue", marker=".", label="median forecast")
    if actual is not None:
        axis.plot(forecast_times, actual, color="tab:orange", marker=".", linewidth=1, label="actual")
    axis.set_title(literal(title) or "forecast")
    axis.grid(alpha=0.3)
    axis.legend(loc="best")
    if pd.api.types.is_integer_dtype(pd.Index(history_times)):
        from matplotlib.ticker import MaxNLocator  # here: new_figure loaded matplotlib, not the import of this file

        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # no tick at step 2.5
        axis.set_xlabel("step")
    else:
        figure.autofmt_xdate()
    figure.tight_layout()
    save(figure, out, dpi=120)
    return out


def attention_heatmap(
    weights: np.ndarray, source_tokens: list[str], target_tokens: list[str], out: Path | str, *, title: str = ""
) -> Path:
    """A translation's attention: a row per output token, a column per source token, ``weights`` (T, S)."""
    out = Path(out)
    weights = np.asarray(weights)
    figure, axis = new_figure(1.0 + 0.45 * len(source_tokens), 1.0 + 0.4 * len(target_tokens))
    axis.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(source_tokens)), [literal(token) for token in source_tokens], rotation=90)
    axis.set_yticks(range(len(target_tokens)), [literal(token) for token in target_tokens])
    axis.set_xlabel("source")
    axis.set_ylabel("translation")
    axis.set_title(literal(title) or "attention")
    figure.tight_layout()
    save(figure, out, dpi=120)
    return out
