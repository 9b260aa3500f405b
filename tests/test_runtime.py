"""Runtime semantics in every mode (the conformance suite): acking, replay, timeouts,
backpressure, finish order, reliability levels, the failure stream, groupings at run time.

Bolts report what they saw by emitting on a `probe` stream that nothing subscribes to; the
run collects every emit (`collect=True`), in every mode, so the tests read the same
observations whether a bolt ran in this thread, on a thread pool or in a worker process.
"""
import collections

import pytest

from consecution import Bolt, CodecError, FieldError, Spout, Topology, TopologyError, UserCodeError, chunk
from consecution.runtime import Scheduler, stable_hash
from consecution.runtime.routing import FieldsPick
from consecution.testing import run_local as _run_local

MODES = ["single", "thread", "process", "ray"]
REMOTE = ("process", "ray")  # modes whose bolts run in other processes


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def run_in(mode):
    def run(topology, **options):
        return _run_local(topology, mode=mode, workers=2, **options)
    return run


def probes(result, component):
    return [values[0] if len(values) == 1 else values for values in result.emitted(component, "probe")]


class Numbers(Spout):
    """Emits 0..n-1 with msg ids "m<i>", and records acks, fails and outstanding counts."""

    fields = ("n",)

    def __init__(self, n):
        self.n = n

    def open(self, context):
        self.i = 0
        self.acked, self.failed, self.outstanding_at_call = [], [], []

    def next_tuple(self):
        self.outstanding_at_call.append(self.i - len(self.acked) - len(self.failed))
        if self.i >= self.n:
            raise StopIteration
        self.emit((self.i,), msg_id=f"m{self.i}")
        self.i += 1

    def ack(self, msg_id):
        self.acked.append(msg_id)

    def fail(self, msg_id, error):
        self.failed.append((msg_id, error))


class FailOn(Bolt):
    """Raises for the values in `bad` the first `times` times it sees each; probes each value."""

    streams = {"default": ("n",), "probe": ("n",)}

    def __init__(self, bad, times=10**9):
        self.bad, self.times, self.seen = set(bad), times, {}

    def process(self, tup):
        n = tup["n"]
        self.emit((n,), stream="probe", anchors=())
        self.seen[n] = self.seen.get(n, 0) + 1
        if n in self.bad and self.seen[n] <= self.times:
            raise ValueError(f"bad number {n}")
        self.emit((n,))


def pipeline(spout, *bolts, **settings):
    settings.setdefault("retry_backoff", 0)
    t = Topology("test", **settings)
    t.spout("numbers", spout)
    source = "numbers"
    for i, bolt in enumerate(bolts):
        name = f"b{i}"
        t.bolt(name, bolt).shuffle_grouping(source)
        source = name
    return t


def test_every_tree_completes_and_the_spout_gets_each_ack(mode):
    spout = Numbers(20)
    result = run_in(mode)(pipeline(spout, FailOn(()), FailOn(())))
    assert result.completed == result.roots == 20
    assert sorted(spout.acked) == sorted(f"m{i}" for i in range(20))
    assert spout.failed == []
    assert result.fully_processed and result.exit_code == 0


def test_tree_is_incomplete_while_a_bolt_holds_one_of_its_tuples(mode):
    class Hold(Bolt):
        fields = ("n",)
        auto_ack = False

        def prepare(self, context):
            self.held = []

        def process(self, tup):
            self.held.append(tup)
            self.emit((tup["n"],))  # anchored to the held input: the tree still waits for it
            if len(self.held) == 3:
                if mode not in REMOTE:  # the spout lives in this process, the bolt may not
                    assert spout.acked == []  # nothing complete while all three are held
                for t in self.held:
                    self.ack(t)
                self.held = []

    spout = Numbers(3)
    result = run_in(mode)(pipeline(spout, Hold(), FailOn(())))
    assert sorted(spout.acked) == ["m0", "m1", "m2"] and result.completed == 3


def test_failed_tuple_is_replayed_until_max_retries_then_given_up(mode):
    spout, failing = Numbers(5), FailOn({3})
    result = run_in(mode)(pipeline(spout, failing, max_retries=2))
    assert probes(result, "b0").count(3) == 3  # the first attempt and two replays
    assert result.given_up == 1 and result.replayed == 2 and result.completed == 4
    assert [m for m, _ in spout.failed] == ["m3"] and "bad number 3" in spout.failed[0][1]
    letter = result.failures[0]
    assert letter.record.values == (3,) and letter.record.attempts == 3
    assert letter.component == "b0" and letter.error == "ValueError: bad number 3"
    assert "raise ValueError" in letter.traceback and letter.task is not None
    assert result.exit_code == 3 and not result.fully_processed


def test_transient_failure_is_replayed_and_then_completes(mode):
    spout, failing = Numbers(5), FailOn({1, 4}, times=2)
    collected = run_in(mode)(pipeline(spout, failing, FailOn(()), max_retries=3))
    assert collected.given_up == 0 and collected.completed == 5 and collected.replayed == 4
    assert sorted(v for (v,) in collected.emitted("b1")) == [0, 1, 2, 3, 4]
    assert collected.exit_code == 0


def test_a_failure_downstream_fails_the_whole_tree_from_its_root(mode):
    class Fan(Bolt):
        fields = ("n",)

        def process(self, tup):
            for k in range(3):
                self.emit((tup["n"] * 10 + k,))

    spout, failing = Numbers(2), FailOn({11}, times=1)
    result = run_in(mode)(pipeline(spout, Fan(), failing))
    assert result.replayed == 1 and result.given_up == 0
    # root 1 was replayed whole: its three children came through the failing bolt twice
    seen = collections.Counter(probes(result, "b1"))
    assert seen[10] == 2 and seen[12] == 2 and seen[0] == 1


def test_tree_not_complete_within_message_timeout_is_failed_and_replayed(mode):
    class Forget(Bolt):
        auto_ack = False

        def process(self, tup):
            pass  # never acks

    spout = Numbers(1)
    result = run_in(mode)(pipeline(spout, Forget(), message_timeout=0.2, max_retries=1))
    assert result.replayed == 1 and result.given_up == 1
    assert "timed out" in result.failures[0].error and spout.failed[0][0] == "m0"


def test_a_bolt_that_emits_then_fails_its_input_leaves_nothing_to_the_next_input(mode):
    """The children it emitted before failing its input go with it: the next input's tree
    gets none of their ids, completes, and nothing times out."""
    class Picky(Bolt):
        def process(self, tup):
            self.emit((tup[0],))
            if tup[0] % 3 == 0:
                self.fail(tup, "every third")

    class Holder(Bolt):
        auto_ack = False  # never fused: what Picky emits to it is queued, with an id

        def process(self, tup):
            self.ack(tup)

    t = Topology("picky", message_timeout=3, max_retries=0)
    t.spout("numbers", Numbers(30))
    t.bolt("picky", Picky()).shuffle_grouping("numbers")
    t.bolt("holder", Holder()).shuffle_grouping("picky")
    result = run_in(mode)(t)
    assert result.completed == 20 and result.given_up == 10
    assert all(f.error == "every third" for f in result.failures)


def test_max_pending_bounds_the_trees_in_flight_per_spout_task(mode):
    spout = Numbers(40)
    t = Topology("pending", max_pending=5)
    t.spout("numbers", spout)
    t.bolt("batch", chunk(5).nodes[0].obj).shuffle_grouping("numbers")
    result = run_in(mode)(t)
    assert result.completed == 40
    assert max(spout.outstanding_at_call) == 4

    unbounded = Numbers(40)
    t = Topology("unbounded")
    t.spout("numbers", unbounded)
    t.bolt("batch", chunk(50).nodes[0].obj).shuffle_grouping("numbers")
    run_in(mode)(t)
    assert max(unbounded.outstanding_at_call) == 40  # held until the last partial batch


@pytest.mark.parametrize("reliability", ["none", "confirm", "track", "replay"])
def test_reliability_levels_all_process_a_clean_run_fully(reliability, mode):
    result = run_in(mode)(pipeline(Numbers(10), FailOn(()), reliability=reliability))
    assert sorted(result.emitted("b0")) == [(i,) for i in range(10)]
    assert result.exit_code == 0 and result.fully_processed


def test_reliability_none_tracks_nothing_but_counts_errors(mode):
    class Look(Bolt):
        streams = {"probe": ("id",)}

        def process(self, tup):
            self.emit((tup.id,), stream="probe", anchors=())
            if tup["n"] == 2:
                raise RuntimeError("boom")

    spout = Numbers(4)
    result = run_in(mode)(pipeline(spout, Look(), reliability="none"))
    assert probes(result, "b0") == [None] * 4 and spout.acked == [] and result.completed == 0
    assert result.errors == 1 and result.replayed == 0 and result.exit_code == 3


def test_reliability_confirm_reports_without_replaying(mode):
    spout, failing = Numbers(6), FailOn({2, 5})
    result = run_in(mode)(pipeline(spout, failing, reliability="confirm", max_retries=5))
    assert probes(result, "b0").count(2) == 1 and result.replayed == 0
    assert result.given_up == 2 and result.completed == 4 and not result.fully_processed
    assert result.exit_code == 3


def test_reliability_track_keeps_the_last_failures_only(mode):
    failing = FailOn({1, 2, 3, 4})
    t = pipeline(Numbers(6), failing, reliability="track", track_last=2)
    scheduler = Scheduler(t, mode=mode, workers=2, collect=True)
    result = scheduler.run()
    assert result.given_up == 4 and result.replayed == 0
    kept = [letter.record.values for letter in scheduler.log.dead_letters]
    assert kept == [(3,), (4,)]


def test_failure_stream_receives_each_given_up_record(mode):
    class Errors(Bolt):
        streams = {"probe": ("fields", "values", "older")}

        def process(self, tup):  # "root" is the older name of the field "seq"
            self.emit((list(tup.fields), list(tup.values), tup["root"] == tup["seq"]), stream="probe", anchors=())

    t = pipeline(Numbers(4), FailOn({1}), max_retries=1)
    t.bolt("errors", Errors()).failure_grouping()
    got = probes(run_in(mode)(t), "errors")
    assert len(got) == 1
    tup = dict(zip(*got[0][:2]))
    assert got[0][2] is True and isinstance(tup["seq"], int) and "root" not in tup
    assert tup["values"] == [1] and tup["component"] == "b0" and tup["spout"] == "numbers"
    assert tup["attempts"] == 2 and "bad number 1" in tup["error"] and "Traceback" in tup["traceback"]


def test_finish_runs_in_topological_order_and_its_tuples_flow_before_the_next_finish(mode):
    events = []

    class Sum(Bolt):
        fields = ("total",)

        def prepare(self, context):
            self.total = 0

        def process(self, tup):
            self.total += tup[0]

        def finish(self):
            events.append("sum.finish")
            self.emit((self.total,))

        def cleanup(self):
            events.append("sum.cleanup")

    class Sink(Bolt):
        streams = {"probe": ("event",)}

        def process(self, tup):
            events.append(f"sink.got {tup['total']}")
            self.emit((f"got {tup['total']}",), stream="probe", anchors=())

        def finish(self):
            events.append("sink.finish")
            self.emit(("finish",), stream="probe", anchors=())

        def cleanup(self):
            events.append("sink.cleanup")

    t = Topology("finish")
    t.spout("numbers", range(5))
    t.bolt("sink", Sink()).shuffle_grouping("sum")  # declared before its source on purpose
    t.bolt("sum", Sum()).shuffle_grouping("numbers")
    result = run_in(mode)(t)
    assert probes(result, "sink") == ["got 10", "finish"]  # the total arrived before sink.finish
    if mode not in REMOTE:  # in process and ray mode the bolts ran in a worker: no events here
        assert events[:3] == ["sum.finish", "sink.got 10", "sink.finish"]
        assert sorted(events[3:]) == ["sink.cleanup", "sum.cleanup"]
    assert result.roots == 6 and result.completed == 6  # five spout tuples and the finish tuple


def test_tuples_emitted_in_finish_are_tracked_and_replayed(mode):
    class Total(Bolt):
        fields = ("n",)

        def process(self, tup):
            pass

        def finish(self):
            self.emit((99,))

    failing = FailOn({99}, times=1)
    result = run_in(mode)(pipeline(Numbers(3), Total(), failing))
    assert probes(result, "b1").count(99) == 2 and result.replayed == 1 and result.given_up == 0


class Pair(Bolt):
    """A join: emits the sum of every two inputs, anchored to both, and acks them by hand."""

    fields = ("n",)
    auto_ack = False

    def prepare(self, context):
        self.waiting = None

    def process(self, tup):
        if self.waiting is None:
            self.waiting = tup
            return
        first, self.waiting = self.waiting, None
        self.emit((first[0] + tup[0],), anchors=(first, tup))
        self.ack(first)
        self.ack(tup)


def test_join_anchored_to_two_roots_fails_both_when_it_fails(mode):
    spout, failing = Numbers(2), FailOn({1}, times=1)  # 0 + 1 = 1 fails once
    result = run_in(mode)(pipeline(spout, Pair(), failing))
    assert result.failed == 2 and result.replayed == 2 and result.given_up == 0
    assert sorted(spout.acked) == ["m0", "m1"]


class Where(Bolt):
    """Emits each input's first value with the index of the task that got it."""

    fields = ("value", "task")

    def prepare(self, context):
        self.task = context.task_index

    def process(self, tup):
        self.emit((tup[0], self.task))


def test_fields_grouping_sends_equal_keys_to_one_task_and_all_grouping_to_every_task(mode):
    words = ["a", "b", "c", "a", "b", "c", "d"] * 5
    t = Topology("groupings")
    t.spout("words", words, fields=("word",))
    t.bolt("by_word", Where(), parallelism=3).fields_grouping("words", "word")
    t.bolt("to_all", Where(), parallelism=3).all_grouping("words")
    t.bolt("to_one", Where(), parallelism=3).global_grouping("words")
    result = run_in(mode)(t)
    tasks_of = {}
    for word, task in result.emitted("by_word"):
        tasks_of.setdefault(word, set()).add(task)
    assert all(len(tasks) == 1 for tasks in tasks_of.values())
    assert len(result.emitted("to_all")) == 3 * len(words)
    assert {task for _, task in result.emitted("to_one")} == {0}


def test_a_fields_grouping_picks_the_task_stable_hash_names_for_every_key_kind(mode):
    """Remembered picks (str keys) and computed ones (1, True and 1.0: one dict key, three
    encodings) both name the task of stable_hash, the same in every mode and process."""
    keys = [f"w{i}" for i in range(40)] + [1, True, 1.0, 2, None, b"x"]
    t = Topology("picks")
    t.spout("keys", keys * 3, fields=("key",))
    t.bolt("by_key", Where(), parallelism=3).fields_grouping("keys", "key")
    result = run_in(mode)(t)
    got = {(repr(key), task) for key, task in result.emitted("by_key")}
    assert got == {(repr(key), stable_hash((key,)) % 3) for key in keys}


def test_the_memo_of_fields_picks_stays_bounded_and_right():
    pick = FieldsPick((7, 8, 9), size=4)
    words = [f"w{i}" for i in range(10)]
    for word in words * 2:
        task = pick.memo.get(word) or pick(word)
        assert task == (7, 8, 9)[stable_hash((word,)) % 3]
        assert len(pick.memo) <= 4
    assert pick(1) == (7, 8, 9)[stable_hash((1,)) % 3] and 1 not in pick.memo


def test_direct_and_custom_groupings_pick_the_tasks(mode):
    class Director(Bolt):
        fields = ("n",)

        def prepare(self, context):
            self.targets = context.tasks_of("direct")

        def process(self, tup):
            self.emit_direct(self.targets[-1], (tup[0],))

    t = Topology("direct")
    t.spout("numbers", range(6))
    t.bolt("director", Director()).shuffle_grouping("numbers")
    t.bolt("direct", Where(), parallelism=3).direct_grouping("director")
    t.bolt("custom", Where(), parallelism=3).custom_grouping("numbers", lambda tup, n: tup[0] % 2)
    result = run_in(mode)(t)
    assert {task for _, task in result.emitted("direct")} == {2}
    assert {(n, task) for n, task in result.emitted("custom")} == {(n, n % 2) for n in range(6)}


def test_each_task_gets_its_own_copy_of_a_parallel_component(mode):
    class Remember(Bolt):
        fields = ("count",)

        def prepare(self, context):
            self.count = 0

        def process(self, tup):
            self.count += 1

        def finish(self):
            self.emit((self.count,))

    template = Remember()
    t = Topology("copies")
    t.spout("numbers", range(10))
    t.bolt("remember", template, parallelism=2).shuffle_grouping("numbers")
    counts = sorted(run_in(mode)(t).emitted("remember"))
    assert len(counts) == 2 and sum(c for (c,) in counts) == 10  # two copies, each with its own count
    if mode not in REMOTE:  # round robin; process mode gives each tuple to the worker that asks first
        assert counts == [(5,), (5,)]
    assert not hasattr(template, "count")  # the template itself never ran



def test_a_shuffle_between_bolts_takes_the_tasks_in_turn_and_a_fields_grouping_keeps_its_keys(mode):
    """A function's results to a shuffled bolt of three tasks: in the generated chain, the
    outlet's round robin (each task every third tuple, in single and thread mode); what they
    emit goes on behind a fields grouping of two tasks, none lost."""
    class Seen(Bolt):
        fields = ("n", "task")

        def prepare(self, context):
            self.index = context.task_index

        def process(self, tup):
            self.emit((tup[0], self.index))

    def double(n):
        return n * 2

    def where(n, task):
        return (n % 4, task, n)

    where.fields = ("key", "task", "n")
    t = Topology("turns")
    t.spout("numbers", range(30))
    t.bolt("double", double).shuffle_grouping("numbers")
    t.bolt("seen", Seen(), parallelism=3).shuffle_grouping("double")
    t.bolt("where", where, parallelism=2).fields_grouping("seen", "n")
    result = run_in(mode)(t)
    seen = sorted(result.emitted("seen"))
    assert [n for n, _ in seen] == list(range(0, 60, 2))
    if mode not in REMOTE:  # round robin in the order of emits; process mode prefers the local task
        assert [task for _, task in seen] == [i % 3 for i in range(30)]
    assert sorted(n for _, _, n in result.emitted("where")) == list(range(0, 60, 2))


def test_values_travel_as_msgpack_in_single_mode_too(mode):
    def nest(n):
        return (n, (n, n), {"k": [n]})

    t = Topology("values")
    t.spout("numbers", [1])
    t.bolt("nest", nest).shuffle_grouping("numbers")
    assert run_in(mode)(t).emitted("nest") == [(1, [1, 1], {"k": [1]})]


def test_a_value_msgpack_cannot_encode_fails_the_tuple_naming_component_and_field(mode):
    def bad(n):
        return (n, {n})

    bad.fields = ("n", "members")
    t = Topology("codec", reliability="confirm")
    t.spout("numbers", [1])
    t.bolt("bad", bad).shuffle_grouping("numbers")
    result = run_in(mode)(t)
    assert result.given_up == 1
    error = result.failures[0].error
    assert error.startswith("CodecError") and "'bad'" in error and "'members'" in error


def test_emitting_more_values_than_declared_fields_fails_with_a_clear_error(mode):
    def three(n):
        return (n, n, n)

    three.fields = ("a", "b")
    t = Topology("arity", reliability="confirm")
    t.spout("numbers", [1])
    t.bolt("three", three).shuffle_grouping("numbers")
    result = run_in(mode)(t)
    assert "FieldError" in result.failures[0].error and "'three'" in result.failures[0].error
    assert issubclass(FieldError, Exception) and issubclass(CodecError, Exception)


@pytest.mark.parametrize("phase", ["prepare", "finish"])
def test_user_error_outside_tuple_processing_stops_the_run(phase, mode):
    class Broken(Bolt):
        def process(self, tup):
            pass

    def explode(*args):
        raise RuntimeError(f"broken {phase}")

    bolt = Broken()
    setattr(bolt, phase, explode)
    t = pipeline(Numbers(2), bolt)
    with pytest.raises(UserCodeError) as info:
        run_in(mode)(t)
    assert info.value.component == "b0" and info.value.phase == phase
    assert f"broken {phase}" in str(info.value) and "RuntimeError" in info.value.traceback


def test_stop_drains_in_flight_trees_and_skips_finish(mode):
    class Endless(Spout):
        fields = ("n",)

        def open(self, context):
            self.i = 0

        def next_tuple(self):
            self.i += 1
            self.emit((self.i,))
            if self.i == 50:
                scheduler.stop()

    class Sink(Bolt):
        streams = {"probe": ("event",)}

        def process(self, tup):
            pass

        def finish(self):
            self.emit(("finish",), stream="probe", anchors=())

    t = Topology("endless")
    t.spout("numbers", Endless())
    t.bolt("sink", Sink()).shuffle_grouping("numbers")
    scheduler = Scheduler(t, mode=mode, workers=2, collect=True)
    result = scheduler.run()
    assert result.status == "stopped" and result.roots == 50 and result.completed == 50
    assert probes(result, "sink") == [] and result.exit_code == 0


def test_a_task_sees_its_inputs_in_the_order_they_were_emitted(mode):
    class Echo(Bolt):
        fields = ("n",)

        def process(self, tup):
            self.emit((tup[0],))

    t = Topology("order")
    t.spout("numbers", range(300))
    t.bolt("first", Echo()).shuffle_grouping("numbers")
    t.bolt("second", Echo()).shuffle_grouping("first")
    result = run_in(mode)(t)
    assert result.emitted("second") == [(i,) for i in range(300)]


def test_every_method_of_a_task_runs_on_one_thread(mode):
    """sqlite3 refuses a connection used from another thread than the one that opened it."""
    import sqlite3

    class Store(Bolt):
        fields = ("n",)

        def prepare(self, context):
            self.db = sqlite3.connect(":memory:")
            self.db.execute("CREATE TABLE t (n INTEGER)")

        def process(self, tup):
            self.db.execute("INSERT INTO t VALUES (?)", (tup[0],))

        def finish(self):
            self.emit((self.db.execute("SELECT count(*) FROM t").fetchone()[0],))

        def cleanup(self):
            self.db.close()

    t = Topology("threads", reliability="confirm")
    t.spout("numbers", range(50))
    t.bolt("store", Store(), parallelism=3).shuffle_grouping("numbers")
    result = run_in(mode)(t)
    assert result.given_up == 0 and sum(n for (n,) in result.emitted("store")) == 50


def test_a_bolt_that_keeps_its_input_tuples_finds_each_with_its_own_values(mode):
    """The runtime reuses a Tuple object for the next input only when the bolt kept no
    reference to it: kept tuples keep their values, in every mode."""
    class Keep(Bolt):
        fields = ("values",)

        def prepare(self, context):
            self.kept = []

        def process(self, tup):
            if tup[0] % 2 == 0:
                self.kept.append(tup)

        def finish(self):
            self.emit(([t[0] for t in self.kept],), anchors=())

    def double(n):
        return n * 2

    t = Topology("keep")
    t.spout("numbers", range(10))
    t.bolt("double", double).shuffle_grouping("numbers")
    t.bolt("keep", Keep()).shuffle_grouping("double")
    assert run_in(mode)(t).emitted("keep") == [([0, 2, 4, 6, 8, 10, 12, 14, 16, 18],)]


class FailsFirst(Bolt):
    """Fails the first attempt of each value; then emits the value with the tuple's seqs."""

    streams = {"default": ("n", "seqs")}

    def prepare(self, context):
        self.seen = {}

    def process(self, tup):
        self.seen.setdefault(tup[0], []).append(list(tup.seqs))
        if len(self.seen[tup[0]]) == 1:
            raise ValueError("the first attempt fails")
        self.emit((tup[0], self.seen[tup[0]]))


def test_a_tuples_seqs_are_its_records_and_stay_the_same_on_a_replay(mode):
    t = Topology("seqs", max_retries=2, retry_backoff=0)
    t.spout("numbers", range(20))
    t.bolt("flaky", FailsFirst()).shuffle_grouping("numbers")
    result = run_in(mode)(t)
    assert result.replayed == 20 and result.completed == 20
    seen = {n: attempts for n, attempts in result.emitted("flaky")}
    # record n+1 (seqs count from 1); the replay, a new tree, carries the same seq
    assert seen == {n: [[n + 1], [n + 1]] for n in range(20)}


class Ticking(Bolt):
    """Counts its ticks, emits one tuple per tick (a tree of its own) and passes inputs on."""

    tick_every = 0.25
    fields = ("what",)

    def prepare(self, context):
        self.ticks = 0

    def tick(self):
        self.ticks += 1
        self.emit((f"tick {self.ticks}",))

    def process(self, tup):
        self.emit(("input",))


class Slowly(Spout):
    """Emits n numbers, one every `pause` seconds."""

    fields = ("n",)

    def __init__(self, n, pause):
        self.n, self.pause = n, pause

    def open(self, context):
        self.i, self.next = 0, 0.0

    def next_tuple(self):
        import time
        if self.i >= self.n:
            raise StopIteration
        if time.monotonic() >= self.next:
            self.next = time.monotonic() + self.pause
            self.emit((self.i,))
            self.i += 1


def test_a_bolt_with_tick_every_gets_ticks_while_the_run_is_up_in_every_mode(mode):
    """A run of about 2 s (20 inputs 0.1 s apart) with ticks every 0.25 s: about 8 ticks, each
    emitting a tuple that starts a tree of its own and reaches the next bolt; the inputs too."""
    t = Topology("ticks", max_retries=0)
    t.spout("numbers", Slowly(20, 0.1))
    t.bolt("ticking", Ticking()).shuffle_grouping("numbers")
    t.bolt("sink", lambda what: None).shuffle_grouping("ticking")
    result = run_in(mode)(t)
    emitted = [values[0] for values in result.emitted("ticking")]
    ticks = [w for w in emitted if w.startswith("tick")]
    assert emitted.count("input") == 20
    assert 5 <= len(ticks) <= 10, ticks  # 2 s / 0.25 s, give or take a start and a busy loop
    assert ticks == [f"tick {i}" for i in range(1, len(ticks) + 1)]
    assert result.roots == 20 + len(ticks) and result.completed == result.roots


def test_tick_every_must_be_a_positive_number_of_seconds():
    class Bad(Bolt):
        tick_every = 0

        def process(self, tup):
            pass
    t = Topology("bad")
    t.spout("numbers", [1])
    t.bolt("bad", Bad()).shuffle_grouping("numbers")
    with pytest.raises(TopologyError, match="component 'bad': tick_every must be a positive number of seconds"):
        Scheduler(t)
