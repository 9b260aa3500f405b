"""The events of tasks away from the core, as process mode sends them (runtime/events.py)."""
from consecution.storage import decode
from consecution.runtime.events import EventSink
from consecution.runtime.vocabulary import Vocabularies
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

    _run_groups(decode(blob), Runs(run), receiver, Vocabularies())
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
    assert group[5:9] == [1, [0, 1], [5], [2]]  # one run of two, its one root as an int
    assert group[10][1:] == [0, ["x", "y"]]  # the words as numbers, the vocabulary's words with them
    assert group[9][0] == 5 and group[9][1] != 0  # the id that holds tree 5 open, acked by the receiver


def test_runs_of_record_group_members_travel_as_columns_with_one_id_per_group():
    """The usual frame: every run has one root, a member of a record group this worker ran a
    part of. The runs go as columns (roots, counts) and one id per group, which the receiver
    acks on the group once it ran every run; what a run queued is acked on its roots (the
    supervisor resolves members to their group)."""
    sender = EventSink(lambda task: 1)
    sender.parts += [([101, 102], 0xA), ([103], 0xB)]  # the frame's group parts, as the worker notes them
    crossing = sender.crossing(3, "lower", 1, "default", 1)
    runs = [(101,), (102,), (103,), (101,)]  # a root may come back after another's run
    for roots, words in zip(runs, (["a", "b"], ["c"], ["d", "e", "f"], ["g"])):
        for word in words:
            append(crossing, roots, (word,))
    _, sent_acks, [(_, count, blob)] = sender.encoded()
    [group] = decode(blob)
    assert count == 7 and group[6:9] == [list(range(7)), [101, 102, 103, 101], [2, 1, 3, 1]]
    assert group[10][2] == list("abcdefg")
    ids = group[9]
    assert ids[::2] == [0xA, 0xB] and all(ids[1::2])  # one id per group, in the order first met
    assert xor_of([sent_acks]) == {0xA: ids[1], 0xB: ids[3]}  # the sender XORed them into the groups

    receiver = EventSink(lambda task: 0)
    ran = []

    class Width1(Runs):
        def run_runs(self, task, source, source_task, stream, width):
            assert width == "tuples"  # the words came as numbers: each is a values tuple here

            def runs_of(items, roots_of, counts, ack):
                start = 0
                for root, n in zip(roots_of, counts):
                    xor = 0
                    for (item,) in items[start:start + n]:
                        ran.append((item, root))
                        xor ^= 0xBEEF if item == "c" else 0
                    start += n
                    if xor:
                        ack((root,), xor)
            return runs_of

    _run_groups(decode(blob), Width1(None), receiver, Vocabularies())
    assert ran == [("a", 101), ("b", 101), ("c", 102), ("d", 103), ("e", 103), ("f", 103), ("g", 101)]
    _, received_acks, _ = receiver.take()
    assert xor_of([sent_acks, received_acks]) == {0xA: 0, 0xB: 0, 102: 0xBEEF}


def words_sent(sender, roots, words, task=3):
    """One frame's crossing of `words` (one run on `roots`) encoded: (its group, its blob)."""
    crossing = sender.crossing(task, "lower", 1, "default", None)
    for word in words:
        append(crossing, roots, (word,))
    _, _, [(_, _, blob)] = sender.encoded()
    [group] = decode(blob)
    return group, blob


class Received:
    """Stands in for the worker's Chains: what each width-1 run delivered, as (value, roots)."""

    tasks = {3: type("Task", (), {"component": "count"})()}

    def __init__(self):
        self.ran, self.items = [], []

    def run_runs(self, task, source, source_task, stream, width):
        assert width == "tuples"

        def runs_of(items, roots_of, counts, ack):
            self.items.append(items)
            start = 0
            for root, n in zip(roots_of, counts):
                self.ran += [(item, root) for (item,) in items[start:start + n]]
                start += n
        return runs_of


def test_words_cross_as_numbers_and_each_word_travels_once_per_vocabulary():
    """Str values through a crossing go as their numbers in the crossing's vocabulary; a blob
    carries only the words the receiver has not had, and the receiver hands on its own copy of
    each word, the same object for every delivery of it (its hash known), in one values tuple."""
    sender, receiver, vocabularies = EventSink(lambda task: 1), EventSink(lambda task: 0), Vocabularies()
    chains = Received()
    first, blob1 = words_sent(sender, (5,), ["the", "cat", "the"])
    assert first[6] == [0, 1, 0] and first[10][1:] == [0, ["the", "cat"]]
    second, blob2 = words_sent(sender, (6,), ["cat", "sat", "the"])
    assert second[6] == [1, 2, 0] and second[10] == [first[10][0], 2, ["sat"]]  # only the new word
    for blob in (blob1, blob2):
        _run_groups(decode(blob), chains, receiver, vocabularies)
    assert chains.ran == [("the", 5), ("cat", 5), ("the", 5), ("cat", 6), ("sat", 6), ("the", 6)]
    assert chains.ran[0][0] is chains.ran[2][0] is chains.ran[5][0]
    assert chains.items[0][0] is chains.items[0][2]  # ("the",): one values tuple for both deliveries


def test_a_worker_started_again_gets_every_word_again_and_an_old_blob_fails_its_trees():
    """The receiving worker was started again (a new process knows no words): the sender's
    vocabulary of crossings to it starts over (`restarted`), and the next blob carries every
    word again. A blob made before the sender heard of it cannot be read there: each of its
    runs fails its roots (their trees run again), and the ids that hold its trees are acked."""
    sender = EventSink(lambda task: 1)
    words_sent(sender, (5,), ["the", "cat"])
    stale, stale_blob = words_sent(sender, (6,), ["cat", "sat"])  # base 2: needs the first blob's words
    sender.restarted(0)  # another worker: nothing changes
    kept, _ = words_sent(sender, (7,), ["sat"])
    assert kept[10][1:] == [3, []] and kept[6] == [2]
    sender.restarted(1)
    fresh, fresh_blob = words_sent(sender, (8,), ["sat", "the"])
    assert fresh[10][0] != stale[10][0] and fresh[10][1:] == [0, ["sat", "the"]] and fresh[6] == [0, 1]

    receiver, chains, vocabularies = EventSink(lambda task: 0), Received(), Vocabularies()  # the new process
    _run_groups(decode(stale_blob), chains, receiver, vocabularies)
    assert chains.ran == []
    events, acks, _ = receiver.take()
    assert [(e[0], e[1], e[4], e[5]) for e in events] == [("f", (6,), "count", 3)]
    assert "does not hold" in events[0][2]
    assert acks[::2] == [6] and acks[1] == stale[9][1]  # the id that held tree 6 open, acked
    _run_groups(decode(fresh_blob), chains, receiver, vocabularies)
    assert chains.ran == [("sat", 8), ("the", 8)]

    untracked = EventSink(lambda task: 1)  # reliability "none": no roots to fail, an error reported
    words_sent(untracked, (), ["a"])
    _, stale_untracked = words_sent(untracked, (), ["a", "b"])
    _run_groups(decode(stale_untracked), chains, receiver, Vocabularies())
    events, _, _ = receiver.take()
    assert [(e[0], e[1]) for e in events] == [("f", ())] and chains.ran == [("sat", 8), ("the", 8)]


def test_values_that_are_no_words_or_mostly_new_travel_as_they_are(monkeypatch):
    """A crossing whose values are not all str sends them as they are, and stops coding; so
    does one whose values are mostly new after TRIAL of them (ids: each would travel once
    anyway, and looking them up costs more than it saves). A vocabulary that would hold more
    than VOCABULARY words starts over with a new generation."""
    from consecution.runtime import vocabulary

    sender = EventSink(lambda task: 1)
    mixed, _ = words_sent(sender, (5,), ["a", 7, "b"])
    assert mixed[6] == ["a", 7, "b"] and mixed[10] is None
    later, _ = words_sent(sender, (5,), ["a", "b"])
    assert later[6] == ["a", "b"] and later[10] is None  # coding stopped for this crossing

    monkeypatch.setattr(vocabulary, "TRIAL", 6)
    ids = EventSink(lambda task: 1)
    coded, _ = words_sent(ids, (5,), [f"id{i}" for i in range(6)])
    assert coded[10] is not None  # the trial's blob is coded
    plain, _ = words_sent(ids, (5,), ["id6", "id7"])
    assert plain[6] == ["id6", "id7"] and plain[10] is None

    monkeypatch.setattr(vocabulary, "VOCABULARY", 3)
    words = EventSink(lambda task: 1)
    first, _ = words_sent(words, (5,), ["a", "b", "a"])
    second, _ = words_sent(words, (5,), ["c", "d"])  # 4 words would not fit: a new generation
    assert second[10][0] != first[10][0] and second[10][1:] == [0, ["c", "d"]] and second[6] == [0, 1]


def records_loop(crossing, roots_of, words_of, group):
    """Append as a records loop does that alone appends to `crossing` (chains.py,
    `_record_spans`): where each record's deliveries start, then the span."""
    for words in words_of:
        crossing.starts.append(len(crossing.values))
        crossing.values.extend(words)
    crossing.span(roots_of, group)


def test_a_records_loops_spans_become_runs_on_each_records_root_with_one_id_per_group():
    """A records loop that alone appends to a crossing marks where each record's deliveries
    start (no test per delivery): each record with deliveries is a run on its root, records
    without are skipped, and a group gets one id per frame however many loops ran its parts."""
    sender = EventSink(lambda task: 1)
    crossing = sender.crossing(3, "lower", 1, "default", None)
    records_loop(crossing, [11, 12, 13], [["a", "b"], [], ["c"]], 0xA)
    records_loop(crossing, [14], [["d"]], 0xA)
    records_loop(crossing, [21, 22], [["e"], ["f", "g"]], 0)  # no group: each root its own tree
    _, sent_acks, [(_, count, blob)] = sender.encoded()
    [group] = decode(blob)
    assert count == 7 and group[7:9] == [[11, 13, 14, 21, 22], [2, 1, 1, 1, 2]]
    ids = group[9]
    assert ids[::2] == [0xA, 21, 22] and all(ids[1::2])
    assert xor_of([sent_acks]) == {0xA: ids[1], 21: ids[3], 22: ids[5]}
    chains = Received()
    _run_groups(decode(blob), chains, EventSink(lambda task: 0), Vocabularies())
    assert chains.ran == [("a", 11), ("b", 11), ("c", 13), ("d", 14), ("e", 21), ("f", 22), ("g", 22)]
    assert crossing.spans == [] and crossing.starts == [] and crossing.values == []


def test_spans_and_run_marks_in_one_frame_keep_each_delivery_on_its_roots_in_order():
    """Other code (a Bolt's emit, a receiving loop) marks its runs as it appends; with a records
    loop's spans in the same frame, both become runs in the order of their deliveries, and a
    delivery after a span starts a run of its own even under the roots object marked before."""
    sender = EventSink(lambda task: 1)
    crossing = sender.crossing(3, "lower", 1, "default", None)
    held = (7,)
    append(crossing, held, ("x",))
    records_loop(crossing, [11, 12], [["a"], ["b", "c"]], 0)
    append(crossing, held, ("y",))  # the same roots object as before the span
    records_loop(crossing, [13], [["d"]], 0)
    _, _, [(_, _, blob)] = sender.encoded()
    chains = Received()
    _run_groups(decode(blob), chains, EventSink(lambda task: 0), Vocabularies())
    assert chains.ran == [("x", 7), ("a", 11), ("b", 12), ("c", 12), ("y", 7), ("d", 13)]


def test_a_records_loop_over_no_record_or_with_nothing_to_cross_leaves_no_span():
    sender = EventSink(lambda task: 1)
    crossing = sender.crossing(3, "lower", 1, "default", None)
    crossing.span([], 0xA)
    records_loop(crossing, [11, 12], [[], []], 0xA)
    assert crossing.spans == [] and sender.encoded()[2] == []


def test_a_numbered_pick_gives_tasks_here_as_negatives_and_words_elsewhere_their_numbers():
    """A fields grouping whose one task elsewhere is fed through a crossing picks, for a word,
    ~task for a task here and the word's number in the crossing's vocabulary for the task
    elsewhere (the generated chain appends it as it is). The numbers ship with the words the
    receiver lacks; a crossing that also got values tuples from other code ships words and
    tuples instead; the vocabulary starts over in place, emptying the picks with it."""
    from consecution.runtime.routing import stable_hash
    from consecution.runtime.vocabulary import Numbered

    sender = EventSink(lambda task: 1)
    crossing = sender.crossing(6, "lower", 4, "default", None)
    pick = Numbered((5, 6), 6, crossing.vocabulary)
    words = [f"w{i}" for i in range(12)]
    picks = [pick(w) for w in words]
    remote = [w for w in words if stable_hash((w,)) % 2 == 1]
    assert picks == [remote.index(w) if w in remote else ~5 for w in words]
    assert pick.memo == dict(zip(words, picks)) and pick.memo is crossing.vocabulary.codes

    crossing.vocabulary.numbered = True
    for w in remote:
        append(crossing, (9,), (pick.memo[w],))
    _, _, [(_, _, blob)] = sender.encoded()
    [group] = decode(blob)
    assert group[5] == 1 and group[6] == list(range(len(remote))) and group[10][1:] == [0, remote]
    chains = Received()
    _run_groups([group], chains, EventSink(lambda task: 0), Vocabularies())
    assert [w for w, _ in chains.ran] == remote

    append(crossing, (9,), (pick.memo[remote[0]],))
    crossing.values.append((7, 8))  # a values tuple from other code (no new run: same roots)
    crossing.nested = True
    _, _, [(_, _, blob)] = sender.encoded()
    [group] = decode(blob)
    assert group[5] is None and group[6] == [remote[0], [7, 8]] and group[10] is None

    codes = crossing.vocabulary.codes
    crossing.vocabulary.start()
    assert codes is crossing.vocabulary.codes and pick.memo == {} and pick(remote[1]) == 0
