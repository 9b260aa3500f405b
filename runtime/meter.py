"""Per-task counts for progress and metrics: executed, emitted, failed, and a sampled latency.

A run counts only when something shows the counts (the progress display, `--metrics-port`):
`Chains(meter=...)` then generates, around each call of user code, one increment of the
task's `executed` (one of `failed` when it raises) and one of `emitted` per tuple it emits;
and it times one call in LATENCY_EVERY (as Storm samples its latencies): the histogram's
count is the number of timed calls, not of calls. Without a meter the generated functions
are those of a run that counts nothing: the hot path pays nothing.

Each process keeps its own `Meter` (the core's in single and thread mode; each worker's in
process and ray mode, whose changes travel to the core in its replies, at most every
SHIP_EVERY seconds: `take()` there, `merge()` here). Thread mode's tasks each run on one
thread, so each count has one writer.
"""
import bisect
import time

LATENCY_EVERY = 16   # one call in 16 is timed (a power of two: the generated test is a mask)
SHIP_EVERY = 0.5     # seconds between two shipments of a worker's counts
ACKED, FAILED, REPLAYED, GIVEN_UP = range(4)  # Meter.spout's `what`
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, float("inf"))  # seconds: upper bounds, as Prometheus's `le`


class Meter:
    """The counts of the tasks `0 .. n - 1` (task ids) in one process."""

    def __init__(self, n):
        self.n = n
        self.executed = [0] * n
        self.emitted = [0] * n
        self.failed = [0] * n
        self.latency = [[0] * len(BUCKETS) for _ in range(n)]  # per task: count per bucket (not cumulative)
        self.latency_sum = [0.0] * n
        self.shipped = None  # what take() last returned the counts from
        self.next_ship = 0.0
        self.spouts = {}     # spout component -> [acked, failed, replayed, given up] (the core's meter)
        self.checkpoints = [0] * len(BUCKETS)  # checkpoint durations (the core's meter), per bucket
        self.checkpoint_sum = 0.0

    def checkpointed(self, seconds):
        """A checkpoint of stateful bolts' state took `seconds` (runtime/epochs.py)."""
        self.checkpoints[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.checkpoint_sum += seconds

    def spout(self, component, what, n=1):
        """A record of spout `component` was acked (0), failed (1), replayed (2) or given up (3)."""
        counts = self.spouts.get(component)
        if counts is None:
            counts = self.spouts[component] = [0, 0, 0, 0]
        counts[what] += n

    def observe(self, task, seconds):
        """A timed call of `task`."""
        self.latency[task][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[task] += seconds

    def rows(self):
        """[[task, executed, emitted, failed, latency sum, *bucket counts]] of tasks with any."""
        return [[t, self.executed[t], self.emitted[t], self.failed[t], self.latency_sum[t], *self.latency[t]]
                for t in range(self.n) if self.executed[t] or self.emitted[t]]

    def take(self, now=None, force=False):
        """A worker's counts since the last take (None if nothing changed, or, unless `force`,
        if the last was less than SHIP_EVERY ago): rows as `rows()` gives them, as differences."""
        now = time.monotonic() if now is None else now
        if now < self.next_ship and not force:
            return None
        self.next_ship = now + SHIP_EVERY
        rows = self.rows()
        before = self.shipped or {}
        self.shipped = {row[0]: row for row in rows}
        changes = []
        for row in rows:
            old = before.get(row[0])
            if old is None:
                changes.append(row)
            elif old != row:
                changes.append([row[0], *(a - b for a, b in zip(row[1:], old[1:]))])
        return changes or None

    def merge(self, rows):
        """Add a worker's `take()`."""
        for task, executed, emitted, failed, seconds, *buckets in rows:
            self.executed[task] += executed
            self.emitted[task] += emitted
            self.failed[task] += failed
            self.latency_sum[task] += seconds
            counts = self.latency[task]
            for i, n in enumerate(buckets):
                counts[i] += n
