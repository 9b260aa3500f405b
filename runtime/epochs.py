"""When a completed tree's record leaves the log: at once, or with the checkpoint of its epoch.

The core hands every completed and every failed tree to its *completion*, one of:

`Release` (no stateful bolt, or reliability "none"): a completed tree's record is released at
once and its spout's `ack` called; a failed one goes to the retries (replay or dead letter).

`Epochs` (stateful bolts: exactly-once state). A tree that completes is not released at once;
it joins the epoch. At the end of an epoch, when no tree is in flight, the stateful tasks hand
over what changed in their state, and one log transaction writes those changes and releases
every tree of the epoch (with the spout positions and new records that are due): a tree's
records leave the log exactly when its effects enter the checkpoint. A tree that fails ends its
epoch with a rollback instead: once nothing is in flight, every stateful task returns to the
last checkpoint, the failed records are replayed (or given up) as usual and the epoch's
completed ones are started again at once (their attempt count unchanged). While an epoch ends
(the "barrier") no new tree starts. An epoch ends as soon as nothing is in flight and EPOCH_MIN
has passed (fewer checkpoints: a key changed a thousand times in an epoch is written once), or,
under constant load, the barrier is raised after `checkpoint_interval` seconds and the epoch
ends when the trees in flight are done. A checkpoint that finds a value msgpack cannot keep (a
container changed in place: `state["seen"].append({1, 2})`) takes nothing and rolls the epoch
back; its records then run one per epoch, and the one whose epoch is refused fails like any
tree (replayed, then given up with the error naming the key): the run goes on.

Both offer: `admits()` (may new trees start), `completed(record)`, `failed(...)`, `tick(now)`
and `quiet()` (True when they did something: the core loops again), `settled()` (nothing
completed waits for a checkpoint, nothing failed for a rollback), `after_finish()` (a bolt's
finish ran: make what it did durable) and `worker_lost()` (a worker process died: the records
whose completion it lost, to run again).
"""

import collections
import time

from consecution.storage import CodecError
from consecution.storage.record import record_of

EPOCH_MIN = 0.05  # seconds an epoch lasts at least, unless the input ends


class Release:
    """Trees complete one by one: released at once, failures to the retries."""

    def __init__(self, core):
        self.core = core

    def admits(self):
        return True

    def completed(self, record):
        core = self.core
        core.log.release(record.seq)
        core._acked(record)

    def completed_all(self, seqs, holders):
        """`completed` of the records `seqs` (those one frame of acks completed), each held by
        its Record or its Run (`holders`; runtime/trees.py)."""
        core = self.core
        core.log.release_all(seqs)
        core._acked_all(seqs, holders)

    def failed(self, record, error, traceback, component, task_id):
        self.core.retries.failed(record, error, traceback, component, task_id)

    def tick(self, now):
        return False

    def quiet(self):
        return False

    def flushing(self):
        return False

    def settled(self):
        return True

    def after_finish(self):
        pass

    def worker_lost(self):
        return []


class Epochs:
    """Trees complete in epochs, with the state of the stateful tasks (see the module docstring)."""

    def __init__(self, core, stateful, named_outputs):
        self.core = core
        self.stateful = stateful          # task id -> stateful bolt task
        self.named_outputs = named_outputs
        self.done = []                    # records whose trees completed since the last checkpoint
        self.failures = []                # failures since then, handled at the rollback
        self.started = core.now
        self.barrier = None               # None, "checkpoint" or "rollback": no new trees until quiet
        self.barrier_flushed = False
        self.alone = collections.deque()  # records to run one per epoch (after an unkeepable change)
        self.alone_running = False

    def admits(self):
        return self.barrier is None and not self.alone and not self.alone_running

    def completed(self, record):
        self.done.append(record)  # released with the checkpoint that holds its effects

    def completed_all(self, seqs, holders):
        self.done.extend(map(record_of, seqs, holders))

    def failed(self, record, error, traceback, component, task_id):
        self.failures.append((record, error, traceback, component, task_id))
        self._raise("rollback")

    def worker_lost(self):
        """A worker's state since the last checkpoint is gone: the epoch is rolled back, and
        the records it completed are handed back to run again (the recovery's)."""
        self._raise("rollback")
        done, self.done = self.done, []
        self.core.result.rolled_back += len(done)
        return done

    def settled(self):
        return not self.done and not self.failures and self.barrier is None and not self.alone \
            and not self.alone_running

    def _raise(self, barrier):
        self.barrier, self.barrier_flushed = barrier, False

    def tick(self, now):
        """End the epoch when nothing is in flight and it is due; raise the barrier when it is
        overdue. True if it ended."""
        core = self.core
        if self.alone or self.alone_running:  # one record per epoch, each ended at once
            if core.trees or core.executor.busy():
                return False
            if self.done or self.barrier:
                self._end()
            elif self.alone:
                self.alone_running = True
                core._start(self.alone.popleft())
            else:
                self.alone_running = False
            return True
        if self.barrier is None:
            interval = core.checkpoint_interval
            if not self.done or now - self.started < min(EPOCH_MIN, interval):
                return False
            if core.trees or core.executor.busy():
                if now - self.started >= interval:
                    self._raise("checkpoint")
                return False
        elif core.trees or core.executor.busy():
            return False
        self._end()
        return True

    def quiet(self):
        """Nothing in flight: end the epoch if it holds anything. True if it did."""
        if (self.done or self.barrier) and not self.core.trees:
            self._end()
            return True
        return False

    def flushing(self):
        """The barrier waits on trees that only held inputs keep open (chunk): True the first
        time, for the core to ask the bolts that hold inputs to emit them."""
        if self.barrier is not None and self.core.trees and not self.barrier_flushed:
            self.barrier_flushed = True
            return True
        return False

    def after_finish(self):
        self.checkpoint(finishing=True)  # nothing in flight: finish's state, its mark and its tuples together

    def _end(self):
        if self.barrier == "rollback":
            self._rollback()
        else:
            self.checkpoint()

    def checkpoint(self, finishing=False):
        """Nothing in flight: write the stateful tasks' changes and release the epoch's trees
        in one transaction, then tell their spouts. A change msgpack cannot keep (a value
        changed in place) is refused before any is taken: see `_unkeepable` (in the finish
        phase, where no tree made it, the CodecError ends the run)."""
        core = self.core
        began = time.perf_counter()
        try:
            changes = core.executor.checkpoint(self.stateful)
        except CodecError as exc:
            if finishing:
                raise
            self._unkeepable(str(exc))
            return
        done, self.done = self.done, []
        self.barrier = None
        for task_id, rows in changes:
            if not self.named_outputs.take(task_id, rows):
                task = core.tasks[task_id]
                core.log.put_state(task.component, task.context.task_index, rows)
        self.named_outputs.trim_if_due(core.now)
        release = core.log.release
        for record in done:
            release(record.seq)
        core._commit()
        if core.meter is not None:
            core.meter.checkpointed(time.perf_counter() - began)
        self.started = core.now
        for record in done:
            core._acked(record)

    def _unkeepable(self, error):
        """The epoch's state holds a value msgpack cannot keep: it is rolled back. A record
        alone in its epoch made it: its tree failed (replayed, or given up with the error).
        Otherwise the epoch's records run again one per epoch, to find which."""
        core = self.core
        done, self.done = self.done, []
        self.barrier = None
        core.executor.rollback(self.stateful)
        core.result.rolled_back += len(done)
        self.started = core.now
        core.logger.warning("state.unkeepable", topology=core.topology.name, error=error, records=len(done))
        if len(done) == 1:
            core.result.failed += 1
            core.retries.failed(done[0], error, None, None, None)
        else:
            self.alone.extend(done)

    def _rollback(self):
        """Every stateful task returns to the last checkpoint; the failed records are replayed
        or given up, the completed ones start again."""
        core = self.core
        self.barrier = None
        core.executor.rollback(self.stateful)
        done, self.done = self.done, []
        failures, self.failures = self.failures, []
        core.result.rolled_back += len(done)
        core.logger.warning("state.rolled_back", topology=core.topology.name, failed=len(failures),
                            restarted=len(done))
        self.started = core.now
        for args in failures:
            core.retries.failed(*args)
        for record in done:
            core._start(record)
