"""Timed calls of bolts: tick tuples, and the flushes of sinks while the run is idle.

A bolt with `tick_every = seconds` gets `tick()` called every that many seconds while the run is
up, as Storm's tick tuples (`topology.tick.tuple.freq.secs`). A bolt with `flush_interval =
seconds` (a sink that writes in batches) gets `flush()` called at most every that many seconds
while trees wait and nothing runs (`flush_idle`), so a partial batch is written while the input
trickles or pauses.

The core asks `Timers.due(now)` from its loop (every EXPIRE_EVERY, 0.1 s, and whenever it is
about to wait); each tick is an executor call, so it runs where the task runs (the core's
thread in single mode, the task's thread or worker process otherwise), between the task's
inputs, never beside one. What `tick()` emits starts trees of its own, as emits from `flush`
and `finish` do. A tick that comes late (the loop was busy: in single mode a commit's records
are processed depth first) is not made up for: the next is due `tick_every` after it ran.
"""


from consecution.topology import TopologyError


class Timers:
    def __init__(self, core):
        self.core = core
        self.every = {}  # task id -> (task, seconds)
        self.next = {}   # task id -> when its tick is due
        self.idle = []   # (task, flush_interval) of the bolts flushed while the run is idle
        self.flushed = {}  # task id -> when it was last flushed so
        for task in core.bolt_tasks_in_order:
            obj = core.topology.components[task.component].obj
            if getattr(obj, "flush_interval", None) is not None and getattr(obj, "flush", None) is not None:
                self.idle.append((task, obj.flush_interval))
            seconds = getattr(obj, "tick_every", None)
            if seconds is not None:
                if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
                    raise TopologyError(f"component {task.component!r}: tick_every must be a positive number of "
                                     f"seconds, got {seconds!r}")
                self.every[task.task_id] = (task, float(seconds))

    def __bool__(self):
        return bool(self.every)

    def started(self, now):
        self.next = {t: now + seconds for t, (_, seconds) in self.every.items()}

    def due(self, now):
        """Call `tick()` of each task whose tick is due; True if one was called."""
        called = False
        for task_id, (task, seconds) in self.every.items():
            if now >= self.next[task_id]:
                self.core.executor.call(task, "tick")
                self.next[task_id] = self.core.clock() + seconds
                called = True
        return called

    def flush_idle(self, now):
        """Trees wait and nothing runs: ask the bolts with a `flush_interval` to flush what they
        hold, each at most every that many seconds. True if one was asked."""
        asked = False
        for task, interval in self.idle:
            if now - self.flushed.get(task.task_id, -interval) >= interval:
                self.flushed[task.task_id] = now
                self.core.executor.call(task, "flush")
                asked = True
        return asked
