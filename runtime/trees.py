"""What happens to a record: its tree started, completed, failed, replayed or given up.

A record is one entry of the replay log (a spout tuple, or a tuple a bolt emitted with no input
to anchor to). `_start` routes it from the task it came from and starts its tree in the acker;
a tree whose XOR returns to 0 is `_complete` (the log entry released, the spout's `ack`
called); a failed or timed-out tree is replayed after a backoff or `_give_up` (a dead letter,
the spout's `fail`, a tuple on the failure stream). The scheduler core (`core.py`) mixes this
in; it owns the state these methods use (trees, acker, log, retries, executor, result).

Stateful bolts (exactly-once state): trees complete in *epochs*. A tree that completes is not
released at once; it joins the epoch. At the end of an epoch, when no tree is in flight, the
stateful tasks hand over what changed in their state, and one log transaction writes those
changes and releases every tree of the epoch (with the spout positions and new records that
are due): a tree's records leave the log exactly when its effects enter the checkpoint. A tree
that fails ends its epoch with a rollback instead: once nothing is in flight, every stateful
task returns to the last checkpoint, the failed records are replayed (or given up) as usual and
the epoch's completed ones are started again at once (their attempt count unchanged). While an
epoch ends (the "barrier") no new tree starts. An epoch ends as soon as nothing is in flight
and EPOCH_MIN has passed (fewer checkpoints: a key changed a thousand times in an epoch is
written once), or, under constant load, the barrier is raised after `checkpoint_interval`
seconds and the epoch ends when the trees in flight are done.
"""
import heapq
import traceback as tb_module

from consecution.acker import new_id
from consecution.errors import ConsecutionError
from consecution.storage import DeadLetter, Record
from consecution.topology import FAILURE_FIELDS, FAILURES, Tuple

from .tasks import SpoutTask

COMMIT_BATCH = 512       # spout records per log commit, at most
COMMIT_INTERVAL = 0.005  # seconds a spout record may wait for its commit, at most
TRIM_EVERY = 1.0         # seconds between two looks at the consumers of named outputs
EPOCH_MIN = 0.05         # seconds an epoch lasts at least (stateful bolts), unless the input ends


class TreeLifecycle:
    """The record and tree methods of the scheduler core (see the module docstring)."""

    def _origin(self, record):
        """The task a record came from (its component's task of the same index)."""
        try:
            return self.origins[record.spout, record.task]
        except KeyError:
            tasks = self.tasks_by_component[record.spout]
            task = self.origins[record.spout, record.task] = self.tasks[tasks[record.task % len(tasks)]]
            return task

    def _commit(self):
        """Commit the log, then start the trees of the records that commit made durable."""
        self.log.commit()
        self.last_commit = self.clock()
        unlogged, self.unlogged = self.unlogged, []
        self.held_back.clear()
        if any(task.has_logged for task in self.spout_tasks):
            self._tell_logged(unlogged)
        self._start_all(unlogged)

    def _tell_logged(self, records):
        """Call `logged(msg_ids)` on each spout task that defines it, with its records of this commit."""
        msg_ids = {}
        for record in records:
            task = self._origin(record)
            if isinstance(task, SpoutTask) and task.has_logged:
                msg_ids.setdefault(task, []).append(record.msg_id if record.msg_id is not None else record.root)
        for task, ids in msg_ids.items():
            self.call_user(task, "logged", ids)

    def _start(self, record):
        self._start_all((record,))

    def _start_all(self, records):
        """Route each record's tuple from its origin task and start its tree: fused subscribers
        run it here, depth first (single mode), the others get it queued with an id. A routing
        error (a route or custom grouping function that raises) fails the record. One loop for
        a commit's records: the usual case costs no call but the steps' own."""
        plans, trees, acker, now = self.start_plans, self.trees, self.acker, self.now
        send = self.executor.send
        release = None if self.epochs else self.log.release
        completed = 0
        for record in records:
            key = (record.spout, record.task, record.stream)
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = self._start_plan(self._origin(record), record.stream)
            task, fields, runs = plan
            values = record.values
            if runs is None:  # a grouping that looks at the values
                try:
                    targets = task.routing.targets(record.stream, values, task.task_id)
                except Exception as exc:
                    self._record_failed(record, f"{type(exc).__name__}: {exc}", tb_module.format_exc(),
                                        task.component, task.task_id)
                    continue
                runs = self._runs(task, record.stream, targets)
            if runs:
                tree, xor = new_id(), 0
                roots = (tree,)
                trees[tree] = record  # before any fused processing, which may fail the tree
                for target, run in runs:
                    if run is not None:
                        xor ^= run(values, roots, 0)
                        continue
                    i = new_id()
                    xor ^= i
                    send(target, values, record.stream, record.spout, task.task_id, i, roots, fields)
                if tree not in trees:
                    continue  # failed while it was processed
                if xor and not acker.init(tree, xor, task.task_id, now):
                    continue
                del trees[tree]
            if release is None or task.__class__ is SpoutTask and task.has_ack:
                self._complete(record)
                continue
            release(record.root)  # _complete, inlined
            completed += 1
        self.result.completed += completed

    def _start_plan(self, task, stream):
        """(task, fields, [(target, generated run or None)]) for tuples that `task` emits on
        `stream` with no input; None in place of the list when the grouping looks at the values."""
        targets = task.routing.fixed.get(stream)
        return task, task.streams[stream], None if targets is None else self._runs(task, stream, targets)

    def _runs(self, task, stream, targets):
        fused = self.fused
        return [(t, self.chains.run(t, task.component, task.task_id, stream)
                 if fused is not None and fused[t] is not None else None) for t in targets]

    def _complete(self, record):
        if self.epochs:
            self.epoch_done.append(record)  # released with the checkpoint that holds its effects
            return
        self.log.release(record.root)
        self._acked(record)

    def _acked(self, record):
        self.result.completed += 1
        task = self._origin(record)
        if isinstance(task, SpoutTask) and task.has_ack:
            self.call_user(task, "ack", record.msg_id if record.msg_id is not None else record.root)

    # -- epochs (stateful bolts) -------------------------------------------------------------

    def _epoch_point(self, now):
        """End the epoch when nothing is in flight and it is due; raise the barrier when it is
        overdue. True if it ended (the caller loops again)."""
        if self.barrier is None:
            if not self.epoch_done or now - self.epoch_started < min(EPOCH_MIN, self.checkpoint_interval):
                return False
            if self.trees or self.executor.busy():
                if now - self.epoch_started >= self.checkpoint_interval:
                    self.barrier, self.barrier_flushed = "checkpoint", False
                return False
        elif self.trees or self.executor.busy():
            return False
        self._end_epoch()
        return True

    def _end_epoch(self):
        if self.barrier == "rollback":
            self._rollback()
        else:
            self._checkpoint()

    def _checkpoint(self):
        """Nothing in flight: write the stateful tasks' changes and release the epoch's trees
        in one transaction, then tell their spouts."""
        done, self.epoch_done = self.epoch_done, []
        self.barrier = None
        for task_id, rows in self.executor.checkpoint(self.stateful):
            output = self.output_writers.get(task_id)
            if output is not None:
                self.log.put_outbox(output, rows)
                continue
            task = self.tasks[task_id]
            self.log.put_state(task.component, task.context.task_index, rows)
        if self.output_writers and self.log.durable and self.now - self.last_trim >= TRIM_EVERY:
            self._trim_outputs()
        release = self.log.release
        for record in done:
            release(record.root)
        self._commit()
        self.epoch_started = self.now
        for record in done:
            self._acked(record)

    def _trim_outputs(self):
        """Trim each output up to what every registered consumer has committed (with no consumer
        registered, everything is kept)."""
        self.last_trim = self.now
        self.log.clear_stale_readers()
        for output in self.output_writers.values():
            positions = self.log.consumers(output)
            if positions:
                self.log.trim_outbox(output, min(positions.values()))

    def _rollback(self):
        """Nothing in flight and a tree of this epoch failed: every stateful task returns to the
        last checkpoint; the failed records are replayed or given up, the completed ones start
        again."""
        self.barrier = None
        self.executor.rollback(self.stateful)
        done, self.epoch_done = self.epoch_done, []
        failed, self.epoch_failed = self.epoch_failed, []
        self.result.rolled_back += len(done)
        self.logger.warning("state.rolled_back", topology=self.topology.name, failed=len(failed),
                            restarted=len(done))
        self.epoch_started = self.now
        for args in failed:
            self._retry_or_give_up(*args)
        for record in done:
            self._start(record)

    def _tree_failed(self, tree, error, traceback, component, task_id):
        self._record_failed(self.trees.pop(tree), error, traceback, component, task_id)

    def _record_failed(self, record, error, traceback, component, task_id):
        """Replay the record after a backoff, or give it up (at the epoch's rollback, when
        there are stateful bolts)."""
        self.result.failed += 1
        if self.epochs:
            self.epoch_failed.append((record, error, traceback, component, task_id))
            self.barrier, self.barrier_flushed = "rollback", False
            return
        self._retry_or_give_up(record, error, traceback, component, task_id)

    def _retry_or_give_up(self, record, error, traceback, component, task_id):
        delay = self.policy.delay(record.attempts)
        if delay is not None:
            self.logger.warning("tuple.failed", topology=self.topology.name, component=component, task=task_id,
                        root=record.root, attempt=record.attempts, retry_in=round(delay, 3), error=error)
            self._seq += 1
            heapq.heappush(self.retries, (self.now + delay, self._seq, record))
            self.waiting[self._origin(record).task_id] += 1
            return
        self._give_up(record, error, traceback, component, task_id)

    def _give_up(self, record, error, traceback, component, task_id):
        letter = DeadLetter(record, component, task_id, error, traceback, self.wall())
        self.log.dead_letter(letter)
        self.result.given_up += 1
        if len(self.result.failures) < 1000:
            self.result.failures.append(letter)
        self.logger.error("tuple.given_up", topology=self.topology.name, component=component, task=task_id,
                  root=record.root, spout=record.spout, attempts=record.attempts, error=error)
        task = self._origin(record)
        if isinstance(task, SpoutTask):
            self.call_user(task, "fail", record.msg_id if record.msg_id is not None else record.root, error)
        self._emit_failure((record.root, record.spout, list(record.values), component, task_id, error,
                            traceback, record.attempts))

    def _untracked_error(self, error, traceback, component, task_id, tup):
        self.result.errors += 1
        self.logger.error("tuple.error", topology=self.topology.name, component=component, task=task_id,
                  error=error, tracked=False)
        if self.tracking:
            return  # an unanchored tuple: nothing to replay, the error is counted
        letter = DeadLetter(Record(0, tup.source, tup.task, tup.stream, tup.values, None, 1, self.wall()),
                            component, task_id, error, traceback, self.wall())
        if len(self.result.failures) < 1000:
            self.result.failures.append(letter)
        self._emit_failure((None, tup.source, list(tup.values), component, task_id, error, traceback, 1))

    def _emit_failure(self, values):
        for target in self.failure_routing.targets("default", values):
            self.executor.submit(target, Tuple(values, "default", FAILURES, None, None, (), FAILURE_FIELDS))

    def _replay_due(self, now):
        retries = self.retries
        while retries and retries[0][0] <= now:
            record = heapq.heappop(retries)[2]
            self.waiting[self._origin(record).task_id] -= 1
            record.attempts += 1
            self.result.replayed += 1
            self.log.append(record)
            self._start(record)

    def _expire(self, now):
        for tree in self.acker.expire(now, self.message_timeout):
            self._tree_failed(tree, f"timed out: the tree was not complete within {self.message_timeout:g} s",
                              None, None, None)

    def fail_all_pending(self, error):
        """Fail every pending tree at once (a worker process died): each is replayed. With
        stateful bolts the epoch is rolled back too (the worker's state since the last
        checkpoint is gone)."""
        if self.epochs:
            self.barrier, self.barrier_flushed = "rollback", False
        for tree in list(self.trees):
            self.acker.fail(tree)
            self._tree_failed(tree, error, None, None, None)

    def _recover(self):
        """Start the next pending records of an earlier run (before any new spout tuple).
        A record counts the interrupted run as an attempt, so a record that keeps crashing
        the process is given up after max_retries like any other failure."""
        batch = min(COMMIT_BATCH, self.max_pending or COMMIT_BATCH)
        for _ in range(batch):
            record = next(self.recovering, None)
            if record is None:
                self.recovering = None
                self.logger.info("run.recovered", topology=self.topology.name, replayed=self.result.recovered)
                return
            if record.spout not in self.tasks_by_component:
                raise ConsecutionError(f"pending record {record.root} comes from {record.spout!r}, "
                                       "which this topology does not have")
            self.result.recovered += 1
            if self.policy.delay(record.attempts) is None:
                self._give_up(record, f"given up: attempt {record.attempts} was in flight when an earlier "
                              "run stopped", None, None, None)
                continue
            record.attempts += 1
            self.log.append(record)
            self._start(record)

    def pending(self, task_id):
        """Records of a spout task in flight, waiting for a retry or for their commit."""
        return self.acker.pending(task_id) + self.waiting[task_id] + self.held_back[task_id]
