import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def cli(*args, cwd, env=None, timeout=60, input=None):
    """Run `consecution ARGS` as a real subprocess (the installed package, not the source
    folder: cwd is a temporary directory)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "consecution", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def run_cli(tmp_path):
    def run(*args, **kwargs):
        kwargs.setdefault("cwd", tmp_path)
        return cli(*args, **kwargs)
    return run


@pytest.fixture
def topology_file(tmp_path):
    """Write a topology module into the test's folder and return its path."""
    def write(source, name="topo.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return str(path)
    return write
