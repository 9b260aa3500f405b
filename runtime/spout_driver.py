"""The reliable spout driver: asks the spouts for tuples and logs what they emit.

    driver.pull() -> spout.next_tuple() -> spout.emit -> driver.emit -> a Record appended to
        the log (not yet committed) with, after the spout's calls, its position()
    (or spout.next_batch(limit) -> driver.emit_batch: a list of tuples, checked in one loop
        and appended as one Run of records)
    the core commits the log, then starts the records' trees (runtime/trees.py)

With reliability "none" nothing is logged: a spout tuple goes straight to its subscribers.
A spout task is asked only while it has fewer than `max_pending` records in flight.
"""
from consecution.storage import Record, Run
from consecution.storage.codec import INT_MAX, INT_MIN, SCALARS, all_scalars
from consecution.topology.components import DEFAULT

from .errors import SpoutInterrupted, UserCodeError
from .tasks import checked

COMMIT_BATCH = 512       # spout records per log commit, at most
COMMIT_INTERVAL = 0.005  # seconds a spout record may wait for its commit, at most


class SpoutDriver:
    """The sink of the spout tasks (`SpoutTask.sink`), and what asks them."""

    def __init__(self, core):
        self.core = core
        self.tracking = core.tracking
        self.bounded = core.max_pending is not None
        self.active = []  # spout tasks not exhausted (the core fills it when its tasks are built)
        self.asking = None  # the spout task whose next_tuple runs now

    def opened(self):
        """The run's log is open: keep what `emit` calls per record at hand."""
        core = self.core
        self.result, self.wall, self.unlogged = core.result, core.wall, core.unlogged
        self.new_seq, self.append = core.log.new_root, core.log.append
        self.new_seqs, self.append_run = core.log.new_seqs, core.log.append_run
        self.finish, self.named_outputs = core.finish, core.named_outputs
        self.meter = core.meter

    def emit(self, task, values, stream="default", msg_id=None):
        """Spout task `task` emitted `values` on `stream` (its `Spout.emit`): checked against
        the stream's fields and made msgpack-safe, then logged (or, with reliability "none",
        delivered at once)."""
        fields = task.streams.get(stream, ())
        if values.__class__ is tuple and (fields is None or len(values) == len(fields)):
            if not all_scalars(values):
                values = checked(values, task.component, stream, task.streams)
        else:  # converts, or raises naming the stream or the fields
            values = checked(values, task.component, stream, task.streams)
        self.result.roots += 1
        if self.meter is not None:
            self.meter.emitted[task.task_id] += 1
        if not self.tracking:  # nothing logged: delivered at once
            self._deliver(task, stream, values)
            if task.has_logged:  # no log, no commit to wait for
                task.obj.logged([msg_id])
            return
        record = Record(self.new_seq(), task.component, task.index, stream, values, msg_id, 1, self.wall())
        self.append(record)
        self.unlogged.add(record, 1, (task.component, task.index, stream))
        if self.bounded:  # read by core.pending(), for max_pending only
            self.core.held_back[task.task_id] += 1
        if self.finish.marks or self.named_outputs.closed:  # new input: every finish has to run again,
            self.finish.clear()                        # the outputs are open for what it brings
            self.named_outputs.reopen()

    def emit_batch(self, task, rows):
        """What a spout task's `next_batch` returned (a list of values tuples on its default
        stream): `emit` of each, in one loop."""
        fields = task.streams.get(DEFAULT, ())
        width = None if fields is None else len(fields)
        for i, values in enumerate(rows):
            if values.__class__ is tuple and (width is None or len(values) == width):
                if len(values) == 1:  # the usual row: its value checked here, without a call
                    value = values[0]
                    if value.__class__ in SCALARS or value.__class__ is int and INT_MIN <= value <= INT_MAX:
                        continue
                elif all_scalars(values):
                    continue
            rows[i] = checked(values, task.component, DEFAULT, task.streams)
        n = len(rows)
        self.result.roots += n
        if self.meter is not None:
            self.meter.emitted[task.task_id] += n
        if not self.tracking:  # nothing logged: delivered at once
            runs = self.core.start_plan(task, DEFAULT)[2]
            send_records = getattr(self.core.executor, "send_records", None)
            if runs is not None and len(runs) == 1 and runs[0][1] is not None:
                self.core.chains.run_batch(runs[0][0], task.component, task.task_id, DEFAULT)(rows, (), 0)
            elif runs is not None and len(runs) == 1 and send_records is not None:  # one loop in a worker
                send_records(runs[0][0], rows, DEFAULT, task.component, task.task_id, (), 0)
            else:
                for values in rows:
                    self._deliver(task, DEFAULT, values)
            if task.has_logged:
                task.obj.logged([None] * n)
            return
        run = Run(self.new_seqs(n), task.component, task.index, DEFAULT, rows, self.wall())
        self.append_run(run)
        self.unlogged.add(run, n, (task.component, task.index, DEFAULT))
        if self.bounded:
            self.core.held_back[task.task_id] += n
        if self.finish.marks or self.named_outputs.closed:
            self.finish.clear()
            self.named_outputs.reopen()

    def _deliver(self, task, stream, values):
        """Reliability "none": the tuple goes to its subscribers at once."""
        core = self.core
        plan = core.start_plan(task, stream)
        runs = plan[2]
        if runs is None:
            runs = core._runs(task, stream, task.routing.targets(stream, values, task.task_id))
        for target, run in runs:
            if run is not None:
                run(values, (), None)
            else:
                core.executor.send(target, values, stream, task.component, task.task_id, None, (), plan[1])

    def pull(self):
        """Ask the spouts again and again, in rounds of one call each, until a commit's worth
        of records is waiting, a round emits nothing, or COMMIT_INTERVAL has passed; a lone
        spout is asked in a tight loop. A spout's position is read once after its calls, and
        so stored in the commit that holds what they emitted. True if anything was emitted
        (or a spout was exhausted)."""
        core = self.core
        deadline = core.clock() + COMMIT_INTERVAL
        result, max_pending = core.result, core.max_pending
        emitted = False
        while True:
            before = result.roots
            calls = COMMIT_BATCH if len(self.active) == 1 else 1
            for task in list(self.active):
                room = calls
                if max_pending is not None:
                    room = min(room, max_pending - core.pending(task.task_id))
                if room > 0 and self._ask(task, room):
                    emitted = True
            if result.roots == before or core.stopping or not self.active:
                return emitted
            emitted = True
            if (core.unlogged.count >= COMMIT_BATCH or core.executor.queued() >= COMMIT_BATCH
                    or core.clock() >= deadline):
                return emitted

    def _ask(self, task, calls):
        """Call a spout task's next_tuple up to `calls` times, until one emits nothing; then
        store its position. True if it was exhausted."""
        core = self.core
        result, unlogged = core.result, core.unlogged
        next_tuple, next_batch = task.obj.next_tuple, task.next_batch
        exhausted = False
        self.asking = task
        try:
            if next_batch is not None:
                limit = min(calls, COMMIT_BATCH - unlogged.count) if self.tracking else calls
                if limit > 0:
                    rows = next_batch(limit)
                    if rows:
                        self.emit_batch(task, list(rows))  # a list of its own: the Run keeps it
            else:
                for _ in range(calls):
                    before = result.roots
                    next_tuple()
                    if result.roots == before or core.stopping or unlogged.count >= COMMIT_BATCH:
                        break
        except SpoutInterrupted:  # a stop signal: no position stored for what it was doing
            core.logger.info("spout.interrupted", topology=core.topology.name, component=task.component,
                             task=task.task_id)
            return False
        except StopIteration:
            exhausted = task.exhausted = True
            self.active.remove(task)
            core.logger.info("spout.exhausted", topology=core.topology.name, component=task.component,
                             task=task.task_id)
        except Exception as exc:
            raise UserCodeError(task.component, "next_tuple" if next_batch is None else "next_batch", exc) from exc
        finally:
            self.asking = None
        if task.has_position and self.tracking:
            position = core.call_user(task, "position")
            if position is not None:
                core.log.position(task.component, task.context.task_index, position)
        return exhausted
