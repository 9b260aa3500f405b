"""The log's entries: a `Record` per tuple that started a tree, a `DeadLetter` per record given up."""


class Record:
    """One pending entry: `seq` (its sequence number in the log, distinct from the ids of the
    tuple tree it starts), where it came from (`spout`, `task`, `stream`), its `values` and
    `msg_id`, how many `attempts` it has had, when it was first seen.

    `root` is another name for `seq`, read and written alike (the runtime's older name)."""

    __slots__ = ("seq", "spout", "task", "stream", "values", "msg_id", "attempts", "first_seen")

    def __init__(self, seq, spout, task, stream, values, msg_id, attempts, first_seen):
        self.seq = seq
        self.spout = spout
        self.task = task
        self.stream = stream
        self.values = values
        self.msg_id = msg_id
        self.attempts = attempts
        self.first_seen = first_seen

    def __repr__(self):
        return f"Record(seq={self.seq:#x}, spout={self.spout!r}, values={self.values!r}, attempts={self.attempts})"


# The slot's own descriptor under a second name: as fast as `seq` itself (a property is not).
Record.root = Record.seq


class DeadLetter:
    """A record given up, with the last error: where it happened and its traceback."""

    __slots__ = ("record", "component", "task", "error", "traceback", "time")

    def __init__(self, record, component, task, error, traceback, time):
        self.record = record
        self.component = component
        self.task = task
        self.error = error
        self.traceback = traceback
        self.time = time

    def as_dict(self):
        """The letter as the command line prints it. "seq" is the record's sequence number in
        the log; "root" repeats it under its older name, for scripts written before."""
        r = self.record
        return {"seq": r.seq, "root": r.seq, "spout": r.spout, "values": list(r.values), "component": self.component,
                "task": self.task, "error": self.error, "traceback": self.traceback,
                "attempts": r.attempts, "time": self.time}
