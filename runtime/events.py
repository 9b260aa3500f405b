"""What tasks did, gathered for the core: one set of events for thread and process mode.

A task running away from the core's thread (a pool thread, a worker process) records what it
does in an `EventSink` instead of acting on the core; the core applies a batch of them in one
go (`apply`):

    events   failures, roots emitted with no input, collected tuples: in order
    acks     root -> the XOR of everything acked in it (XOR is commutative: acks combine)
    sends    per input edge (task, source, source task, stream): [values, id, roots] in order

Order of application: the events, then the acks, then the sends. Failures must come before
acks: a tree whose fused step failed is acked by the step before it, and that ack must not
complete it. In process mode the sends for each worker travel as one msgpack blob
(`EventSink.encoded`), which the supervisor forwards without decoding; `FAIL`, `ROOT` and
`COLLECT` events are lists of plain values, so they travel as msgpack too.
"""
from consecution.storage import encode
from consecution.topology import Tuple

FAIL, ROOT, COLLECT = "f", "o", "c"


class EventSink:
    """The sink of tasks that run away from the core. `destination(task id)` says where a
    delivery to that task goes (a worker index; 0 in thread mode, where the core takes all)."""

    def __init__(self, destination):
        self.destination = destination
        self.events = []
        self.acks = {}
        self.sends = {}

    def send(self, task_id, values, stream, source, source_task, tid, roots, fields):
        key = (task_id, source, source_task, stream)
        out = self.sends.get(key)
        if out is None:
            out = self.sends[key] = []
        out.append((values, tid, roots))

    def ack(self, roots, xor):
        acks = self.acks
        for root in roots:
            acks[root] = acks.get(root, 0) ^ xor

    def fail(self, roots, error, traceback, component, task_id, tup):
        self.events.append((FAIL, roots, error, traceback, component, task_id, tup.values, tup.stream, tup.source,
                            tup.task))

    def emit_root(self, task, stream, values):
        self.events.append((ROOT, task.component, task.context.task_index, stream, values))

    def collect(self, component, stream, values):
        self.events.append((COLLECT, component, stream, values))

    def take(self):
        """(events, acks as [root, xor, ...], {edge: [(values, id, roots)]}), and start afresh."""
        acks = []
        for root, xor in self.acks.items():
            if xor:
                acks += (root, xor)
        taken = (self.events, acks, self.sends)
        self.events, self.acks, self.sends = [], {}, {}
        return taken

    def encoded(self):
        """`take()` for the wire: the sends as [[destination, count, blob], ...], a blob being
        the msgpack of [[task, source, source task, stream, [[values, id, roots], ...]], ...]."""
        events, acks, sends = self.take()
        groups = {}
        for edge, items in sends.items():
            groups.setdefault(self.destination(edge[0]), []).append((*edge, items))
        return [events, acks, [[k, sum(len(g[4]) for g in out), encode(out)] for k, out in groups.items()]]


def apply(core, events, acks):
    """Apply a batch of events, then its acks, to the core (the sends are the executor's)."""
    for event in events:
        kind = event[0]
        if kind == FAIL:
            _, roots, error, traceback, component, task_id, values, stream, source, source_task = event
            core.fail(roots, error, traceback, component, task_id,
                      Tuple(tuple(values), stream, source, source_task, None, (), None))
        elif kind == ROOT:
            core.new_root(event[1], event[2], event[3], tuple(event[4]))
        elif kind == COLLECT:
            core.collect(event[1], event[2], tuple(event[3]))
    if acks:
        core.ack_each(acks)
