"""What machine a benchmark ran on: CPU model, cores, torch threads, and its fp32 matrix-product rate.

Budgets in the issues are set for an 80 GFLOP/s machine (AMD EPYC, 2 cores); recording the rate beside every
figure lets a reader scale timings between machines.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_features() -> dict:
    """Vendor, family and model numbers and the widest vector extension, from /proc/cpuinfo: the model name alone
    ("AMD EPYC") does not tell a Zen 3 (AVX2) from a Zen 4 (AVX-512), whose kernels take different paths."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {}
    flags = set(fields.get("flags", "").split())
    vectors = next((name for name in ("avx512f", "avx2", "avx") if name in flags), "other")
    return {
        "vendor": fields.get("vendor_id", "unknown"),
        "cpu_family": fields.get("cpu family", "unknown"),
        "cpu_model_number": fields.get("model", "unknown"),
        "widest_vectors": vectors,
    }


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 rate of a ``size x size`` matrix product, in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def describe() -> dict:
    return {
        "cpu": cpu_model(),
        **cpu_features(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_gflops_2048": round(matmul_gflops(), 1),
    }


def merge_results(path: Path, results: dict, *, at: tuple[str, ...] = ()) -> None:
    """Update the JSON at ``path`` with ``results`` (under the nested key path ``at``, the top by default): a
    bench's parts, run separately (some take long, some in parallel processes), share one file, and sections
    not run this time keep their earlier figures. The file is read just before writing and replaced atomically."""
    path.parent.mkdir(exist_ok=True)
    merged = json.loads(path.read_text()) if path.exists() else {}
    node = merged
    for part in at:
        node = node.setdefault(part, {})
    node.update(results)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(merged, indent=2) + "\n")
    temporary.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    print(describe())
