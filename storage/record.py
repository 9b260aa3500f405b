"""The log's entries: a `Record` per tuple that started a tree, or a `Run` of them (a spout's
batch), and a `DeadLetter` per record given up."""


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


class Run:
    """The records of a spout's batch (`next_batch`), as one entry: seqs `first`, `first + 1`,
    ... in the order of `values` (one values tuple per record), sharing where they came from
    and when, with no msg_id, at their first attempt. The log stores them as one head and the
    values; the runtime starts their trees from the columns. A `Record` of one of them is made
    only when something needs it alone (`record(seq)`): its tree failed or timed out, an epoch
    holds it, a spout's `ack` takes its seq, or the log is read back."""

    __slots__ = ("first", "spout", "task", "stream", "values", "first_seen")
    msg_id = None  # as a Record's, read alike (`holder.msg_id`)

    def __init__(self, first, spout, task, stream, values, first_seen):
        self.first = first
        self.spout = spout
        self.task = task
        self.stream = stream
        self.values = values
        self.first_seen = first_seen

    def __len__(self):
        return len(self.values)

    @property
    def seqs(self):
        return range(self.first, self.first + len(self.values))

    def record(self, seq):
        return Record(seq, self.spout, self.task, self.stream, self.values[seq - self.first], None, 1,
                      self.first_seen)

    def records(self):
        return list(map(self.record, self.seqs))

    def __repr__(self):
        return f"Run(first={self.first:#x}, n={len(self.values)}, spout={self.spout!r})"


def record_of(seq, entry):
    """The `Record` of `seq`, from what holds it: that record itself, or its `Run`."""
    return entry if entry.__class__ is Record else entry.record(seq)


def records_of(entries):
    """The records of `entries` (Records and Runs), in order."""
    records = []
    for entry in entries:
        if entry.__class__ is Record:
            records.append(entry)
        else:
            records += entry.records()
    return records


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
