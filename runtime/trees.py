"""What happens to a record: its tree started, completed, failed or replayed.

A record is one entry of the replay log (a spout tuple, or a tuple a bolt emitted with no input
to anchor to); a spout's batch is appended as one `Run` of records, whose `Record`s are made
only when one is needed alone (a failure, an epoch, a spout's `ack`): `trees` maps a tree to
its Record or to its Run (`record_of`), and a record group of one Run (process and ray mode)
to its `RunGroup` (runtime/groups.py), one entry for all its records. `_start_all` routes the records of a commit from the
tasks they came from (`_start_batch` the usual commit, all from one origin, from its columns
in one generated loop):
fused subscribers run them right there (runtime/chains.py), the others get them queued with a
fresh id, and each record's tree starts in the acker. A tree whose XOR returns to 0, or that
was done when its start returned, is complete; a failed or timed-out one is failed. The
*completion* (runtime/epochs.py) decides what either means: released at once, or with the
checkpoint of an epoch when there are stateful bolts; `Retries` (runtime/retries.py) replays
failed records after a backoff or gives them up. The scheduler core (`core.py`) mixes this in;
it owns the state these methods use (trees, acker, log, executor, result).
"""
import random
import traceback as tb_module
from itertools import repeat

from consecution.acker import new_id
from consecution.storage import Record, Run
from consecution.storage.record import record_of, records_of
from consecution.topology.tuples import SEQ_SHIFT

from .commits import START_MASK, columns, even_roots, tree_roots
from .delivery import is_function_obj
from .epochs import Release
from .groups import RunGroup
from .meter import ACKED, FAILED
from .tasks import SpoutTask

getrandbits = random.getrandbits  # the source of new_id (acker/tracker.py)
class TreeLifecycle:
    """The record and tree methods of the scheduler core (see the module docstring).

    A tree's root is `record.seq << SEQ_SHIFT | starts`, `starts` counting the trees this run
    started (from a random point, modulo 2**SEQ_SHIFT): new at every start of a record, so acks
    of an earlier attempt never count for a later one (a root comes back only after 16.7 million
    other starts), and the record's seq can be read back from it (`Tuple.seqs`), the same on
    every replay. Never 0 (a seq is at least 1). It holds seqs below 2**40 (a state directory's
    first 10**12 records); the ids of the edges, whose XOR tracks a tree, stay random."""

    starts = 0

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
        entries, origin = self.unlogged.take()
        self.held_back.clear()
        if any(task.has_logged for task in self.spout_tasks):
            self._tell_logged(entries)
        if not (origin and self._start_batch(entries, origin)):
            self._start_all(records_of(entries))

    def _tell_logged(self, entries):
        """Call `logged(msg_ids)` on each spout task that defines it, with its records of this commit."""
        msg_ids = {}
        for entry in entries:
            task = self._origin(entry)
            if isinstance(task, SpoutTask) and task.has_logged:
                ids = msg_ids.setdefault(task, [])
                if entry.__class__ is Run:
                    ids += entry.seqs
                else:
                    ids.append(entry.msg_id if entry.msg_id is not None else entry.seq)
        for task, ids in msg_ids.items():
            self.call_user(task, "logged", ids)

    def _start_batch(self, entries, origin):
        """The usual commit, as one call: its records (`entries`, Records and Runs) all came
        from `origin` (component, task index, stream), which has one subscriber task. When it
        runs here and each record is released when its tree is done, the generated loop
        Chains.run_records does for each record what `_start_all`'s fast path does; when it
        runs in a worker, the records go as one group (`_queue_batch`). Either way from the
        records' columns, no `Record` made for a Run's. False, having done nothing, for any
        other case."""
        task, _, runs = self.start_plan(self._origin(entries[0]), origin[2])
        if runs is None or len(runs) != 1:
            return False
        if runs[0][1] is None:
            return self._queue_batch(entries, task, runs[0][0], origin[2])
        if self.completion.__class__ is not Release or task.__class__ is SpoutTask and task.has_ack:
            return False
        released = []
        run = self.chains.run_records(runs[0][0], task.component, task.task_id, origin[2])
        self.starts = run(*columns(entries), (), self.starts, self.now, released, self.trees, self.acker.init)
        if released:
            self.log.release_all(released)
            self.result.completed += len(released)
            if self.meter is not None:
                self.meter.spout(origin[0], ACKED, len(released))
        return True

    def _queue_batch(self, entries, task, target, stream):
        """A commit's records, all for one task in a worker (process and ray mode): they go to
        the executor as two columns (values, roots), not one delivery each; for a plain
        function as one record group (groups.py), for a Bolt each tree starting with its root
        as its tuple's id. False where the executor takes deliveries one by one."""
        send_records = getattr(self.executor, "send_records", None)
        if send_records is None:
            return False
        seqs, values, holders = columns(entries)
        starts = self.starts
        self.starts = starts + len(values)
        roots = tree_roots(seqs, starts + 1)
        grouped = self._function_subscriber(task, stream)
        first = even_roots(seqs, starts + 1) if grouped and len(entries) == 1 else None
        if first is not None:  # the usual commit, a spout's batch: one entry in `trees` (groups.RunGroup)
            group, entry = self.groups.start_run(entries[0], first, task.task_id, self.now)
            self.trees[group] = entry
        elif grouped:  # tracked as one group, each member in `trees` (groups.py)
            self.trees.update(zip(roots, holders))
            group = self.groups.start(roots, task.task_id, self.now)
        else:  # a Bolt's inputs are acked one by one (by hand, maybe): a tree each
            self.trees.update(zip(roots, holders))
            group = 0
            self.acker.init_own(roots, task.task_id, self.now)
        send_records(target, values, stream, task.component, task.task_id, roots, group)
        return True

    def _function_subscriber(self, task, stream):
        """Whether what `task` emits on `stream` goes to one plain function's tasks."""
        outlets = task.routing.outlets[stream]
        return len(outlets) == 1 and is_function_obj(self.topology.components[outlets[0].bolt].obj)

    def _start(self, record):
        self._start_all((record,))

    def _start_all(self, records):
        """Route each record's tuple from its origin task and start its tree: fused subscribers
        run it here, depth first (single mode), the others get it queued with an id. A routing
        error (a route or custom grouping function that raises) fails the record. One loop for
        a commit's records: the usual case costs no call but the steps' own."""
        plans, trees, acker, now = self.start_plans, self.trees, self.acker, self.now
        send = self.executor.send
        release = self.completion.__class__ is Release
        released = []
        starts = self.starts
        last = None  # (spout, task, stream) of the record before: a commit's records mostly share it
        for record in records:
            key = (record.spout, record.task, record.stream)
            if key != last:
                plan = plans.get(key)
                if plan is None:
                    plan = self.start_plan(self._origin(record), record.stream)
                task, fields, runs = plan
                acks = task.__class__ is SpoutTask and task.has_ack
                last = key
                # the usual case: one subscriber, run here, and the record released when done
                fast = release and not acks and runs is not None and len(runs) == 1 and runs[0][1] is not None
                if fast:
                    run = runs[0][1]
            else:
                runs = plan[2]
            if fast:  # what the general path below does, for this case only
                starts += 1
                tree = record.seq << SEQ_SHIFT | starts & START_MASK
                roots = (tree,)
                trees[tree] = record
                xor = run(record.values, roots, 0)
                if tree in trees and (not xor or acker.init(tree, xor, task.task_id, now)):
                    del trees[tree]
                    released.append(record.seq)
                continue
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
                starts += 1
                tree, xor = record.seq << SEQ_SHIFT | starts & START_MASK, 0  # never 0: a seq is >= 1
                roots = (tree,)
                trees[tree] = record  # before any fused processing, which may fail the tree
                for target, run in runs:
                    if run is not None:
                        xor ^= run(values, roots, 0)
                        continue
                    i = getrandbits(64) or new_id()
                    xor ^= i
                    send(target, values, record.stream, record.spout, task.task_id, i, roots, fields)
                if tree not in trees:
                    continue  # failed while it was processed
                if xor and not acker.init(tree, xor, task.task_id, now):
                    continue
                del trees[tree]
            if not release or acks:
                self._complete(record)
                continue
            released.append(record.seq)  # Release.completed, for the whole commit at once
        self.starts = starts
        self._released(records, released)

    def _released(self, records, released):
        """Release the seqs `released` of `records`, whose trees are done (Release.completed,
        for a commit's records at once)."""
        if released:
            self.log.release_all(released)
            self.result.completed += len(released)
            if self.meter is not None:
                self._meter_released(records, set(released))

    def start_plan(self, task, stream):
        """(task, fields, [(target, generated run or None)]) for tuples that `task` emits on
        `stream` with no input; None in place of the list when the grouping looks at the values."""
        key = (task.component, task.context.task_index, stream)
        plan = self.start_plans.get(key)
        if plan is None:
            targets = task.routing.fixed.get(stream)
            plan = self.start_plans[key] = (task, task.streams[stream],
                                            None if targets is None else self._runs(task, stream, targets))
        return plan

    def _runs(self, task, stream, targets):
        """[(target, its generated run, or None when it is queued)] for what `task` emits on
        `stream` to `targets`: made once per (task, stream, targets), as a shuffle's turns
        or a fields grouping's picks come back to the same few."""
        key = (task.task_id, stream, targets if targets.__class__ is tuple else tuple(targets))
        runs = self.target_runs.get(key)
        if runs is None:
            fused = self.fused
            runs = self.target_runs[key] = [(t, self.chains.run(t, task.component, task.task_id, stream)
                                             if fused is not None and fused[t] is not None else None)
                                            for t in targets]
        return runs

    def _complete(self, record):
        self.completion.completed(record)

    def _meter_released(self, records, seqs):
        for record in records:
            if record.seq in seqs:
                self.meter.spout(record.spout, ACKED)

    def _acked_all(self, seqs, holders):
        """`_acked` of the records of `seqs` (each held by its Record or its Run, `holders`):
        counted at once, the spout's ack called where it has one."""
        self.result.completed += len(seqs)
        if self.meter is not None:
            for holder in holders:
                self.meter.spout(holder.spout, ACKED)
        if any(task.has_ack for task in self.spout_tasks):
            for seq, holder in zip(seqs, holders):
                task = self._origin(holder)
                if isinstance(task, SpoutTask) and task.has_ack:
                    self.call_user(task, "ack", holder.msg_id if holder.msg_id is not None else seq)

    def _acked(self, record):
        self.result.completed += 1
        if self.meter is not None:
            self.meter.spout(record.spout, ACKED)
        task = self._origin(record)
        if isinstance(task, SpoutTask) and task.has_ack:
            self.call_user(task, "ack", record.msg_id if record.msg_id is not None else record.seq)

    # -- what tasks report: the core is their sink in single mode, events.apply in the others --

    def new_root(self, component, index, stream, values):
        self.result.roots += 1
        record = Record(self.log.new_root(), component, index, stream, values, None, 1, self.wall())
        self.log.append(record)
        self.unlogged.add(record, 1, None)

    def ack(self, roots, xor):
        trees, acker, now = self.trees, self.acker, self.now
        for root in roots:
            if root in trees and acker.ack(root, xor, now):
                self._complete(record_of(root >> SEQ_SHIFT, trees.pop(root)))

    def ack_each(self, acks):
        """Acks from a worker (EventSink.take): [root, xor, root, xor, ...], one per root,
        after [0, [[roots, xor], ...]] when some name several roots at once."""
        groups = self.groups
        if acks[0] == 0:  # a root is never 0
            acks = groups.resolve(acks[2:], acks[1])
        elif groups.group_of or groups.runs and not all(map(groups.runs.__contains__, acks[::2])):
            acks = groups.resolve(acks)  # (acks on RunGroups only, one each, need no resolving)
        completed = self.acker.ack_all(acks, self.now)
        if not completed:
            return
        if groups.runs:
            completed = self._runs_completed(completed)
        if groups.members:
            completed = groups.expand(completed)
        holders = list(map(self.trees.pop, completed, repeat(None)))
        if None in holders:  # some ended already (failed, say): `completed` names each tree that did not
            completed = [tree for tree, holder in zip(completed, holders) if holder is not None]
            holders = [holder for holder in holders if holder is not None]
        if holders:
            self.completion.completed_all([tree >> SEQ_SHIFT for tree in completed], holders)

    def _take_runs(self, ended):
        """The RunGroups among the trees and groups `ended` (completed, expired), taken out of
        `trees` and the groups, and the others."""
        runs, entries, rest = self.groups.runs, [], []
        for tree in ended:
            if tree in runs:
                entries.append(self.groups.forget_run(tree))
                del self.trees[tree]
            else:
                rest.append(tree)
        return entries, rest

    def _runs_completed(self, completed):
        """Complete the RunGroups among the trees and groups `completed`: their members in
        flight are released together. The others, returned, complete as before."""
        entries, rest = self._take_runs(completed)
        for entry in entries:
            seqs = entry.in_flight()
            if seqs:
                self.completion.completed_all(seqs, [entry.run] * len(seqs))
        return rest

    def in_flight(self):
        """(holder, its records in flight) of every entry of `trees` (a RunGroup holds several)."""
        return [(holder, len(holder) if holder.__class__ is RunGroup else 1) for holder in self.trees.values()]

    def trees_in_flight(self):
        """The trees in flight, a RunGroup's members each counted."""
        if not self.groups.runs:
            return len(self.trees)
        return len(self.trees) + sum(len(entry) - 1 for entry in self.groups.runs.values())

    def fail(self, roots, error, traceback, component, task_id, tup, settle=0):
        """`tup` failed in its trees `roots`. `settle`: the XOR its failure leaves unacked (its
        id and its children's), which a record group needs to complete (groups.py)."""
        if not roots:
            self.retries.untracked_error(error, traceback, component, task_id, tup)
            return
        groups = self.groups
        for root in roots:
            if root in self.trees:
                self.acker.fail(root)
                if groups.group_of:
                    groups.shrink(root)
                self._tree_failed(root, error, traceback, component, task_id)
            elif groups.runs:
                found = groups.run_of(root)
                if found is not None and root not in found[1].failed:  # a member of a RunGroup fails alone
                    group, entry, seq = found
                    groups.fail_member(group, entry, root)
                    self._record_failed(entry.run.record(seq), error, traceback, component, task_id)
        if settle and (groups.group_of or groups.runs):
            acks = groups.settle(roots, settle)
            if acks:
                self.ack_each(acks)

    def _tree_failed(self, tree, error, traceback, component, task_id):
        self._record_failed(record_of(tree >> SEQ_SHIFT, self.trees.pop(tree)), error, traceback, component, task_id)

    def _record_failed(self, record, error, traceback, component, task_id):
        self.result.failed += 1
        if self.meter is not None:
            self.meter.spout(record.spout, FAILED)
        self.completion.failed(record, error, traceback, component, task_id)

    def _expire(self, now):
        expired = self.acker.expire(now, self.message_timeout)
        error = f"timed out: the tree was not complete within {self.message_timeout:g} s"
        if expired and self.groups.runs:  # a RunGroup's members in flight time out with it
            entries, expired = self._take_runs(expired)
            for entry in entries:
                for seq in entry.in_flight():
                    self._record_failed(entry.run.record(seq), error, None, None, None)
        if expired and self.groups.members:
            expired = self.groups.expand(expired)  # a group's members time out with it
        for tree in expired:
            if tree in self.trees:
                self._tree_failed(tree, error, None, None, None)

    def worker_died(self, cause):
        """A worker process died: the trees in flight are dropped from the acker and their
        records, with those whose completion the worker's epoch lost, go to the recovery, which
        runs them again isolated (recovery.py)."""
        held = self.completion.worker_lost()
        in_flight = []
        for tree in list(self.trees):
            self.acker.fail(tree)
            holder = self.trees.pop(tree)
            if holder.__class__ is RunGroup:  # its members in flight
                in_flight += map(holder.run.record, holder.in_flight())
            else:
                in_flight.append(record_of(tree >> SEQ_SHIFT, holder))
        self.groups.fail_all()
        self.recovery.worker_died(in_flight, held, cause)

    def pending(self, task_id):
        """Records of a spout task in flight, waiting for a retry or for their commit."""
        return self.acker.pending(task_id) + self.retries.waiting[task_id] + self.held_back[task_id]
