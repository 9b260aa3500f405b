"""What tasks did, gathered for the core: one set of events for thread and process mode.

A task running away from the core's thread (a pool thread, a worker process) records what it
does in an `EventSink` instead of acting on the core; the core applies a batch of them in one
go (`apply`):

    events   failures, roots emitted with no input, collected tuples: in order
    acks     root -> the XOR of everything acked in it (XOR is commutative: acks combine); an
             ack that names several roots stays whole (`several`), as the core resolves each
             member of a record group to its group and counts each group once (groups.py)
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
run gets one fresh id, XORed here into its ack target, with the sender's acks, and acked by the
receiver, with the XOR of what the run's deliveries queued, once it ran them all. The target
is the run's roots, or the record group they belong to when this worker ran that group's part
in this frame (`group_of`): then the group gets one ack per frame, not one per run. A tree
stays open until the whole run is done; one delivery that fails fails its roots, as a queued
one does, and its run still acks (with what it queued before), so a group completes.
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
        self.several = []  # [roots, xor] of acks that name several roots
        self.group_of = {}  # member root -> record group, for the groups run since the last take
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
        if len(roots) == 1:
            root = roots[0]
            self.acks[root] = self.acks.get(root, 0) ^ xor
        elif roots:
            self.several.append((roots, xor))

    def fail(self, roots, error, traceback, component, task_id, tup, settle=0):
        """`tup` failed; `settle`: the XOR its failure leaves unacked (see core.fail)."""
        self.events.append((FAIL, roots, error, traceback, component, task_id, tup.values, tup.stream, tup.source,
                            tup.task, settle))

    def emit_root(self, task, stream, values):
        self.events.append((ROOT, task.component, task.context.task_index, stream, values))

    def collect(self, component, stream, values):
        self.events.append((COLLECT, component, stream, values))

    def take(self):
        """(events, acks as [root, xor, ...], {edge: [(values, id, roots)]}), and start afresh;
        the acks begin with [0, [[roots, xor], ...]] when some name several roots."""
        acks = [0, self.several] if self.several else []
        for root, xor in self.acks.items():
            if xor:
                acks += (root, xor)
        taken = (self.events, acks, self.sends)
        self.events, self.acks, self.sends, self.several = [], {}, {}, []
        self.group_of.clear()
        return taken

    def encoded(self):
        """`take()` for the wire: the sends as [[destination, count, blob], ...], a blob being
        the msgpack of a list of edges' deliveries, each
            [task, source, source task, stream, count, [[values, id, roots], ...]]     queued
            [task, source, source task, stream, count, width, [values...], [roots, target, run id, n, ...]]
        the second for an outlet's columns: its values (flat when the width is known), and
        its runs of `n` deliveries with the same roots, acked on `target` (0: the roots; see
        the module docstring)."""
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
        """[roots, target, run id, n, ...]: the runs of deliveries with the same roots (the same
        object: a step's emits share their input's), each run's id XORed here into its ack
        target: its roots (target 0), or its record group when this worker ran the group's
        part (a list of one), whose first run carries one id for all its runs in this blob
        (the others 0: the receiver acks a run only for what it queued). Untracked
        deliveries: run id 0, and no ack."""
        out, last, n = [], roots[0], 0
        for r in roots:
            if r is not last:
                out += (last, 0, 0, n)
                last, n = r, 0
            n += 1
        out += (last, 0, 0, n)
        group_of, ack, targets = self.group_of, self.ack, {}
        for i in range(0, len(out), 4):
            run_roots = out[i]
            if not run_roots:
                continue
            group = group_of.get(run_roots[0]) if len(run_roots) == 1 else None
            if group is None:
                out[i + 2] = tid = new_id()
                ack(run_roots, tid)
                continue
            target = targets.get(group)
            if target is None:  # the group's first run here carries the id for all its runs
                targets[group] = target = [group]
                out[i + 2] = tid = new_id()
                ack(target, tid)
            out[i + 1] = target
        return out


def apply(core, events, acks):
    """Apply a batch of events, then its acks, to the core (the sends are the executor's)."""
    for event in events:
        kind = event[0]
        if kind == FAIL:
            _, roots, error, traceback, component, task_id, values, stream, source, source_task, settle = event
            core.fail(roots, error, traceback, component, task_id,
                      Tuple(tuple(values), stream, source, source_task, None, (), None), settle)
        elif kind == ROOT:
            core.new_root(event[1], event[2], event[3], tuple(event[4]))
        elif kind == COLLECT:
            core.collect(event[1], event[2], tuple(event[3]))
    if acks:
        core.ack_each(acks)
