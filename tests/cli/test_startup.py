"""Every command, --help and one-line errors included, starts without loading what only some of them use."""

import subprocess
import sys

# scipy.signal (audio resampling) took 0.85 s to load, scipy.stats (one p-value) 0.3 s, matplotlib 0.5 s
DEFERRED = ("scipy.signal", "scipy.stats", "matplotlib", "sklearn", "onnx")


def test_the_cli_imports_none_of_the_heavy_optional_modules():
    probe = "import sys, rnnkit.cli; print(' '.join(m for m in sys.argv[1:] if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe, *DEFERRED], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []
