"""What the durable log costs, and how fast a restart with a big backlog starts replaying.

    python -m benchmarks.durable_log [--lines N] [--pending N]

1. Word count (lines -> split -> count), single mode, best of 3: tuples/s with reliability
   "none", with in-memory acking ("replay" without a state directory) and with the durable
   LMDB log ("replay" with one); the log's cost is the last against the second.
   Target: at most 15%.
2. A state directory holding N pending records (default 1,000,000): seconds from the start of
   the run to the first replayed tuple reaching a bolt. Target: within 2 s.
"""
import argparse
import collections
import random
import shutil
import tempfile
import time

from consecution import Bolt, Topology
from consecution.runtime import Scheduler
from consecution.runtime.logs import configure
from consecution.storage import DurableLog, Record


def make_lines(n, seed=0):
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choice("abcdefghij") for _ in range(6)).capitalize() for _ in range(1000)]
    return [" ".join(rng.choice(vocabulary) for _ in range(10)) for _ in range(n)]


def split(line):
    yield from line.split()


class Count(Bolt):
    def prepare(self, context):
        self.counts = collections.Counter()

    def process(self, tup):
        self.counts[tup[0]] += 1


def wordcount(lines, reliability):
    t = Topology("bench", reliability=reliability)
    t.spout("lines", lines)
    t.bolt("split", split).shuffle_grouping("lines")
    t.bolt("count", Count()).shuffle_grouping("split")
    return t


def best_of(n, fn):
    return min(fn() for _ in range(n))


def timed_run(lines, reliability, durable):
    state = tempfile.mkdtemp(prefix="consecution-bench-") if durable else None
    try:
        scheduler = Scheduler(wordcount(lines, reliability), state_dir=state)
        started = time.perf_counter()
        scheduler.run()
        return time.perf_counter() - started
    finally:
        if state:
            shutil.rmtree(state)


def first_replay(pending):
    state = tempfile.mkdtemp(prefix="consecution-bench-")
    try:
        t = Topology("backlog")
        t.spout("numbers", [])
        first = []

        class Stop(Bolt):
            def process(self, tup):
                if not first:
                    first.append(time.perf_counter())
                    scheduler.stop()

        t.bolt("stop", Stop()).shuffle_grouping("numbers")
        log = DurableLog(state)
        log.check_topology(t.name, t.fingerprint(), t.shape())
        now = time.time()
        for i in range(pending):
            log.append(Record(log.new_root(), "numbers", 0, "default", (i,), None, 1, now))
            if log.buffered >= 100_000:
                log.commit()
        log.close()
        scheduler = Scheduler(t, state_dir=state, grace=0)
        started = time.perf_counter()
        scheduler.run()
        return first[0] - started
    finally:
        shutil.rmtree(state)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=60_000)
    p.add_argument("--pending", type=int, default=1_000_000)
    args = p.parse_args(argv)
    configure("json", level="error")
    lines = make_lines(args.lines)
    tuples = args.lines * 11  # each line, and its ten words
    none = best_of(3, lambda: timed_run(lines, "none", False))
    memory = best_of(3, lambda: timed_run(lines, "replay", False))
    durable = best_of(3, lambda: timed_run(lines, "replay", True))
    print(f"word count, {args.lines} lines, {tuples} tuples, best of 3, single mode")
    print(f"  reliability none          {tuples / none:12,.0f} tuples/s")
    print(f"  replay, in-memory acking  {tuples / memory:12,.0f} tuples/s")
    print(f"  replay, durable LMDB log  {tuples / durable:12,.0f} tuples/s")
    print(f"  cost of the log against in-memory acking: {durable / memory - 1:+.1%} (target <= +15%)")
    print(f"  cost of acking against none:              {memory / none - 1:+.1%}")
    seconds = first_replay(args.pending)
    print(f"restart with {args.pending:,} pending records: first replayed tuple after {seconds:.3f} s "
          f"(target <= 2 s)")


if __name__ == "__main__":
    main()
