"""The memory benchmark at its defaults, timed: the same grid as ``rnnkit memory`` (adding, delayed recall and
sequential digits; RNN, LSTM, GRU, LayerNorm-LSTM, LayerNorm-GRU at 5,000 parameters each; lengths 50, 100,
200; one seed; two worker processes of one thread), recording the machine and its load beside the table.

Writes bench/results/memory.json (the summary table, every run, wall and CPU time, load average) and
bench/results/memory.png. ``--quick``: a tiny grid into memory-quick.json that only checks the script runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe, merge_results
from rnnkit.tasks.memory import MemoryConfig, run_benchmark, summarise
from rnnkit.tasks.memory.benchmark import format_table
from rnnkit.viz.memory import memory_plot

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny grid (a smoke test)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = MemoryConfig()
    name = "memory"
    if args.quick:
        config = replace(config, lengths=(10,), max_steps=10, eval_every=5, eval_size=32, test_size=32)
        name = "memory-quick"
    load_before = os.getloadavg()
    start = time.perf_counter()
    runs = run_benchmark(config, workers=args.workers, quiet=False)
    wall = time.perf_counter() - start
    (RESULTS / f"{name}-runs.json").write_text(json.dumps(runs) + "\n")  # first: nothing measured is lost
    rows = summarise(runs)
    table = format_table(rows)
    print(table)
    memory_plot(rows, RESULTS / f"{name}.png")
    for run in runs:
        run.pop("history")
    result = {
        "machine": {**describe(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "config": {**asdict(config), "workers": args.workers},
        "wall_seconds": round(wall, 1),
        "cpu_seconds_of_runs": round(sum(r["cpu_seconds"] for r in runs), 1),
        "table": table,
        "summary": rows,
        "runs": runs,
    }
    path = RESULTS / f"{name}.json"
    path.unlink(missing_ok=True)  # one run, one file: no figures left over from another grid
    merge_results(path, result)
    (RESULTS / f"{name}-runs.json").unlink()
    print(f"{wall:.0f} s wall, {result['cpu_seconds_of_runs']:.0f} s CPU in the runs")


if __name__ == "__main__":
    main()
