"""The repository's layout: nothing at the root shadows the installed package."""
import subprocess
import sys

import pytest

from support import ROOT


@pytest.mark.parametrize("args", [
    ["-c", "import consecution.runtime, consecution.spouts"],
    ["-m", "consecution", "--help"],
    ["-m", "benchmarks", "--help"],
])
def test_the_root_imports_the_installed_package(args):
    # Python puts the current folder first on sys.path: a folder there named `consecution`
    # (one without the parts, which install from their own folders) would win.
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
