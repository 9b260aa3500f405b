"""The finish phase: every spout is exhausted and every tree complete or given up.

Each bolt's `finish` runs in topological order, each followed by the processing of what it
emitted. A bolt whose finish returned is marked in the log, in the commit that holds what it
emitted (and, with stateful bolts, what it put in state); after a crash in the finish phase
only the bolts not marked run their finish again. The marks are cleared when the phase ends,
or when new spout input arrives.
"""


class FinishPhase:
    def __init__(self, core):
        self.core = core
        self.marks = set()  # "component/index" of the bolt tasks whose finish ran in this phase

    def load(self):
        self.marks = set(self.core.log.get_meta("finished") or ())

    def run(self):
        core = self.core
        for task in core.bolt_tasks_in_order:
            mark = f"{task.component}/{task.context.task_index}"
            if mark in self.marks:
                core.logger.info("finish.skipped", topology=core.topology.name, component=task.component,
                                 task=task.task_id, reason="it ran before a crash")
                continue
            core.executor.call(task, "finish")
            self._set(self.marks | {mark})
            core.completion.after_finish()
            core._loop(pull=False)
        if not core.stopping:
            self.clear()

    def clear(self):
        self._set(set())

    def _set(self, marks):
        self.marks = marks
        core = self.core
        if core.durable and core.reliability == "replay":
            core.log.put_meta("finished", sorted(marks))

    def flush_holders(self):
        """Every spout is exhausted (or an epoch waits) while trees are still pending: bolts
        that hold inputs (`flush()`, e.g. chunk) emit what they hold. True if one of them had
        a flush."""
        core = self.core
        flushed = False
        for task in core.bolt_tasks_in_order:
            if getattr(core.topology.components[task.component].obj, "flush", None) is not None:
                flushed = True
                core.executor.call(task, "flush")
        return flushed
