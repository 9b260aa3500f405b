"""Tick tuples: a bolt with `tick_every = seconds` gets `tick()` called every that many seconds
while the run is up, as Storm's tick tuples (`topology.tick.tuple.freq.secs`).

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
        for task in core.bolt_tasks_in_order:
            seconds = getattr(core.topology.components[task.component].obj, "tick_every", None)
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

    def next_due(self):
        return min(self.next.values()) if self.next else None
