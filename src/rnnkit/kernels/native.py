"""The native (C++) time loops, JIT-compiled once with ``torch.utils.cpp_extension`` and cached.

The first use builds ``csrc/*.cpp`` (about a minute on 2 cores) into torch's extension cache
(``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``); later processes load the cached library in
milliseconds, and an edited source is rebuilt automatically. When the build is impossible (no compiler, no
ninja) or ``RNNKIT_NO_NATIVE=1`` is set, :func:`load` returns ``None`` and the kernels use the pure-PyTorch loops
of :mod:`rnnkit.kernels.loops`, which compute the same numbers.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import sys
import sysconfig
from pathlib import Path

logger = logging.getLogger(__name__)

CSRC = Path(__file__).parent / "csrc"
SOURCES = [CSRC / "loops.cpp", CSRC / "layer_norm_lstm.cpp", CSRC / "step.cpp"]
# -ffast-math with -fopenmp-simd lets gcc vectorise the gate loops (fp64 exp through glibc libmvec); results stay
# within 1e-5. But not -ffinite-math-only: assuming no NaN, gcc turned the gates' clamps and ReLU into min/max
# instructions that drop one, so a NaN input or weight gave finite outputs and gradients (torch's are NaN) and a
# diverged model ran on unnoticed. __FAST_MATH__, which gcc then leaves undefined, is what glibc's headers declare
# libmvec's vector exp under: defined again, fp64 keeps it (exp's argument is clamped to its range) and the
# headers see what they saw before. The same speed as before at fp32 and fp64 (0.96-1.02x, RNN, GRU, LSTM and
# layer-norm LSTM forward+backward at (64, 50, 64, 128), (32, 24, 1, 25), (8, 24, 1, 25), (1, 1000, 32, 64)).
# -fopenmp: at::parallel_for is a header template whose OpenMP region exists only where _OPENMP is defined;
# without it every parallel_for here ran on one thread. Compile-only: the link leaves the GOMP_* symbols to
# the OpenMP runtime libtorch_cpu already loaded, so there is one thread pool, sized by torch.set_num_threads.
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-D__FAST_MATH__", "-fopenmp-simd"]
if platform.system() == "Linux":  # gcc; Apple's clang has no -fopenmp (its build then runs serial loops)
    FLAGS.append("-fopenmp")
if platform.machine() in ("x86_64", "AMD64"):
    # gcc's tuning for some AMD cores prefers 128-bit vectors, and then the gate loops call libmvec's 4-wide
    # expf/tanhf; asking for 256 bits gives the AVX2 8-wide ones (no effect where AVX2 is missing)
    FLAGS.append("-mprefer-vector-width=256")


def disabled() -> bool:
    """True when the user asked for the pure-PyTorch loops with ``RNNKIT_NO_NATIVE=1``."""
    return os.environ.get("RNNKIT_NO_NATIVE", "") not in ("", "0")


@functools.cache
def _build():
    # torch finds ninja on PATH; the pip-installed one lives next to this interpreter
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    try:
        from torch.utils.cpp_extension import load as load_extension

        name = _name()
        return load_extension(name, _stable_sources(name), extra_cflags=FLAGS, verbose=False)
    except Exception as error:
        logger.warning("rnnkit: native loops unavailable (%s); using the pure-PyTorch loops.", error)
        return None


def _name() -> str:
    """Module name with a digest of every source, header and flag: torch only watches the listed sources. The
    torch and Python include folders are in it too: torch writes them into the build command, so each checkout's
    own ``.venv`` (``make install``) sharing one build folder rebuilt it whenever another venv had built last."""
    digest = hashlib.sha256(" ".join([*FLAGS, *_build_paths()]).encode())
    for path in sorted(CSRC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return f"rnnkit_loops_{digest.hexdigest()[:12]}"


def _build_paths() -> list[str]:
    """The folders torch's build command names besides the sources: torch's headers and libraries, Python's."""
    from torch.utils.cpp_extension import include_paths, library_paths

    return [*include_paths(), *library_paths(), sysconfig.get_paths()["include"]]


def _stable_sources(name: str) -> list[str]:
    """Copies of the sources in a folder named by their digest. Every checkout (worktrees, fresh clones)
    then builds from the same paths; with each checkout's own paths, ninja sees a changed command and
    rebuilds (a minute of both cores) whenever another checkout built last."""
    cache = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    folder = cache / "rnnkit_sources" / name
    if not folder.is_dir():
        staging = folder.with_name(f"{name}.{os.getpid()}")
        shutil.copytree(CSRC, staging, dirs_exist_ok=True)
        try:
            staging.replace(folder)  # published whole, never half-copied
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process published it first
    return [str(folder / path.name) for path in SOURCES]


def load():
    """The compiled loops module, or ``None`` (disabled or unbuildable)."""
    return None if disabled() else _build()
