"""Single mode's direct calls (fused deliveries, function chains) give the same results as
queued deliveries: the same outputs, the same failures, replays and dead letters.

These runs do not collect outputs (collecting turns the short paths off); a sink bolt keeps
what it gets, which single mode lets the test read."""
import pytest

from consecution import Bolt, Topology
from consecution.runtime import Scheduler
from support import Numbers




class Sink(Bolt):
    def prepare(self, context):
        self.got = []

    def process(self, tup):
        self.got.append(tup.values)


class AckingSink(Sink):
    """Acks by hand: its inputs are queued with ids even in single mode, so the XOR of those
    ids must come back through the direct calls for the trees to complete."""

    auto_ack = False

    def prepare(self, context):
        super().prepare(context)
        self.failed_once = False

    def process(self, tup):
        if tup[0] == 31 and not self.failed_once:  # fails one tree late, after the functions ran
            self.failed_once = True
            self.fail(tup, "sink refused 31 once")
            return
        self.got.append(tup.values)
        self.ack(tup)


class Pass(Bolt):
    """A plain bolt in the middle: fused, so what it hands on comes back as an XOR value."""

    fields = ("m", "pair")

    def process(self, tup):
        self.emit(tup.values)


def build(reliability="replay", sink_class=Sink, middle=False, batches=False):
    """numbers -> explode -> flaky -> sink, with `middle` a Pass bolt before the sink, or
    ("diamond") a Pass bolt fed by flaky and by a second function after explode, so that one
    generated function holds two edges into it. `batches`: the numbers come from a range (its
    next_batch, no acks: each commit's records start in one generated loop, Chains.run_records)
    instead of a spout with msg ids and acks (one record at a time)."""
    tries = {}

    def explode(n):  # a generator function: several tuples per input
        for k in range(3):
            yield (n, k)

    def flaky(n, k):  # fails the first time it sees (n, 1) for n % 5 == 0; always for n == 7
        tries[n, k] = tries.get((n, k), 0) + 1
        if n == 7 and k == 2:
            raise ValueError("seven is poison")
        if n % 5 == 0 and k == 1 and tries[n, k] == 1:
            raise ConnectionError("transient")
        return (n * 10 + k, [n, (k,)])  # a tuple inside a value comes back as a list

    explode.fields = ("n", "k")
    flaky.fields = ("m", "pair")
    spout, sink = (None if batches else Numbers(20)), sink_class()
    t = Topology("fusion", reliability=reliability, max_retries=2, retry_backoff=0)
    t.spout("numbers", range(20) if batches else spout)
    t.bolt("explode", explode).shuffle_grouping("numbers")
    t.bolt("flaky", flaky).shuffle_grouping("explode")
    if middle == "diamond":
        def other(n, k):
            return (-n, [k])
        other.fields = ("m", "pair")
        t.bolt("other", other).shuffle_grouping("explode")
        t.bolt("pass", Pass()).shuffle_grouping("flaky").shuffle_grouping("other")
        t.bolt("sink", sink).shuffle_grouping("pass")
    elif middle:
        t.bolt("pass", Pass()).shuffle_grouping("flaky")
        t.bolt("sink", sink).shuffle_grouping("pass")
    else:
        t.bolt("sink", sink).shuffle_grouping("flaky")
    return t, spout, sink


@pytest.mark.parametrize("batches", [False, True])
@pytest.mark.parametrize("middle", [False, True, "diamond"])
@pytest.mark.parametrize("sink_class", [Sink, AckingSink])
@pytest.mark.parametrize("reliability", ["replay", "confirm", "none"])
def test_direct_calls_give_the_results_of_queued_deliveries(reliability, sink_class, middle, batches):
    outcomes = []
    for fuse in (True, False):
        t, spout, sink = build(reliability, sink_class, middle, batches)
        result = Scheduler(t, fuse=fuse, message_timeout=5).run()
        given_up = sorted(letter.record.values[0] for letter in result.failures)
        outcomes.append((sorted(map(repr, sink.got)), sorted(spout.acked) if spout else None,
                         sorted(spout.failed) if spout else given_up,
                         result.completed, result.failed, result.replayed, result.given_up, result.errors))
    fused, queued = outcomes
    assert fused == queued
    got = fused[0]
    assert "(11, [1, [1]])" in got  # normalised like msgpack in both
    if reliability == "replay":
        assert fused[2] == [7] and fused[6] == 1  # poison 7 given up, 5/10/15 replayed and done


def test_a_wrong_arity_in_a_function_chain_fails_the_tuple_with_a_field_error():
    def pair(n):
        return (n, n, n)

    def show(a, b):
        return (a,)

    pair.fields = ("a", "b")
    t = Topology("arity", reliability="confirm")
    t.spout("numbers", [1, 2])
    t.bolt("pair", pair).shuffle_grouping("numbers")
    t.bolt("show", show).shuffle_grouping("pair")
    result = Scheduler(t).run()
    assert result.given_up == 2
    assert all("FieldError" in f.error and "'pair'" in f.error for f in result.failures)


def test_a_records_loop_marks_record_starts_only_where_nothing_it_calls_can_append_too():
    """In a worker, the loop over a record group's records marks where each record's
    deliveries to another worker start (one append a record) instead of testing the roots of
    each delivery, unless something it calls may append to the same crossing with other
    anchors: a Bolt with subscribers, whose emits go through code of their own."""
    from consecution.runtime.events import EventSink
    from consecution.runtime.process import bolts_only
    from consecution.runtime.tasks import assign_tasks
    from consecution.runtime.worker import _build

    class Sink(Bolt):
        def process(self, tup):
            pass

    class Relay(Bolt):
        def process(self, tup):
            self.emit((tup[0],))

    def words(n):
        yield f"w{n}"

    def records_loop(relayed):
        """The text of worker 0's loop over records for `words`."""
        t = Topology("spans")
        t.spout("numbers", range(3))
        t.bolt("words", words, parallelism=2).shuffle_grouping("numbers")
        t.bolt("count", Sink(), parallelism=2).fields_grouping("words", "value")
        if relayed:
            t.bolt("relay", Relay(), parallelism=2).local_or_shuffle_grouping("words")
            t.bolt("sink", Sink(), parallelism=2).fields_grouping("relay", "value")
        tasks_of = assign_tasks(t)
        placement = {task_id: i % 2 for name, ids in tasks_of.items() if t.components[name].kind == "bolt"
                     for i, task_id in enumerate(ids)}
        spec = {"state_dir": None, "mode": "process", "max_pending": None, "reliability": "replay",
                "tracking": True, "collect": False, "meter": False}
        settings = {"spec": spec, "state": {}, "epochs": None, "task_timeout": None}
        mine = {task_id for task_id, k in placement.items() if k == 0}
        _, chains = _build(bolts_only(t), mine, settings, EventSink(placement.__getitem__))
        return chains.run_roots(tasks_of["words"][0], "numbers", 0, "default", True).__source__

    plain = records_loop(relayed=False)
    assert ".span(roots_of, group)" in plain and ".last" not in plain
    relayed = records_loop(relayed=True)
    assert ".span(" not in relayed and "roots is not" in relayed
