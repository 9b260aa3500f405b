"""Where process mode's time goes on W, in CPU-seconds: what its own work costs, against what
issue 13's 1.4x leaves it.

    python -m benchmarks.process_cpu [--lines N] [--rounds N]

W runs in single mode (parallelism 1) and in process mode (2 workers, parallelism 2), durable
log on, each with the real counting bolt and with one whose `process` does nothing; rounds
interleaved, the least of each figure kept. CPU is the supervisor's own (getrusage SELF) and
its workers' (CHILDREN). With the counting done by nobody, what is left is the framework:
process mode's own work is its CPU less single mode's. The run is CPU-bound, so process mode's
wall time is about its CPU over the cores it keeps busy (`busy`); 1.4x single mode's speed
needs the CPU printed as `allowed`, and the line `to cut` says how much of process mode's own
work has to go. Minor page faults count the pages copied after fork (copy-on-write: the
caller's heap is shared with the workers, and each page either side writes is copied).
Figures move with the host less than wall-clock ratios do; compare runs of one host.
"""
import argparse
import os
import resource
import time

from consecution.runtime.logs import configure

from .__main__ import Count, make_lines, plain, run_consecution

TARGET = 1.4


class Idle(Count):
    """The counting bolt with its count left out: the framework's work alone."""

    def process(self, tup):
        pass


def measure(fn):
    """(wall, supervisor CPU, workers' CPU, supervisor's minor faults, workers' minor faults) of fn()."""
    s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = lambda a, b: b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime  # noqa: E731
    return wall, cpu(s0, s1), cpu(c0, c1), s1.ru_minflt - s0.ru_minflt, c1.ru_minflt - c0.ru_minflt


def main(argv=None):
    p = argparse.ArgumentParser(description="process mode's CPU on W, part by part")
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    configure("json", level="error")
    lines = make_lines(args.lines)
    expected = plain(lines)
    runs = {
        ("single", Count): lambda: run_consecution(lines, "replay", "single"),
        ("process", Count): lambda: run_consecution(lines, "replay", "process", 2),
        ("single", Idle): lambda: run_consecution(lines, "replay", "single", count=Idle),
        ("process", Idle): lambda: run_consecution(lines, "replay", "process", 2, count=Idle),
    }
    best = {}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            got = []
            figures = measure(lambda: got.append(fn()))
            if key[1] is Count:
                assert got[0] == expected, f"{key[0]}: wrong counts"
            best[key] = figures if key not in best else tuple(map(min, best[key], figures))
    print(f"workload W: {args.lines:,} lines; least of {args.rounds} interleaved rounds; {os.cpu_count()} cores")
    print("                         wall   supervisor  workers   total CPU   minor faults (supervisor/workers)")
    for (mode, count), (wall, sup, workers, faults, child_faults) in best.items():
        name = f"{mode}, {'count' if count is Count else 'no count'}"
        print(f"  {name:<20} {wall:6.3f} s   {sup:6.3f}    {workers:6.3f}    {sup + workers:6.3f}     "
              f"{faults:,} / {child_faults:,}")
    single_wall = best[("single", Count)][0]
    wall, sup, workers = best[("process", Count)][:3]
    total = sup + workers
    busy = total / (wall * os.cpu_count())
    own = sum(best[("process", Idle)][1:3]) - sum(best[("single", Idle)][1:3])
    allowed = os.cpu_count() * busy * single_wall / TARGET
    print(f"process mode / single mode: {single_wall / wall:.2f}x (target >= {TARGET})")
    print(f"process mode's own work (its CPU less single mode's, with no count): {own:.3f} CPU-s")
    print(f"cores busy in process mode: {busy:.0%}; CPU allowed for {TARGET}x: {allowed:.3f} against "
          f"{total:.3f}; to cut: {max(0.0, total - allowed):.3f} CPU-s")


if __name__ == "__main__":
    main()
