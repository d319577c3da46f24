"""Figures, drawn headless with matplotlib (PNG or SVG by the file's suffix)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen needed: figures go straight to files
import matplotlib.pyplot as plt
import pandas as pd

from rnnkit.errors import RnnkitError


def training_curves(log_csv: Path | str, out: Path | str, *, title: str = "") -> Path:
    """Train and validation loss against optimizer steps, from a run's ``log.csv``."""
    log_csv, out = Path(log_csv), Path(out)
    if not log_csv.is_file():
        raise RnnkitError(f"{log_csv} does not exist; train a model first.")
    log = pd.read_csv(log_csv)
    if log.empty:
        raise RnnkitError(f"{log_csv} has no rows yet; wait for the first validation.")
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(log["step"], log["train_loss"], marker="o", label="train (mean since the last validation)")
    valid_columns = [c for c in log.columns if c == "valid_loss"]
    for column in valid_columns:
        axis.plot(log["step"], log[column], marker="o", label="validation")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss (nats per unit)")
    axis.set_title(title or "training curves")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
