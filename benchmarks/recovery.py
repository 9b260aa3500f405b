"""What crash attribution costs a restart: suspects run in trials, bisected, against a plain
replay of the same records.

    python -m benchmarks.recovery [--pending 512,4096] [--modes single,process]

A state directory holds N pending records, left as a clean stop leaves them (replayed at once)
or as a crash leaves them (suspects: no culprit among them, so every trial passes: trials of
N/2, N/4, ... 1 and the rest, each with nothing else in flight). Printed: seconds from the
start of the run to its end (the replay done, the spout empty), best of 3, and the ratio.
"""
import argparse
import shutil
import tempfile
import time

from consecution import Topology
from consecution.runtime import Scheduler
from consecution.runtime.logs import configure
from consecution.storage import DurableLog, Record

from .durable_log import best_of


def work(n):
    return sum(range(n % 200))  # a little CPU per record, as a parse would


def topology():
    t = Topology("recovery")
    t.spout("numbers", [])
    t.bolt("work", work, parallelism=2).shuffle_grouping("numbers")
    return t


def timed(pending, crashed, mode):
    state = tempfile.mkdtemp(prefix="consecution-bench-")
    try:
        t = topology()
        log = DurableLog(state)
        log.check_topology(t.name, t.fingerprint(), t.shape())
        now = time.time()
        for i in range(pending):
            log.append(Record(log.new_root(), "numbers", 0, "default", (i,), None, 1, now))
        log.put_meta("run", "open" if crashed else "closed")
        log.close()
        scheduler = Scheduler(t, state_dir=state, mode=mode, workers=2)
        started = time.perf_counter()
        result = scheduler.run()
        assert result.recovered >= pending and result.pending == 0
        return time.perf_counter() - started
    finally:
        shutil.rmtree(state)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pending", default="512,4096")
    p.add_argument("--modes", default="single,process")
    args = p.parse_args(argv)
    configure("json", level="error")
    print("restart with N pending records, best of 3: after a clean stop | after a crash (suspects)")
    for mode in args.modes.split(","):
        for n in map(int, args.pending.split(",")):
            clean, crashed = (best_of(3, lambda: timed(n, crash, mode)) for crash in (False, True))
            print(f"  {mode:8} N={n:6,}  clean {clean:7.3f} s   crash {crashed:7.3f} s   "
                  f"cost of isolation {crashed - clean:+.3f} s ({crashed / clean:.2f}x)")


if __name__ == "__main__":
    main()
