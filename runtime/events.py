"""What tasks did, gathered for the core: one set of events for thread and process mode.

A task running away from the core's thread (a pool thread, a worker process) records what it
does in an `EventSink` instead of acting on the core; the core applies a batch of them in one
go (`apply`):

    events   failures, roots emitted with no input, collected tuples: in order
    acks     root -> the XOR of everything acked in it (XOR is commutative: acks combine); an
             ack that names several roots stays whole (`several`), as the core resolves each
             member of a record group to its group and counts each group once (groups.py)
    sends    per input edge (task, source, source task, stream): [values, id, roots] in order
    crossings per input edge to an auto-ack task of another worker (process mode): the values of
             its deliveries in a row, and where their roots change (`Crossing`)

Order of application: the events, then the acks, then the sends. Failures must come before
acks: a tree whose fused step failed is acked by the step before it, and that ack must not
complete it. In process mode the sends for each worker travel as one msgpack blob
(`EventSink.encoded`), which the supervisor forwards without decoding; `FAIL`, `ROOT` and
`COLLECT` events are lists of plain values, so they travel as msgpack too.

A delivery through a crossing has no id of its own. The receiving worker runs it as a fused
input (its task is auto-ack, so it is done when its run returns), so the ids that track it can
be per *run*: consecutive deliveries of one edge with the same roots (the words of one line).
The generated chain marks where a run starts (the roots object changes) as it appends, so a
delivery costs one append and one identity test, and a run one mark. The runs travel as two
columns, each run's roots and its count of deliveries, and the ids that hold their trees open
as a list apart: one fresh id per record group this worker ran a part of in this frame
(`group_of`: the group gets one ack per frame, not one per run), and one per run whose roots
are not such a group's, each XORed here into its target with the sender's acks. The receiver
runs every run, acks on a run's roots the XOR of what its deliveries queued, and then acks
each id on its target: a tree stays open until the receiver ran the whole blob. One delivery
that fails fails its roots, as a queued one does, and the ids are acked all the same (with
what was queued before), so a group completes. In the usual frame (every run one root, each
root a member of a group) the columns are made in C-level passes, not a Python loop per run.
"""
from itertools import compress, repeat
from operator import itemgetter, sub

from consecution.acker import new_id
from consecution.storage import encode
from consecution.topology import Tuple

from .vocabulary import Vocabulary

ONE, FIRST = (1).__eq__, itemgetter(0)  # a length of one; item 0 (a run's one root, a record's one value)

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
        self.parts = []     # (member roots, group) of the groups run since the last take, for group_of
        self.sends = {}
        self.crossings = {}  # edge -> Crossing, kept: generated chains append to them

    def crossing(self, task_id, source, source_task, stream, width):
        """The `Crossing` to which a generated chain appends its deliveries to `task_id`, an
        auto-ack task of another worker, on the given edge (`width`: its declared fields)."""
        key = (task_id, source, source_task, stream, width)
        crossing = self.crossings.get(key)
        if crossing is None:
            crossing = self.crossings[key] = Crossing(width)
        return crossing

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
        self.parts.clear()
        return taken

    def encoded(self):
        """`take()` for the wire: the sends as [[destination, count, blob], ...], a blob being
        the msgpack of a list of edges' deliveries, each
            [task, source, source task, stream, count, [[values, id, roots], ...]]     queued
            [task, source, source task, stream, count, width, [values...], roots, counts, ids, words]
        the second for a crossing: its values (see `Crossing`), its runs of deliveries with the
        same roots as two columns (a run's roots: one int when it has one root, else a list,
        empty when untracked; its count of deliveries), [target, id, ...], the ids the
        receiver acks once it ran them all (a target: a record group's id or a root, an int,
        or a list of roots), and `words`: None, or [generation, base, new words] when the
        values are numbers in the crossing's vocabulary (runtime/vocabulary.py)."""
        groups = {}
        for (task_id, source, source_task, stream, width), crossing in self.crossings.items():
            if crossing.spans and not crossing.marks:
                n, roots, counts, ids = self._spans(crossing)
            elif crossing.marks or crossing.spans:
                if crossing.spans:
                    _spans_as_marks(crossing)
                n, roots, counts, ids = self._runs(crossing)
            else:
                continue
            sent_width = 1 if width is None and not crossing.nested else width
            items, vocabulary = crossing.values, None
            if crossing.vocabulary is not None and crossing.vocabulary.numbered:  # numbers already
                items, vocabulary = crossing.vocabulary.ship(items, crossing.nested)
            elif sent_width == 1 and crossing.vocabulary is not None:  # words as numbers (vocabulary.py)
                coded = crossing.vocabulary.code(items)
                if coded is not None:
                    items, vocabulary = coded
            groups.setdefault(self.destination(task_id), []).append(
                (task_id, source, source_task, stream, n, sent_width, items, roots, counts, ids, vocabulary))
        events, acks, sends = self.take()
        for edge, items in sends.items():
            groups.setdefault(self.destination(edge[0]), []).append((*edge, len(items), items))
        encoded = [events, acks, [[k, sum(g[4] for g in out), encode(out)] for k, out in groups.items()]]
        for crossing in self.crossings.values():
            if crossing.marks or crossing.spans:
                crossing.clear()
        return encoded

    def restarted(self, worker):
        """Worker `worker` was started again: the vocabularies of the crossings to it start over
        (its new process knows none of their words)."""
        for (task_id, *_), crossing in self.crossings.items():
            if crossing.vocabulary is not None and self.destination(task_id) == worker:
                crossing.vocabulary.start()

    def _spans(self, crossing):
        """`_runs` for a crossing that only records loops appended to (`Crossing.span`): each
        record with deliveries a run on its one root, and one id per record group (per run
        when the group is 0), in C-level passes per span."""
        step = crossing.width if crossing.width and crossing.width > 1 else 1
        ack, roots, counts, ids, named = self.ack, [], [], [], set()
        for roots_of, starts, end, group in crossing.spans:
            sizes = _sizes(starts, end)
            if step > 1:
                sizes = [n // step for n in sizes]
            mine = list(compress(roots_of, sizes))
            roots += mine
            counts += filter(None, sizes)
            for target in ((group,) if group else mine):  # one id per group, else per run
                if target not in named:
                    named.add(target)
                    tid = new_id()
                    ack((target,), tid)
                    ids += (target, tid)
        return len(crossing.values) // step, roots, counts, ids

    def _runs(self, crossing):
        """(deliveries, roots, counts, ids): the crossing's runs as columns, each run's roots
        (one int, a list, or empty when untracked) and its count of deliveries, and the ids
        [target, id, ...] that the receiver acks once it ran them all, each XORed here into
        its target: one per record group whose part this worker ran (its runs' roots are
        members), one per other tracked run (on its roots)."""
        if self.parts:  # the member roots of the frame's groups, looked up from here on
            for members, group in self.parts:
                self.group_of.update(zip(members, repeat(group)))
            self.parts.clear()
        marks, values = crossing.marks, crossing.values
        step = crossing.width if crossing.width and crossing.width > 1 else 1
        each_roots, starts = marks[::2], marks[1::2]
        ends = starts[1:]
        ends.append(len(values))
        counts = list(map(sub, ends, starts))
        if step > 1:
            counts = [n // step for n in counts]
        ack, ids = self.ack, []
        if all(map(ONE, map(len, each_roots))):  # the usual: one root a run, ...
            roots = list(map(FIRST, each_roots))
            groups = list(map(self.group_of.get, roots))
            if None not in groups:  # ... each a member of a group run here: an id per group
                for group in dict.fromkeys(groups):
                    tid = new_id()
                    ack((group,), tid)
                    ids += (group, tid)
                return len(values) // step, roots, counts, ids
        group_of, roots, sent = self.group_of, [], set()
        for run_roots in each_roots:
            if len(run_roots) == 1:
                root = run_roots[0]
                roots.append(root)
                group = group_of.get(root)
                if group is None:
                    tid = new_id()
                    ack(run_roots, tid)
                    ids += (root, tid)
                elif group not in sent:  # the group's first run here: one id for all its runs
                    sent.add(group)
                    tid = new_id()
                    ack((group,), tid)
                    ids += (group, tid)
            elif run_roots:
                tid = new_id()
                ack(run_roots, tid)
                several = list(run_roots)
                roots.append(several)
                ids += (several, tid)
            else:  # untracked: nothing to ack
                roots.append(())
        return len(values) // step, roots, counts, ids


class Crossing:
    """The deliveries of one edge to an auto-ack task of another worker, as a generated chain
    appends them: `values` in a row (with a known `width`, the stream's declared fields, flat:
    `width` values per delivery, so one value each is no list in the blob; else one item per
    delivery: its one value itself unless that value is a list, else its values tuple, an array
    in the blob, so the receiver tells them apart) and `marks`, [roots, start, ...]: where the
    roots change, `last` being the roots of the last delivery. The chain appends so:

        if roots is not crossing.last:
            crossing.last = roots
            crossing.marks += (roots, len(crossing.values))
        crossing.values.append(value)

    `last` holds its roots object, which so cannot be freed and its address taken by another.
    With no known width, `nested` says that some item is a values tuple: else every item is
    one value, and the blob says width 1, so that the receiver makes each values tuple without
    looking whether the item is a list. Sent as width 1, str values travel as numbers into the
    crossing's `vocabulary` (runtime/vocabulary.py).
    """

    __slots__ = ("width", "values", "marks", "last", "nested", "vocabulary", "starts", "spans")

    def __init__(self, width):
        self.width = width
        self.values, self.marks, self.last, self.nested = [], [], None, False
        self.vocabulary = Vocabulary(self.values) if width is None or width == 1 else None
        self.starts, self.spans = [], []

    def span(self, roots_of, group):
        """A records loop (chains.py, `_record_spans`) appended its records' deliveries, the
        first of record i at `starts[i]`, with the roots (roots_of[i],), all members of record
        group `group` (0: each root its own tree). Kept as a span, turned into runs at
        `EventSink.encoded`; a delivery appended next starts a run of its own."""
        if self.starts and len(self.values) > self.starts[0]:
            self.spans.append((roots_of, self.starts[:], len(self.values), group))
        self.starts.clear()
        self.last = None

    def clear(self):
        self.values.clear()
        self.marks.clear()
        self.spans.clear()
        self.last = None
        self.nested = False


def _sizes(starts, end):
    """How many values each record of a span appended: from its start to the next one's."""
    return list(map(sub, starts[1:] + [end], starts))


def _spans_as_marks(crossing):
    """A crossing that records loops and other code appended to in one frame: its spans as
    marks, [roots, start, ...] in the order of their deliveries (each span's records with
    deliveries, each on its one root)."""
    entries = [(crossing.marks[i + 1], i, crossing.marks[i]) for i in range(0, len(crossing.marks), 2)]
    for roots_of, starts, end, _ in crossing.spans:
        entries += [(start, -1, (root,)) for root, start, size in zip(roots_of, starts, _sizes(starts, end)) if size]
    entries.sort(key=FIRST)  # a start is where one appender's deliveries begin: no two are equal
    crossing.marks[:] = [x for start, _, roots in entries for x in (roots, start)]
    crossing.spans.clear()


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
