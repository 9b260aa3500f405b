"""W's CPU and wall time on this checkout against another commit, runs alternating.

    python -m benchmarks.ab REF [--rounds N] [--mode process|single] [--lines N]

On this 2-core host one run of W moves by 3-5% from the last, more than most single changes
to the runtime are worth; two `python -m benchmarks.process_cpu` runs minutes apart cannot tell
a 2% gain from the host's mood. This command checks REF out beside this checkout (a git
worktree in a temporary folder, removed at the end), and runs W in each alternately, each run
a fresh Python process that imports its own tree's `consecution` (a package folder of links to
the tree's parts, first on PYTHONPATH), times one warm-up run and then the best of two. It
prints, per tree, the least and the median wall time and CPU (the supervisor's and its
workers'), and the median ratios of this checkout against REF: below 1 is faster. Take a
change as real when its median moves the same way in two invocations.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("topology", "acker", "storage", "runtime")

ONE_RUN = """
import resource, sys, time
from consecution.runtime.logs import configure
from benchmarks.__main__ import make_lines, run_consecution
configure("json", level="error")
mode, lines = sys.argv[1], make_lines(int(sys.argv[2]))
parallelism = 2 if mode == "process" else 1

def cpu():
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))

run_consecution(lines, "replay", mode, parallelism)
best = None
for _ in range(2):
    started, used = time.perf_counter(), cpu()
    run_consecution(lines, "replay", mode, parallelism)
    figures = (time.perf_counter() - started, cpu() - used)
    best = figures if best is None else tuple(map(min, best, figures))
print(*best)
"""


def package(tree, into):
    """A folder holding `consecution` as `tree` would install it: src/consecution, with the
    parts at the tree's root linked in (pyproject.toml's package-dir)."""
    target = os.path.join(into, "consecution")
    shutil.copytree(os.path.join(tree, "src", "consecution"), target)
    for part in PARTS:
        os.symlink(os.path.join(tree, part), os.path.join(target, part))
    return into


def run_once(tree, pythonpath, mode, lines):
    """(wall, CPU) of W in `tree`'s code: a fresh process."""
    out = subprocess.run([sys.executable, "-c", ONE_RUN, mode, str(lines)], cwd=tree, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=pythonpath))
    if out.returncode != 0:
        raise SystemExit(f"W failed in {tree}:\n{out.stderr[-3000:]}")
    wall, cpu = out.stdout.split()[-2:]
    return float(wall), float(cpu)


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main(argv=None):
    p = argparse.ArgumentParser(description="W on this checkout against a commit, alternating")
    p.add_argument("ref", help="the commit to compare against (e.g. HEAD~1, main)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--mode", choices=("process", "single"), default="process")
    p.add_argument("--lines", type=int, default=200_000)
    args = p.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="consecution-ab-")
    base = os.path.join(scratch, "tree")
    try:
        subprocess.run(["git", "worktree", "add", "--detach", "-q", base, args.ref], cwd=ROOT, check=True)
        trees = {args.ref: (base, package(base, os.path.join(scratch, "ref"))),
                 "this checkout": (ROOT, package(ROOT, os.path.join(scratch, "this")))}
        figures = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, (tree, pythonpath) in trees.items():
                figures[name].append(run_once(tree, pythonpath, args.mode, args.lines))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", base], cwd=ROOT, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"W ({args.lines:,} lines) in {args.mode} mode{' with parallelism 2' if args.mode == 'process' else ''}; "
          f"{args.rounds} alternating rounds")
    print("                   wall least  median    CPU least  median")
    for name, runs in figures.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"  {name:<15} {min(walls):9.3f} {median(walls):7.3f}    {min(cpus):9.3f} {median(cpus):7.3f}")
    ref, this = figures[args.ref], figures["this checkout"]
    print(f"this checkout / {args.ref}: wall {median(w for w, _ in this) / median(w for w, _ in ref):.3f}, "
          f"CPU {median(c for _, c in this) / median(c for _, c in ref):.3f} (medians; below 1 is faster)")


if __name__ == "__main__":
    main()
