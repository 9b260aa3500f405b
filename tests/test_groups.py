"""Record groups (runtime/groups.py): in process and ray mode a commit's records for a plain
function are tracked as one tree; each record still fails alone. Every test runs in every
mode and asserts the same outcome: the groups are a cost saving, not a change of meaning."""
import collections

import pytest

from consecution import Bolt, Topology
from consecution.acker import Acker
from consecution.runtime.groups import Groups

from test_runtime import MODES, REMOTE, Numbers, Pair, run_in


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def halve(n):
    """A plain function first after the spout: its records go to workers as groups."""
    if n % 50 == 7:
        raise ValueError(f"odd one {n}")
    return n // 2


class Tally(Bolt):
    """Counts what it gets (behind a fields grouping: half of it comes from the other
    worker, through a crossing); raises for 13, every time."""

    fields = ("n",)

    def prepare(self, context):
        self.seen = collections.Counter()

    def process(self, tup):
        if tup[0] == 13:
            raise ValueError("unlucky 13")
        self.seen[tup[0]] += 1
        self.emit((tup[0],))


def test_a_record_that_fails_in_a_group_fails_alone_and_the_others_complete(mode):
    """200 records in one commit: 4 raise in the function, 2 (26 and 27 halve to 13) raise
    downstream, in a task behind a fields grouping. Those 6 are failed and replayed once,
    each with its own error; the other 194 complete once; nothing times out."""
    t = Topology("groups", max_retries=1, retry_backoff=0, message_timeout=30)
    spout = Numbers(200)
    t.spout("numbers", spout)
    t.bolt("halve", halve, parallelism=2).shuffle_grouping("numbers")
    t.bolt("tally", Tally(), parallelism=2).fields_grouping("halve", "value")
    result = run_in(mode)(t)
    bad = sorted(n for n in range(200) if n % 50 == 7) + [26, 27]
    assert result.completed == 194 and result.given_up == 6 and result.replayed == 6
    assert sorted(spout.acked) == sorted(f"m{n}" for n in range(200) if n not in bad)
    errors = collections.Counter(f.error for f in result.failures)
    assert errors == {**{f"ValueError: odd one {n}": 1 for n in (7, 57, 107, 157)}, "ValueError: unlucky 13": 2}
    assert not any("timed out" in f.error for f in result.failures)


def test_a_join_of_two_records_of_one_group_keeps_the_group_open_until_it_is_done(mode):
    """Pair anchors its output to two inputs of the same group. Counted once per root, the
    output's id would cancel out in the group and complete it early: then the failure of
    the pair's output would find no record to replay."""
    class FailOnce(Bolt):
        auto_ack = False  # not fused with Pair: its input comes in a later frame

        def prepare(self, context):
            self.failed = set()

        def process(self, tup):
            if tup[0] not in self.failed:
                self.failed.add(tup[0])
                raise ValueError(f"first time {tup[0]}")
            self.ack(tup)

    t = Topology("join", retry_backoff=0)
    spout = Numbers(2)
    t.spout("numbers", spout)
    t.bolt("same", lambda n: n).shuffle_grouping("numbers")
    t.bolt("pair", Pair()).shuffle_grouping("same")
    t.bolt("check", FailOnce()).shuffle_grouping("pair")
    result = run_in(mode)(t)
    assert result.failed == 2 and result.replayed == 2 and result.given_up == 0
    assert sorted(spout.acked) == ["m0", "m1"]


def test_a_tuple_failed_by_hand_downstream_of_a_group_settles_it(mode):
    """A bolt that acks by hand (not fused: its inputs are queued with ids) fails every third
    tuple: those records are given up, the rest complete, and no group waits for a timeout."""
    class Holder(Bolt):
        auto_ack = False

        def process(self, tup):
            if tup[0] % 3 == 0:
                self.fail(tup, "every third")
            else:
                self.ack(tup)

    t = Topology("hand", message_timeout=30, max_retries=0)
    t.spout("numbers", Numbers(60))
    t.bolt("plus", lambda n: n + 1, parallelism=2).shuffle_grouping("numbers")
    t.bolt("holder", Holder(), parallelism=2).shuffle_grouping("plus")
    result = run_in(mode)(t)
    assert result.completed == 40 and result.given_up == 20
    assert all(f.error == "every third" for f in result.failures)


def test_max_pending_counts_the_records_of_a_group_one_by_one(mode):
    spout = Numbers(40)
    t = Topology("pending", max_pending=5)
    t.spout("numbers", spout)
    t.bolt("same", lambda n: n).shuffle_grouping("numbers")
    t.bolt("hold", Hold(5)).shuffle_grouping("same")
    result = run_in(mode)(t)
    assert result.completed == 40
    assert max(spout.outstanding_at_call) == 4


class Hold(Bolt):
    """Acks its inputs by hand, `n` at a time."""

    auto_ack = False

    def __init__(self, n):
        self.n = n

    def prepare(self, context):
        self.held = []

    def process(self, tup):
        self.held.append(tup)
        if len(self.held) == self.n:
            for held in self.held:
                self.ack(held)
            self.held = []


def test_a_group_that_times_out_replays_its_records_in_flight(mode):
    """A record whose tuple is never acked times out. In process and ray mode the records of
    its group time out with it (the group's XOR cannot tell which are done) and are replayed
    too: at least once, as documented; in single and thread mode it times out alone."""
    class Forget(Bolt):
        auto_ack = False

        def process(self, tup):
            if tup[0] != 1 or self.context_index_seen:
                self.ack(tup)
            else:
                self.context_index_seen = True  # forgets the first 1 it sees, acks the replay

        def prepare(self, context):
            self.context_index_seen = False

    t = Topology("timeout", message_timeout=0.5, retry_backoff=0)
    spout = Numbers(3)
    t.spout("numbers", spout)
    t.bolt("same", lambda n: n).shuffle_grouping("numbers")
    t.bolt("forget", Forget()).shuffle_grouping("same")
    result = run_in(mode)(t)
    assert result.completed == 3 and result.given_up == 0
    assert sorted(spout.acked) == ["m0", "m1", "m2"]
    assert all("timed out" in f.error for f in result.failures)
    assert result.replayed == (3 if mode in REMOTE else 1)


def test_groups_resolve_members_and_count_an_ack_of_several_roots_once_per_group():
    acker = Acker()
    groups = Groups(acker)
    group = groups.start([11, 12, 13], spout_task=0, now=0.0)
    assert acker.pending(0) == 3 and group in acker
    # a tuple anchored to 11 and 12 (one group) and to tree 99: its id counts once on each
    assert groups.resolve([13, 5], [[(11, 12, 99), 7]]) == [group, 7 ^ 5, 99, 7]
    groups.shrink(12)  # 12 failed alone
    assert acker.pending(0) == 2
    assert acker.ack_all(groups.resolve([11, group]), now=1.0) == [group]
    assert acker.pending(0) == 0 and groups.expand([group]) == [11, 12, 13] and not groups.group_of


def test_a_run_group_finds_its_members_by_their_roots_and_counts_an_ack_once():
    from consecution.runtime.groups import BLOCK
    from consecution.runtime.commits import STEP, tree_roots
    from consecution.storage import Run

    acker = Acker()
    groups = Groups(acker)
    first_seq = (1 << BLOCK) - 3  # its 8 seqs span two blocks
    run = Run(first_seq, "numbers", 0, "default", [(n,) for n in range(8)], 0.0)
    roots = tree_roots(run.seqs, 77)
    group, entry = groups.start_run(run, roots[0], spout_task=0, now=0.0)
    assert acker.pending(0) == 8 and len(entry) == 8 and not groups.group_of  # no entry per member
    assert [groups.run_of(root)[::2] for root in roots] == [(group, seq) for seq in run.seqs]
    assert groups.run_of(roots[0] + 1) is None and groups.run_of(roots[-1] + STEP) is None  # no members
    # a tuple anchored to two members and to tree 99: its id counts once on the group
    assert groups.resolve([roots[7], 5], [[(roots[1], roots[2], 99), 7]]) == [group, 7 ^ 5, 99, 7]
    groups.fail_member(group, entry, roots[2])  # failed alone: still found, for what settles it
    assert acker.pending(0) == 7 and len(entry) == 7
    assert groups.settle([roots[2]], 3) == [group, 3]
    assert entry.in_flight() == [q for q in run.seqs if q != run.seqs[2]]
    assert acker.ack_all(groups.resolve([roots[0], group]), now=1.0) == [group]
    groups.forget_run(group)
    assert not groups.runs and not groups.blocks and groups.run_of(roots[3]) is None


def test_a_run_group_counts_its_records_in_flight_and_a_dead_worker_runs_them_again(tmp_path):
    """A spout's batch is one entry in the supervisor's trees (a RunGroup): what counts the
    records in flight (the status's pending_trees, max_pending) counts each record; a worker
    killed with a batch in flight hands every record of it to the recovery, none lost."""
    import os
    import signal
    import time

    from consecution.runtime import Scheduler
    from consecution.runtime.observe import Observer

    class Slow(Bolt):
        def process(self, tup):
            time.sleep(0.005)
            if tup[0] == 40 and not os.path.exists(tmp_path / "killed"):
                (tmp_path / "killed").write_text("")
                os.kill(os.getpid(), signal.SIGKILL)  # the worker dies with its batch in flight

    class Sample(Observer):
        """What the core counts in flight, at each of its ticks (on its own thread)."""

        def __init__(self):
            self.counts = []

        def tick(self, now):
            core = self.core
            self.counts.append((core.trees_in_flight(), len(core.trees), len(core.groups.runs),
                                core.recovery.active))

    t = Topology("runs", max_pending=100)
    t.spout("numbers", range(300))
    t.bolt("double", lambda n: n * 2, parallelism=2).shuffle_grouping("numbers")
    t.bolt("slow", Slow(), parallelism=2).fields_grouping("double", "value")
    sample = Sample()
    result = Scheduler(t, mode="process", workers=2, state_dir=str(tmp_path / "state"), observers=[sample]).run()
    assert result.completed == 300 and result.given_up == 0 and result.recovered > 0
    grouped = [(n, entries) for n, entries, runs, _ in sample.counts if runs]
    assert grouped and any(n > entries for n, entries in grouped)  # a group's records each counted
    assert max(n for n, _, _, recovering in sample.counts if not recovering) <= 100  # max_pending, per record


def test_a_fused_bolt_that_raises_after_emitting_leaves_its_group_complete(mode):
    """A fused Bolt emits (to a bolt of its own queue) and then raises: the child it emitted is
    still tracked in the record's group, so the group completes once that child is acked;
    only the raising records are given up, and nothing waits for a timeout."""
    class EmitThenRaise(Bolt):
        fields = ("n",)

        def process(self, tup):
            self.emit((tup[0],))
            if tup[0] % 4 == 0:
                raise ValueError("after emitting")

    class Sink(Bolt):
        auto_ack = False  # not fused: what EmitThenRaise emits is queued, with an id

        def process(self, tup):
            self.ack(tup)

    t = Topology("emit-raise", message_timeout=30, max_retries=0)
    t.spout("numbers", Numbers(40))
    t.bolt("same", lambda n: n).shuffle_grouping("numbers")
    t.bolt("emit", EmitThenRaise()).shuffle_grouping("same")
    t.bolt("sink", Sink()).shuffle_grouping("emit")
    result = run_in(mode)(t)
    assert result.completed == 30 and result.given_up == 10
    assert all(f.error == "ValueError: after emitting" for f in result.failures)


@pytest.mark.parametrize("rows", ["one value", "two values"])
def test_a_groups_records_reach_a_function_and_a_bolt_with_their_shape(mode, rows):
    """A commit whose records all have one value travels flat (each record's value itself, no
    array per record); any other as arrays. Either way the function and the Bolt after the
    spout get each record's values as emitted: a list or a dict as one value stays one value."""
    if rows == "one value":
        shapes = [lambda n: [n, n], lambda n: {"n": n}, lambda n: f"s{n}", lambda n: None, lambda n: b"raw",
                  lambda n: n + 0.5]
        items = [(shapes[n % len(shapes)](n),) for n in range(120)]
    else:
        items = [(f"s{n}", n) for n in range(120)]

    def echo(*values):
        return (list(values),)

    class Echo(Bolt):
        fields = ("values",)

        def process(self, tup):
            self.emit((list(tup.values),))

    t = Topology("shapes")
    t.spout("rows", items)
    t.bolt("echo", echo, parallelism=2).shuffle_grouping("rows")
    t.bolt("bolt", Echo(), parallelism=2).shuffle_grouping("rows")
    result = run_in(mode)(t, collect=True)
    expected = sorted(repr(list(values)) for values in items)
    assert sorted(repr(values) for (values,) in result.emitted("echo")) == expected
    assert sorted(repr(values) for (values,) in result.emitted("bolt")) == expected
    assert result.completed == 120


def test_tree_roots_of_a_run_are_each_records_seq_and_start_also_where_the_starts_wrap():
    from consecution.runtime.commits import START_MASK, tree_roots
    from consecution.topology.tuples import SEQ_SHIFT

    def one_by_one(seqs, start):
        return [seq << SEQ_SHIFT | s & START_MASK for seq, s in zip(seqs, range(start, start + len(seqs)))]

    for first, n, start in [(1, 512, 0), (7, 1, START_MASK), (1 << 40, 512, START_MASK - 100),
                            (99, 300, START_MASK - 299), (5, 300, 3 * (START_MASK + 1) - 1), (12, 0, 5)]:
        seqs = range(first, first + n)
        roots = tree_roots(seqs, start)
        assert roots == one_by_one(seqs, start) == tree_roots(list(seqs), start)
        assert [root >> SEQ_SHIFT for root in roots] == list(seqs)


def test_a_run_groups_records_are_acked_to_their_spout_and_counted_when_a_meter_runs(tmp_path):
    """A spout's batches with an `ack`, in process mode with a meter (metrics or the live view
    count): every record of every RunGroup reaches the spout's ack once, and the meter counts
    each as acked."""
    from consecution import Spout
    from consecution.runtime import Scheduler
    from consecution.runtime.observe import Observer

    class Acked(Spout):
        fields = ("n",)

        def open(self, context):
            self.i, self.acked = 0, []

        def next_batch(self, limit):
            if self.i >= 600:
                raise StopIteration
            rows = [(i,) for i in range(self.i, min(600, self.i + limit))]
            self.i += len(rows)
            return rows

        def ack(self, msg_id):
            self.acked.append(msg_id)

    class Counting(Observer):
        counts = True

    spout = Acked()
    t = Topology("acked")
    t.spout("numbers", spout)
    t.bolt("double", lambda n: n * 2, parallelism=2).shuffle_grouping("numbers")
    scheduler = Scheduler(t, mode="process", workers=2, state_dir=str(tmp_path / "state"), observers=[Counting()])
    result = scheduler.run()
    assert result.completed == 600
    assert len(spout.acked) == 600 and len(set(spout.acked)) == 600  # each record's seq, once
    assert scheduler.meter.spouts["numbers"][0] == 600
