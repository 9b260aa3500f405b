"""What exactly-once state costs: a word count whose counting bolt keeps its counts in a plain
dict (lost at a crash) against the same bolt with `stateful = True` (checkpointed with the log).

    python -m benchmarks.state [--lines N]

Both runs use the durable log (reliability "replay" with a state directory), in single,
thread and process mode, best of 3; the ratio is stateful against plain in the same mode.
"""
import argparse
import shutil
import tempfile
import time

from consecution import Bolt, Topology
from consecution.runtime import Scheduler
from consecution.runtime.logs import configure

from .durable_log import make_lines, split


class PlainCount(Bolt):
    def prepare(self, context):
        self.counts = {}

    def process(self, tup):
        word = tup[0]
        self.counts[word] = self.counts.get(word, 0) + 1


class StatefulCount(Bolt):
    stateful = True

    def process(self, tup):
        word = tup[0]
        self.state[word] = self.state.get(word, 0) + 1


def topology(lines, counter):
    t = Topology("bench-state")
    t.spout("lines", lines)
    t.bolt("split", split, parallelism=2).shuffle_grouping("lines")
    t.bolt("count", counter(), parallelism=2).fields_grouping("split", "value")
    return t


def timed(lines, counter, mode):
    state = tempfile.mkdtemp(prefix="consecution-bench-")
    try:
        scheduler = Scheduler(topology(lines, counter), mode=mode, workers=2, state_dir=state)
        started = time.perf_counter()
        result = scheduler.run()
        assert result.completed == len(lines), result
        return time.perf_counter() - started
    finally:
        shutil.rmtree(state)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=40_000)
    args = parser.parse_args(argv)
    configure("json", level="warning")
    lines = make_lines(args.lines)
    words = args.lines * 10
    print(f"word count of {args.lines:,} lines ({words:,} words), durable log, best of 3")
    for mode in ("single", "thread", "process"):
        plain = min(timed(lines, PlainCount, mode) for _ in range(3))
        stateful = min(timed(lines, StatefulCount, mode) for _ in range(3))
        print(f"  {mode:8s} plain dict {words / plain / 1e3:7.0f}k words/s   stateful "
              f"{words / stateful / 1e3:7.0f}k words/s   stateful costs {stateful / plain - 1:+.0%}")


if __name__ == "__main__":
    main()
