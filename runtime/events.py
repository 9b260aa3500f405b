"""What tasks did, gathered for the core: one set of events for thread and process mode.

A task running away from the core's thread (a pool thread, a worker process) records what it
does in an `EventSink` instead of acting on the core; the core applies a batch of them in one
go (`apply`):

    events   failures, roots emitted with no input, collected tuples: in order
    acks     root -> the XOR of everything acked in it (XOR is commutative: acks combine)
    sends    per input edge (task, source, source task, stream): [values, id, roots] in order
    columns  per input edge to an auto-ack task of another worker (process mode): the values
             and the roots of each delivery, in two lists (`outlet`)

Order of application: the events, then the acks, then the sends. Failures must come before
acks: a tree whose fused step failed is acked by the step before it, and that ack must not
complete it. In process mode the sends for each worker travel as one msgpack blob
(`EventSink.encoded`), which the supervisor forwards without decoding; `FAIL`, `ROOT` and
`COLLECT` events are lists of plain values, so they travel as msgpack too.

A delivery in a column has no id of its own. The receiving worker runs it as a fused input
(its task is auto-ack, so it is done when its run returns), so the ids that track it can be
per *run*: consecutive deliveries of one edge with the same roots (the words of one line). Each
run gets one fresh id, XORed into its roots here, with the sender's acks, and acked by the
receiver, with the XOR of what the run's deliveries queued, once it ran them all. A tree stays
open until the whole run is done; one delivery that fails fails its roots, as a queued one does.
Per delivery this costs two appends and its values in the blob, not an id, a tuple and an ack.
"""
from consecution.acker import new_id
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
        self.columns = {}  # edge -> ([values, ...], [roots, ...]), kept: generated chains append to them

    def outlet(self, task_id, source, source_task, stream, width):
        """The two lists (values, roots) to which a generated chain appends its deliveries to
        `task_id`, an auto-ack task of another worker, on the given edge. With a known `width`
        (the stream's declared fields) the values lie flat, `width` per delivery (one value
        each: no list per delivery in the blob); else one item per delivery: its one value
        itself unless that value is a list, else its values tuple (an array in the blob, so
        the receiver tells them apart: a list item is a tuple of values)."""
        key = (task_id, source, source_task, stream, width)
        columns = self.columns.get(key)
        if columns is None:
            columns = self.columns[key] = ([], [])
        return columns

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
        the msgpack of a list of edges' deliveries, each
            [task, source, source task, stream, count, [[values, id, roots], ...]]     queued
            [task, source, source task, stream, count, width, [values...], [roots, run id, n, ...]]
        the second for an outlet's columns: its values (flat when the width is known), and
        its runs of `n` deliveries with the same roots (see the module docstring)."""
        groups = {}
        for (task_id, source, source_task, stream, width), (values, roots) in self.columns.items():
            if roots:
                groups.setdefault(self.destination(task_id), []).append(
                    (task_id, source, source_task, stream, len(roots), width, values, self._runs(roots)))
        events, acks, sends = self.take()
        for edge, items in sends.items():
            groups.setdefault(self.destination(edge[0]), []).append((*edge, len(items), items))
        encoded = [events, acks, [[k, sum(g[4] for g in out), encode(out)] for k, out in groups.items()]]
        for values, roots in self.columns.values():
            values.clear()
            roots.clear()
        return encoded

    def _runs(self, roots):
        """[roots, run id, n, ...]: the runs of deliveries with the same roots (the same object:
        a step's emits share their input's), each run's id XORed into its roots here (0, and
        no ack, for untracked deliveries)."""
        out, last, n = [], roots[0], 0
        for r in roots:
            if r is not last:
                out += (last, 0, n)
                last, n = r, 0
            n += 1
        out += (last, 0, n)
        acks = self.acks
        for i in range(0, len(out), 3):
            if out[i]:
                out[i + 1] = tid = new_id()
                for root in out[i]:
                    acks[root] = acks.get(root, 0) ^ tid
        return out


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
