"""The repository's layout: nothing at the root shadows the installed package, the parts
import one way (the contracts in pyproject.toml), and importing one part loads no other."""
import os
import shutil
import subprocess
import sys

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from support import ROOT


@pytest.mark.parametrize("args", [
    ["-c", "import consecution.runtime, consecution.spouts"],
    ["-m", "consecution", "--help"],
    ["-m", "benchmarks", "--help"],
    ["-m", "benchmarks.bare_process", "--help"],
    ["-m", "benchmarks.process_cpu", "--help"],
    ["-m", "benchmarks.ab", "--help"],
])
def test_the_root_imports_the_installed_package(args):
    # Python puts the current folder first on sys.path: a folder there named `consecution`
    # (one without the parts, which install from their own folders) would win.
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_process_cpu_benchmark_runs_w_through_both_modes_and_prints_what_to_cut():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.process_cpu", "--lines", "3000", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # it checks both modes' counts against a plain loop
    out = proc.stdout
    for line in ("single, count", "process, count", "single, no count", "process, no count",
                 "process mode's own work", "to cut:"):
        assert line in out, out


def test_the_ab_benchmark_runs_w_on_a_commit_and_on_this_checkout_and_leaves_no_worktree():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ab", "HEAD", "--rounds", "1", "--lines", "2000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "HEAD " in proc.stdout and "this checkout " in proc.stdout and "this checkout / HEAD: wall" in proc.stdout
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "consecution-ab-" not in worktrees


def loaded_after(statement):
    """The consecution modules and third-party I/O libraries that a fresh interpreter has
    loaded after running `statement`."""
    code = (f"{statement}\nimport sys\n"
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('consecution', 'lmdb', 'msgpack', 'multiprocess', 'structlog', 'croniter')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_importing_the_acker_loads_neither_the_runtime_nor_lmdb():
    loaded = loaded_after("import consecution.acker")
    assert not {m for m in loaded if m.startswith(("consecution.runtime", "lmdb"))}, loaded
    # nor any other part, nor any third-party library: the acker is pure
    assert loaded <= {"consecution", "consecution.errors", "consecution.acker",
                      "consecution.acker.tracker"}, loaded


@pytest.mark.parametrize("part, others", [
    ("topology", ("runtime", "storage", "acker")),
    ("storage", ("runtime", "topology", "acker")),
])
def test_importing_a_part_loads_no_other_part(part, others):
    loaded = loaded_after(f"import consecution.{part}")
    assert not {m for m in loaded if m.startswith(tuple(f"consecution.{o}" for o in others))}, loaded


def test_the_public_names_load_on_first_use():
    import consecution
    import consecution.runtime
    import consecution.storage
    import consecution.topology

    assert loaded_after("import consecution") == {"consecution", "consecution.errors"}
    for name in consecution.__all__:
        value = getattr(consecution, name)
        assert any(getattr(part, name, None) is value
                   for part in (consecution.errors, consecution.topology, consecution.storage,
                                consecution.runtime)), name
        assert name in dir(consecution)
    assert "consecution.runtime" in loaded_after("from consecution import *\nassert run and Topology")
    assert "consecution.runtime" in loaded_after("import consecution\nconsecution.runtime.Scheduler")
    with pytest.raises(AttributeError):
        consecution.no_such_name


def test_the_parts_import_one_way(tmp_path):
    """`lint-imports` checks the contracts of pyproject.toml on this checkout's files, laid out
    as the wheel installs them (an editable install keeps the parts in their own folders, where
    the linter, which walks one package folder, would not find them)."""
    pyproject = os.path.join(ROOT, "pyproject.toml")
    with open(pyproject, "rb") as f:
        package_dir = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(package_dir.items()):  # consecution before its parts
        shutil.copytree(os.path.join(ROOT, folder), tmp_path.joinpath(*package.split(".")),
                        ignore=shutil.ignore_patterns("__pycache__"))
    lint_imports = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or "lint-imports"
    # lint-imports puts its working directory first on sys.path: the copy is what it reads
    proc = subprocess.run([lint_imports, "--config", pyproject, "--no-cache"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout
