"""The allocator setting: takes effect on glibc Linux, is harmless elsewhere, and never runs on import."""

import subprocess
import sys

import rnnkit


def test_keep_freed_memory_reports_whether_it_applied():
    applied = rnnkit.keep_freed_memory()
    assert isinstance(applied, bool)
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert applied


def test_importing_rnnkit_leaves_the_allocator_alone():
    # the command-line app opts in; a plain import must not change process-wide settings
    code = (
        "import torch, unittest.mock as m\n"  # torch itself loads its libraries through ctypes: import it first
        "with m.patch('ctypes.CDLL') as c:\n    import rnnkit, rnnkit.layers, rnnkit.train\n"
        "assert not c.called"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
