"""The events of tasks away from the core, as process mode sends them (runtime/events.py)."""
from consecution.storage import decode
from consecution.runtime.events import EventSink
from consecution.runtime.worker import _run_groups


def xor_of(acks):
    """root -> XOR, from acks as [root, xor, ...] of several replies (those that name several
    roots, at the front, counted on each root: no record groups here)."""
    out = {}
    for reply in acks:
        if reply and reply[0] == 0:
            several, reply = reply[1], reply[2:]
            for roots, xor in several:
                for root in roots:
                    out[root] = out.get(root, 0) ^ xor
        for root, xor in zip(reply[::2], reply[1::2]):
            out[root] = out.get(root, 0) ^ xor
    return out


def append(crossing, roots, values):
    """Append a delivery as a generated chain does (see events.Crossing)."""
    if roots is not crossing.last:
        crossing.last = roots
        crossing.marks += (roots, len(crossing.values))
    crossing.values.extend(values) if crossing.width != 1 else crossing.values.append(values[0])


class Runs:
    """Stands in for the worker's Chains: each run of `width`-value deliveries calls `run` per
    delivery and acks on the run's roots what they queued, as the generated loop
    (Chains.run_runs) does."""

    def __init__(self, run):
        self.fn = run

    def run_runs(self, task, source, source_task, stream, width):
        assert width == 2

        def runs_of(items, roots_of, counts, ack):
            start = 0
            for root, n in zip(roots_of, counts):
                roots = (root,) if root.__class__ is int else tuple(root)
                xor = 0
                for i in range(start, start + n * width, width):
                    xor ^= self.fn(tuple(items[i:i + width]), roots, 0)
                start += n * width
                if xor:
                    ack(roots, xor)
        return runs_of


def test_an_crossings_runs_close_their_trees_once_the_receiver_ran_every_value():
    """Deliveries through a crossing carry no id: each run of deliveries with the same roots
    gets one, XORed into its roots by the sender and acked by the receiver once the run's
    values ran. The sender's acks alone leave every tree open; with the receiver's, each is
    back to the XOR of what the receiver's runs queued."""
    sender = EventSink(lambda task: 1)
    crossing = sender.crossing(7, "split", 0, "default", 2)
    values = crossing.values
    line_a, line_b, untracked = (101,), (102, 103), ()
    for position, word in enumerate("a b c".split()):
        append(crossing, line_a, (word, position))
    append(crossing, untracked, ("d", 0))
    append(crossing, line_b, ("e", 0))
    assert crossing.marks == [line_a, 0, untracked, 6, line_b, 8]  # where the roots change
    events, sent_acks, forwards = sender.encoded()
    assert set(xor_of([sent_acks])) == {101, 102, 103} and all(xor_of([sent_acks]).values())
    assert values == [] and crossing.marks == [] and crossing.last is None  # emptied for the next frame, not replaced
    [(worker, count, blob)] = forwards
    assert (worker, count) == (1, 5)

    receiver = EventSink(lambda task: 0)
    ran, queued = [], {"e": 0xBEEF}  # what each value's run queued (returned for the ack)

    def run(values, roots, tid):
        assert tid == 0  # a run from a crossing is fused: it returns what it queued
        ran.append((values, roots))
        return queued.get(values[0], 0)

    _run_groups(decode(blob), Runs(run), receiver.ack)
    assert ran == [(("a", 0), line_a), (("b", 1), line_a), (("c", 2), line_a), (("d", 0), ()), (("e", 0), line_b)]
    _, received_acks, _ = receiver.take()
    assert xor_of([sent_acks, received_acks]) == {101: 0, 102: 0xBEEF, 103: 0xBEEF}


def test_an_crossing_of_one_value_per_delivery_sends_the_values_themselves():
    sender = EventSink(lambda task: 1)
    crossing = sender.crossing(3, "lower", 1, "default", 1)
    shared = (5,)
    for word in ("x", "y"):
        append(crossing, shared, (word,))
    _, _, [(_, _, blob)] = sender.encoded()
    [group] = decode(blob)
    assert group[5:9] == [1, ["x", "y"], [5], [2]]  # one run of two, its one root as an int
    assert group[9][0] == 5 and group[9][1] != 0  # the id that holds tree 5 open, acked by the receiver


def test_runs_of_record_group_members_travel_as_columns_with_one_id_per_group():
    """The usual frame: every run has one root, a member of a record group this worker ran a
    part of. The runs go as columns (roots, counts) and one id per group, which the receiver
    acks on the group once it ran every run; what a run queued is acked on its roots (the
    supervisor resolves members to their group)."""
    groups = {101: 0xA, 102: 0xA, 103: 0xB}
    sender = EventSink(lambda task: 1)
    sender.group_of.update(groups)
    crossing = sender.crossing(3, "lower", 1, "default", 1)
    runs = [(101,), (102,), (103,), (101,)]  # a root may come back after another's run
    for roots, words in zip(runs, (["a", "b"], ["c"], ["d", "e", "f"], ["g"])):
        for word in words:
            append(crossing, roots, (word,))
    _, sent_acks, [(_, count, blob)] = sender.encoded()
    [group] = decode(blob)
    assert count == 7 and group[6:9] == [list("abcdefg"), [101, 102, 103, 101], [2, 1, 3, 1]]
    ids = group[9]
    assert ids[::2] == [0xA, 0xB] and all(ids[1::2])  # one id per group, in the order first met
    assert xor_of([sent_acks]) == {0xA: ids[1], 0xB: ids[3]}  # the sender XORed them into the groups

    receiver = EventSink(lambda task: 0)
    ran = []

    class Width1(Runs):
        def run_runs(self, task, source, source_task, stream, width):
            assert width == 1

            def runs_of(items, roots_of, counts, ack):
                start = 0
                for root, n in zip(roots_of, counts):
                    xor = 0
                    for item in items[start:start + n]:
                        ran.append((item, root))
                        xor ^= 0xBEEF if item == "c" else 0
                    start += n
                    if xor:
                        ack((root,), xor)
            return runs_of

    _run_groups(decode(blob), Width1(None), receiver.ack)
    assert ran == [("a", 101), ("b", 101), ("c", 102), ("d", 103), ("e", 103), ("f", 103), ("g", 101)]
    _, received_acks, _ = receiver.take()
    assert xor_of([sent_acks, received_acks]) == {0xA: 0, 0xB: 0, 102: 0xBEEF}
