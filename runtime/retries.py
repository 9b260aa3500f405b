"""Failed records: replayed after a backoff, or given up as dead letters.

`Backoff.delay(attempts)` is the wait before attempt `attempts + 1`: `backoff * 2 ** (attempts
- 1)`, capped at `cap` seconds, times a random factor in [0.5, 1) so that records failed
together do not all come back at once ("equal jitter"); None means give up. "confirm" and
"track" use `NoRetry`: a failed tree is given up at once.

`Retries` keeps the records waiting for their replay (a heap by due time) and gives up the
others: the record becomes a dead letter in the log (with the error, its traceback, the
component and task), the spout's `fail` is called, and a tuple goes out on the failure stream
(`Topology.on_failure`).
"""
import collections
import heapq
import random

from consecution.storage import DeadLetter, Record
from consecution.topology import FAILURE_FIELDS, FAILURES, Tuple

from .meter import GIVEN_UP, REPLAYED
from .tasks import SpoutTask

KEEP_FAILURES = 1000  # dead letters a RunResult lists, at most


class Backoff:
    def __init__(self, max_retries, backoff, cap=60.0, rand=random.random):
        self.max_retries = max_retries
        self.backoff = backoff
        self.cap = cap
        self.rand = rand

    def delay(self, attempts):
        """Seconds to wait before replaying a record that has had `attempts` attempts, or None."""
        if attempts > self.max_retries:
            return None
        base = min(self.cap, self.backoff * 2 ** (attempts - 1))
        return base * (0.5 + self.rand() / 2)


class NoRetry:
    """"confirm" and "track": a failed tree is given up at once."""

    max_retries = 0

    def delay(self, attempts):
        return None


class Retries:
    """The failed records of one run: waiting for a replay, or given up."""

    def __init__(self, core, policy):
        self.core = core
        self.policy = policy
        self.heap = []                             # (due, seq, Record)
        self.waiting = collections.Counter()       # spout task id -> records waiting for a replay
        self._seq = 0

    def __len__(self):
        return len(self.heap)

    def next_due(self):
        """When the next replay is due (None when none waits)."""
        return self.heap[0][0] if self.heap else None

    def failed(self, record, error, traceback, component, task_id):
        """A record's tree failed: replay it after a backoff, or give it up."""
        core = self.core
        delay = self.policy.delay(record.attempts)
        if delay is None:
            self.give_up(record, error, traceback, component, task_id)
            return
        core.logger.warning("tuple.failed", topology=core.topology.name, component=component, task=task_id,
                            seq=record.seq, attempt=record.attempts, retry_in=round(delay, 3), error=error)
        self._seq += 1
        heapq.heappush(self.heap, (core.now + delay, self._seq, record))
        self.waiting[core._origin(record).task_id] += 1

    def replay_due(self, now):
        """Start again every record whose replay is due, its attempts raised (in the log too)."""
        core, heap = self.core, self.heap
        while heap and heap[0][0] <= now:
            record = heapq.heappop(heap)[2]
            self.waiting[core._origin(record).task_id] -= 1
            record.attempts += 1
            core.result.replayed += 1
            if core.meter is not None:
                core.meter.spout(record.spout, REPLAYED)
            core.log.append(record)
            core._start(record)

    def give_up(self, record, error, traceback, component, task_id):
        core = self.core
        letter = DeadLetter(record, component, task_id, error, traceback, core.wall())
        core.log.dead_letter(letter)
        core.result.given_up += 1
        if core.meter is not None:
            core.meter.spout(record.spout, GIVEN_UP)
        if len(core.result.failures) < KEEP_FAILURES:
            core.result.failures.append(letter)
        core.logger.error("tuple.given_up", topology=core.topology.name, component=component, task=task_id,
                          seq=record.seq, spout=record.spout, attempts=record.attempts, error=error)
        task = core._origin(record)
        if isinstance(task, SpoutTask):
            core.call_user(task, "fail", record.msg_id if record.msg_id is not None else record.seq, error)
        self._emit_failure((record.seq, record.spout, list(record.values), component, task_id, error,
                            traceback, record.attempts))

    def untracked_error(self, error, traceback, component, task_id, tup):
        """A bolt failed a tuple that belongs to no tree (reliability "none", or an unanchored
        emit): counted and logged; with "none" it also goes out on the failure stream."""
        core = self.core
        core.result.errors += 1
        core.logger.error("tuple.error", topology=core.topology.name, component=component, task=task_id,
                          error=error, tracked=False)
        if core.tracking:
            return  # an unanchored tuple: nothing to replay, the error is counted
        letter = DeadLetter(Record(0, tup.source, tup.task, tup.stream, tup.values, None, 1, core.wall()),
                            component, task_id, error, traceback, core.wall())
        if len(core.result.failures) < KEEP_FAILURES:
            core.result.failures.append(letter)
        self._emit_failure((None, tup.source, list(tup.values), component, task_id, error, traceback, 1))

    def _emit_failure(self, values):
        core = self.core
        for target in core.failure_routing.targets("default", values):
            core.executor.submit(target, Tuple(values, "default", FAILURES, None, None, (), FAILURE_FIELDS))
