"""Wall-clock training budgets on machines of different speed, kept over sessions.

The issues give budgets in minutes of the 80 GFLOP/s reference machine (a 2048 x 2048 fp32 product); a run
here gets them shrunk or stretched by the rate measured here: ``minutes = reference_minutes * 80 / rate``.

A run split over sessions may land on machines of different speed. ``budget.json`` in its directory keeps
the account in reference minutes: each session books what it trained at its own rate, and a resumed session
gets what is left, at its rate.
"""

from __future__ import annotations

import json
from pathlib import Path

from rnnkit.checkpoint import RESUME_FILE, load_state

REFERENCE_GFLOPS = 80.0
LEDGER = "budget.json"


def scale_for(machine: dict) -> float:
    """This machine's minutes per reference minute (``machine`` from ``machine.describe()``)."""
    return REFERENCE_GFLOPS / machine["matmul_gflops_2048"]


def budget_minutes(run: Path, reference_minutes: float, scale: float, resume: bool) -> float:
    """This machine's minutes for the run in ``run`` (the trainer's budget counts over all its sessions): all of
    it for a new run; for a resumed one, the seconds already trained plus what is left, at this rate."""
    ledger = run / LEDGER
    if not (resume and ledger.exists()):
        run.mkdir(parents=True, exist_ok=True)
        account = {"reference_minutes": reference_minutes, "reference_used": 0.0, "seconds_booked": 0.0}
        ledger.write_text(json.dumps({**account, "scale": scale}))
        return reference_minutes * scale
    # what the last session trained (booked at its rate, even if it was killed before booking it itself)
    elapsed = load_state(run / RESUME_FILE)["position"]["elapsed"]
    account = charge_budget(run, elapsed, new_scale=scale, reference_minutes=reference_minutes)
    left = max(account["reference_minutes"] - account["reference_used"], 0.0)
    return elapsed / 60 + left * scale


def charge_budget(
    run: Path, train_seconds: float, new_scale: float | None = None, reference_minutes: float | None = None
) -> dict:
    """Book the seconds trained since the last booking, at the rate of the machine that trained them; with
    ``new_scale``, the seconds from here on are this machine's (a resumed run); with ``reference_minutes``, the
    run's budget is now that (the resuming script's, which may have given part of it to something else)."""
    ledger = run / LEDGER
    account = json.loads(ledger.read_text())
    if reference_minutes is not None:
        account["reference_minutes"] = reference_minutes
    account["reference_used"] += (train_seconds - account["seconds_booked"]) / 60 / account["scale"]
    account["seconds_booked"] = train_seconds
    if new_scale is not None:
        account["scale"] = new_scale
    ledger.write_text(json.dumps(account))
    return account
