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
