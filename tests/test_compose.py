"""Composing topologies: reusable sub-graphs, `producer | topology`, named outputs written to a
durable outbox exactly once, and the `Output` spout that reads them from another topology."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from consecution import Bolt, IterableSpout, Topology, component
from consecution.runtime import Scheduler, UserCodeError, run, wait_for_fields
from consecution.spouts import Output
from consecution.storage import DurableLog, consumer_positions, register_consumer
from consecution.testing import emitted, run_local
from consecution.topology import (ComponentError, DuplicateNameError, FieldError, FieldsNotKnown, TopologyError,
                                  UnknownSourceError)
from support import Numbers, cli, logged_event, run_killing, start_cli

MODES = ["single", "thread", "process", "ray"]


def parse(x):
    return int(x)


def positive(x):
    return x if x > 0 else None


class Store(Bolt):
    fields = ("stored",)

    def process(self, tup):
        self.emit((tup[0] * 10,))


# -- reusable sub-graphs --------------------------------------------------------------------------

def test_a_sub_graph_is_a_value_used_in_several_topologies_and_twice_in_one_with_unique_names():
    clean = component(parse) | positive
    first = Topology("first", IterableSpout(["3", "-1", "4"], fields=("raw",)) | clean | Store())
    second = Topology("second", IterableSpout(["7"], fields=("raw",)) | [clean, clean | Store()])
    assert [n for n in first.topological_order()] == ["list", "parse", "positive", "store"]
    assert sorted(second.components) == ["list", "parse", "parse_2", "positive", "positive_2", "store"]
    assert emitted(first, "store") == [(30,), (40,)]
    assert emitted(second, "positive") == emitted(second, "positive_2") == [(7,)]
    assert emitted(second, "store") == [(70,)]
    assert len(clean.nodes) == 2 and not clean.edges[1:]  # composing never changed it


def test_a_sub_graph_nests_in_another_sub_graph():
    clean = component(parse) | positive
    enrich = clean | [Store(), component(lambda x: x + 1, name="plus_one")]
    t = Topology("nested", IterableSpout(["1", "0", "2"], fields=("raw",)) | enrich)
    assert emitted(t, "store") == [(10,), (20,)]
    assert emitted(t, "plus_one") == [(2,), (3,)]


# -- producer | topology --------------------------------------------------------------------------

def test_a_topology_without_spout_is_fed_by_a_producer_and_stays_reusable():
    steps = Topology("steps", component(parse) | positive | Store(), max_retries=7)
    with pytest.raises(TopologyError, match="no spout.*'parse'.*producer \\| topology"):
        steps.validate()
    fed = IterableSpout(["5", "-5", "6"], fields=("raw",)) | steps
    assert isinstance(fed, Topology) and fed.name == "steps" and fed.max_retries == 7
    assert emitted(fed, "store") == [(50,), (60,)]
    other = Numbers(3) | steps  # the same steps, another producer
    assert emitted(other, "store") == [(10,), (20,)]
    assert not steps.spouts and "numbers" not in steps.components  # unchanged


def test_an_iterable_producer_feeds_every_entry_of_a_broadcast():
    steps = Topology("fan", [component(lambda x: x * 2, name="double"), component(lambda x: -x, name="negate")])
    fed = range(3) | steps
    assert emitted(fed, "double") == [(0,), (2,), (4,)]
    assert emitted(fed, "negate") == [(0,), (-1,), (-2,)]


def test_entries_keep_their_route_and_their_fields_grouping():
    def even_odd(tup):
        return tup[0] % 2

    routed = Topology("routed", [even_odd, component(lambda x: x, name="even"), component(lambda x: x, name="odd")])
    fed = range(6) | routed
    assert emitted(fed, "even") == [(0,), (2,), (4,)] and emitted(fed, "odd") == [(1,), (3,), (5,)]

    class Seen(Bolt):
        fields = ("task", "n")

        def prepare(self, context):
            self.task = context.task_index

        def process(self, tup):
            self.emit((self.task, tup[0]))

    grouped = Topology("grouped", component(Seen(), parallelism=3, group_by="n"))
    fed = Numbers(30) | grouped
    tasks_of = {}
    for task, n in emitted(fed, "seen", mode="thread"):
        tasks_of.setdefault(n % 30, set()).add(task)
    assert fed.components["seen"].inputs[0].kind == "fields"
    assert all(len(tasks) == 1 for tasks in tasks_of.values()) and len(tasks_of) == 30


def test_only_a_spout_or_an_iterable_can_feed_a_topology_and_only_an_open_one():
    steps = Topology("steps", component(parse) | Store())
    with pytest.raises(TopologyError, match="'double' is not a spout"):
        component(lambda x: x, name="double") | steps
    with pytest.raises(TopologyError, match="only `producer \\| topology` feeds one"):
        Numbers(2) | steps | Store()
    with pytest.raises(TopologyError, match="a list is a merge of spouts.*IterableSpout"):
        ["1", "2"] | steps
    merged = [Numbers(2), component(IterableSpout([5], fields=("n",)), name="five")] | steps
    assert sorted(emitted(merged, "store")) == [(0,), (10,), (50,)]
    closed = Topology("closed", Numbers(2) | Store())
    with pytest.raises(TopologyError, match="'closed' has no entry to feed"):
        Numbers(2) | closed


# -- declaring outputs ----------------------------------------------------------------------------

class Split(Bolt):
    """Even numbers on stream "even" (field n), odd ones on "default" (field odd)."""

    streams = {"default": ("odd",), "even": ("n", "half")}

    def process(self, tup):
        if tup[0] % 2:
            self.emit((tup[0],))
        else:
            self.emit((tup[0], tup[0] // 2), stream="even")


def test_outputs_are_declared_with_a_component_and_a_stream_and_errors_name_the_place():
    t = Topology("t", Numbers(4) | Split())
    t.output("evens", "split", stream="even")
    assert t.outputs == {"evens": ("split", "even")} and tuple(t.output_fields("evens")) == ("n", "half")
    with pytest.raises(UnknownSourceError, match="output 'x' reads unknown component 'splat'"):
        t.output("x", "splat")
    with pytest.raises(UnknownSourceError, match="stream 'odd' of 'split'"):
        t.output("x", "split", stream="odd")
    with pytest.raises(DuplicateNameError, match="'evens' is already declared"):
        t.output("evens", "split")
    with pytest.raises(ComponentError, match="output name '__x'"):
        t.output("__x", "split")


def outbox(state_dir, name):
    log = DurableLog(str(state_dir), readonly=True)
    try:
        info = log.output_info(name)
        return log.read_outbox(name, 0, 10**9), info
    finally:
        log.close()


@pytest.mark.parametrize("mode", MODES)
def test_an_output_gets_each_tuple_of_its_stream_once_and_is_closed_when_the_run_completes(mode, tmp_path):
    t = Topology("t", Numbers(200) | Split())
    t.output("evens", "split", stream="even")
    result = Scheduler(t, mode=mode, state_dir=str(tmp_path / "p"), workers=2).run()
    assert result.fully_processed
    entries, info = outbox(tmp_path / "p", "evens")
    assert [seq for seq, _ in entries] == list(range(1, 101))
    assert sorted(values for _, values in entries) == [(n, n // 2) for n in range(0, 200, 2)]
    assert info["closed"] and info["fields"] == ["n", "half"] and info["next"] == 101


class Tally(Bolt):
    """Counts by parity and emits the totals from `finish`."""

    stateful = True
    fields = ("parity", "count")

    def process(self, tup):
        key = "odd" if tup[0] % 2 else "even"
        self.state[key] = self.state.get(key, 0) + 1

    def finish(self):
        for key in sorted(self.state):
            self.emit((key, self.state[key]))


@pytest.mark.parametrize("mode", MODES)
def test_what_a_bolt_emits_from_finish_reaches_its_output_before_the_output_closes(mode, tmp_path):
    t = Topology("t", Numbers(101) | Tally())
    t.output("tally", "tally")
    assert Scheduler(t, mode=mode, state_dir=str(tmp_path / "p"), workers=2).run().fully_processed
    entries, info = outbox(tmp_path / "p", "tally")
    assert entries == [(1, ("even", 51)), (2, ("odd", 50))] and info["closed"]


class Flaky(Bolt):
    """Fails the first attempt of every 7th number, and always fails 13 (dead letter)."""

    fields = ("n",)

    def prepare(self, context):
        self.failed = set()

    def process(self, tup):
        n = tup[0]
        if n == 13 or (n % 7 == 0 and n not in self.failed):
            self.failed.add(n)
            raise ValueError(f"flaky {n}")
        self.emit((n,))


@pytest.mark.parametrize("mode", MODES)
def test_an_output_keeps_nothing_of_a_rolled_back_epoch_nor_of_a_dead_letter(mode, tmp_path):
    """Failed trees roll their epoch back: the outbox gets what the replays make, once."""
    t = Topology("t", Numbers(300) | Flaky() | component(lambda n: n + 1000, name="shift"), retry_backoff=0)
    t.output("shifted", "shift")
    result = Scheduler(t, mode=mode, state_dir=str(tmp_path / "p"), workers=2).run()
    assert result.rolled_back > 0 and result.given_up == 1
    entries, _ = outbox(tmp_path / "p", "shifted")
    assert sorted(v[0] for _, v in entries) == [n + 1000 for n in range(300) if n != 13]
    assert [seq for seq, _ in entries] == list(range(1, 300))


def test_a_worker_process_that_dies_takes_its_epoch_s_outbox_with_it(tmp_path):
    """Process mode: the worker that holds the output's writer dies mid-epoch; the epoch is
    replayed and the outbox gets each value once."""
    marker = str(tmp_path / "died")

    def fragile(n):
        if n == 700 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(9)  # the worker dies with this tuple and the outbox rows of its epoch
        return n

    t = Topology("t", Numbers(2000) | component(fragile, fields=("n",)))
    t.output("numbers", "fragile")
    result = Scheduler(t, mode="process", workers=1, state_dir=str(tmp_path / "p")).run()
    assert result.fully_processed and os.path.exists(marker)
    entries, _ = outbox(tmp_path / "p", "numbers")
    assert [seq for seq, _ in entries] == list(range(1, 2001))
    assert sorted(v[0] for _, v in entries) == list(range(2000))


def test_a_run_without_a_durable_log_warns_that_its_outputs_are_not_kept(capfd):
    t = Topology("t", Numbers(3) | Split())
    t.output("evens", "split", stream="even")
    assert run_local(t).fully_processed
    assert "outputs.not_kept" in capfd.readouterr().err


# -- the Output spout -----------------------------------------------------------------------------

class Sum(Bolt):
    """Sums field 0 and counts, exactly once; writes {sum, count, seen} to `path` at finish."""

    stateful = True

    def __init__(self, path):
        self.path = path

    def process(self, tup):
        self.state["sum"] = self.state.get("sum", 0) + tup[0]
        self.state["count"] = self.state.get("count", 0) + 1

    def finish(self):
        with open(self.path, "w") as f:
            json.dump({"sum": self.state.get("sum", 0), "count": self.state.get("count", 0)}, f)


def produce(state_dir, n, name="producer"):
    t = Topology(name, IterableSpout(range(n), fields=("n",)) | component(lambda n: n * 2, name="double", fields=("value",)))
    t.output("doubled", "double")
    return Scheduler(t, state_dir=str(state_dir)).run()


def consume(producer_dir, state_dir, report, mode="single", name="consumer", **spout):
    t = Topology(name, component(Output(str(producer_dir), "doubled", **spout), name="doubled") | Sum(str(report)))
    return Scheduler(t, mode=mode, state_dir=str(state_dir), workers=2).run()


@pytest.mark.parametrize("mode", MODES)
def test_a_consumer_reads_a_closed_output_to_its_end_and_registers_its_position(mode, tmp_path):
    produce(tmp_path / "p", 500)
    result = consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json", mode)
    assert result.status == "complete" and result.fully_processed
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * sum(range(500)), "count": 500}
    assert consumer_positions(str(tmp_path / "p"), "doubled") == {"consumer.doubled": 500}
    again = consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json", mode)  # nothing new
    assert again.status == "complete" and again.roots == 0
    assert json.loads((tmp_path / "sum.json").read_text())["count"] == 500


def test_a_consumer_has_at_most_max_pending_entries_in_flight(tmp_path):
    """The spout reads the outbox in batches but emits one entry per call, so the runtime's
    max_pending bounds how far it reads ahead of the entries being processed."""
    produce(tmp_path / "p", 300)
    spout = Output(str(tmp_path / "p"), "doubled", batch=512)
    ahead = []

    class Slow(Bolt):
        def process(self, tup):
            ahead.append(spout.last - (tup["value"] // 2 + 1))  # entry seq = n + 1, value = 2n
            time.sleep(0.001)

    t = Topology("consumer", component(spout, name="doubled") | Slow(), max_pending=10)
    assert Scheduler(t, mode="thread", state_dir=str(tmp_path / "c")).run().fully_processed
    assert len(ahead) == 300 and max(ahead) < 10


def test_a_recreated_outbox_is_refused_or_read_from_its_start_never_skipped(tmp_path, capfd):
    """The producer's state directory is deleted and its topology runs again: its new outbox
    numbers from 1. The consumer's position (entry 30 of the old one) must not skip its first
    30 entries, nor make the run end at once."""
    produce(tmp_path / "p", 30)
    consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json")
    shutil.rmtree(tmp_path / "p")
    produce(tmp_path / "p", 40)
    with pytest.raises(UserCodeError, match="the outbox was recreated .* up to entry 30; pass follow_reset=True"):
        consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json")
    assert consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json", follow_reset=True).fully_processed
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * (sum(range(30)) + sum(range(40))),
                                                               "count": 70}
    assert "output.reset" in capfd.readouterr().err


def test_a_consumer_without_a_kept_position_reads_from_the_start_and_does_not_register(tmp_path, capfd):
    produce(tmp_path / "p", 20)
    for _ in range(2):
        t = Topology("quick", component(Output(str(tmp_path / "p"), "doubled"), name="doubled")
                     | Sum(str(tmp_path / "sum.json")))
        assert run_local(t).fully_processed  # no state directory
        assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * sum(range(20)), "count": 20}
    assert consumer_positions(str(tmp_path / "p"), "doubled") == {}
    assert "output.position_not_kept" in capfd.readouterr().err


def test_a_consumer_that_cannot_open_the_producer_s_log_says_so_and_keeps_trying(tmp_path, capfd):
    (tmp_path / "p" / "log").mkdir(parents=True)
    (tmp_path / "p" / "log" / "data.mdb").write_bytes(b"not an LMDB file" * 512)
    spout = Output(str(tmp_path / "p"), "doubled")  # declaring opens nothing
    with pytest.raises(ComponentError, match="Output.*cannot open the log.*not an LMDB file"):
        Scheduler(Topology("c", component(spout, name="doubled") | Sum(str(tmp_path / "sum.json"))))
    t = Topology("c", component(Output(str(tmp_path / "p"), "doubled", fields=("value",)), name="doubled")
                 | Sum(str(tmp_path / "sum.json")))
    scheduler = Scheduler(t, state_dir=str(tmp_path / "c"))
    threading.Timer(0.5, scheduler.stop).start()
    assert scheduler.run().status == "stopped"
    err = capfd.readouterr().err
    assert err.count("output.unreadable") == 1 and "cannot open the log" in err


def test_an_output_spout_reads_its_fields_when_resolved_and_checks_given_ones(tmp_path):
    spout = Output(str(tmp_path / "p"), "doubled")
    assert spout.fields is None
    with pytest.raises(FieldsNotKnown, match="the producer has not run in .*/p yet") as raised:
        spout.resolve_fields()
    assert raised.value.event == "output.waiting"
    assert raised.value.details == {"state_dir": str(tmp_path / "p"), "output": "doubled", "producer": None,
                                    "outputs": []}
    assert Output(str(tmp_path / "p"), "doubled", fields=("value",)).resolve_fields() == ("value",)
    produce(tmp_path / "p", 3)
    assert spout.resolve_fields() == ("value",) and spout.fields == ("value",)
    with pytest.raises(ComponentError, match="fields \\('a', 'b'\\) differ from the output's \\('value',\\)"):
        Output(str(tmp_path / "p"), "doubled", fields=("a", "b")).resolve_fields()
    with pytest.raises(FieldsNotKnown, match="declares no output 'dubled' \\(it has: doubled\\)") as raised:
        Output(str(tmp_path / "p"), "dubled").resolve_fields()
    assert raised.value.details["outputs"] == ["doubled"] and raised.value.details["producer"] == "producer"


def test_the_producer_trims_what_every_registered_consumer_has_passed(tmp_path):
    produce(tmp_path / "p", 100)
    outbox_id = outbox(tmp_path / "p", "doubled")[1]["id"]
    register_consumer(str(tmp_path / "p"), "doubled", "slow.doubled", 40, outbox_id)
    register_consumer(str(tmp_path / "p"), "doubled", "gone.doubled", 0, "a-former-outbox")  # ignored
    consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json")  # reads all 100
    produce(tmp_path / "p", 100)  # a new run trims at its start: up to the slowest consumer
    entries, info = outbox(tmp_path / "p", "doubled")
    assert info["trimmed"] == 40 and [seq for seq, _ in entries] == list(range(41, 101))
    register_consumer(str(tmp_path / "p"), "doubled", "slow.doubled", 100, outbox_id)
    produce(tmp_path / "p", 100)
    entries, info = outbox(tmp_path / "p", "doubled")
    assert info["trimmed"] == 100 and entries == []


def test_a_new_consumer_is_told_which_entries_were_trimmed_before_it_registered(tmp_path, capfd):
    produce(tmp_path / "p", 50)
    consume(tmp_path / "p", tmp_path / "c", tmp_path / "sum.json")
    produce(tmp_path / "p", 50)  # trims all 50
    with pytest.raises(UserCodeError, match="SourceError: .*entries 1 to 50 were trimmed before consumer 'late.doubled'"):
        consume(tmp_path / "p", tmp_path / "late", tmp_path / "late.json", name="late")
    result = consume(tmp_path / "p", tmp_path / "late2", tmp_path / "late.json", name="late2", skip_trimmed=True)
    assert result.status == "complete" and "output.skipped" in capfd.readouterr().err
    assert json.loads((tmp_path / "late.json").read_text()) == {"sum": 0, "count": 0}


def test_a_reader_follows_a_log_that_another_process_grew(tmp_path):
    """The producer resizes its LMDB map as the outbox grows; a consumer's open reader adopts
    the new size instead of failing (a writer in a child process, as under `consecution run`)."""
    writer = DurableLog(str(tmp_path), map_size=1 << 20)
    writer.declare_outputs({"big": ["blob"]})
    writer.commit()
    writer.close()
    reader = DurableLog(str(tmp_path), readonly=True, map_size=1 << 20)
    assert reader.read_outbox("big", 0, 10) == []
    script = (f"from consecution.storage import DurableLog\n"
              f"log = DurableLog({str(tmp_path)!r}, map_size=1 << 20)\n"
              f"log.declare_outputs({{'big': ['blob']}})\n"
              f"for i in range(8):\n"
              f"    log.put_outbox('big', [[bytes(500_000)] for _ in range(2)])\n"
              f"    log.commit()\n"
              f"log.close()\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=tmp_path)  # not the repo root
    entries = reader.read_outbox("big", 0, 100)
    reader.close()
    assert [seq for seq, _ in entries] == list(range(1, 17)) and len(entries[-1][1][0]) == 500_000


# -- fields resolved late: a consumer without fields= ----------------------------------------------

def late_consumer(producer_dir, report, group_by=None):
    """A consumer whose Output spout has no fields=; its output `again` re-exports them."""
    t = Topology("consumer", component(Output(str(producer_dir), "doubled"), name="doubled")
                 | component(Sum(str(report)), group_by=group_by))
    return t.output("again", "doubled")


def test_a_consumer_s_fields_are_resolved_when_it_is_validated_and_checked_downstream_then(tmp_path):
    """Before the producer declared its output, a Scheduler refuses the consumer (it never
    waits) and validate(allow_unknown=True) checks the rest; once declared, the fields reach
    the fields grouping's check (the error a consumer with fields= gets), the output that
    re-exports them, and the run."""
    good = late_consumer(tmp_path / "p", tmp_path / "sum.json", group_by="value")
    typo = late_consumer(tmp_path / "p", tmp_path / "sum.json", group_by="valeu")
    with pytest.raises(FieldsNotKnown, match="component 'doubled': .*has not run in .* yet.*wait_for_fields"):
        Scheduler(good, state_dir=str(tmp_path / "c"))
    assert typo.validate(allow_unknown=True) is typo and list(typo.unknown_fields()) == ["doubled"]
    assert typo.output_fields("again") is None
    produce(tmp_path / "p", 10)
    with pytest.raises(FieldError, match="bolt 'sum' groups on field 'valeu' of 'doubled' stream 'default', "
                                         "which declares \\('value',\\)") as late:
        typo.validate()
    assert tuple(typo.output_fields("again")) == ("value",) and typo.unknown_fields() == {}
    given = Topology("consumer", component(Output(str(tmp_path / "p"), "doubled", fields=("value",)), name="doubled")
                     | component(Sum(str(tmp_path / "sum.json")), group_by="valeu"))
    with pytest.raises(FieldError) as early:
        given.validate()
    assert str(late.value) == str(early.value)
    assert Scheduler(good, state_dir=str(tmp_path / "c")).run().fully_processed
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 90, "count": 10}


def test_wait_for_fields_logs_output_waiting_every_log_every_seconds_until_stopped(tmp_path, capfd):
    t = late_consumer(tmp_path / "p", tmp_path / "sum.json")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert wait_for_fields(t, stop, poll=0.05, log_every=0.2) is False
    assert 0.4 < time.monotonic() - started < 5
    err = capfd.readouterr().err
    assert 2 <= err.count("output.waiting") <= 4, err
    assert "component=doubled" in err and "outputs=[]" in err and "producer=None" in err
    produce(tmp_path / "p", 4)
    assert wait_for_fields(t, threading.Event()) is True
    assert "output.waiting" not in capfd.readouterr().err  # known at the first look: nothing to say


# -- two `consecution run` processes --------------------------------------------------------------

PRODUCER = """
import os, time
from consecution import IterableSpout, Topology, component

DELAY = float(os.environ.get("PRODUCER_DELAY", "0"))

def double(n):
    if DELAY:
        time.sleep(DELAY)
    return n * 2

topology = Topology("producer", IterableSpout(range(int(os.environ["N"])), fields=("n",))
                    | component(double, fields=("value",)), max_pending=50)
topology.output("doubled", "double")
"""

SUM = """
class Sum(Bolt):  # the consumers' counting bolt: its sum and count go to $REPORT at the end
    stateful = True

    def process(self, tup):
        if CONSUMER_DELAY:
            time.sleep(CONSUMER_DELAY)
        self.state["sum"] = self.state.get("sum", 0) + tup["value"]
        self.state["count"] = self.state.get("count", 0) + 1

    def finish(self):
        with open(os.environ["REPORT"], "w") as f:
            json.dump({"sum": self.state.get("sum", 0), "count": self.state.get("count", 0)}, f)
"""

CONSUMER = """
import json, os, time
from consecution import Bolt, Topology, component
from consecution.spouts import Output

CONSUMER_DELAY = float(os.environ.get("CONSUMER_DELAY", "0"))
""" + SUM + """
topology = Topology("consumer", component(Output(os.environ["PRODUCER_STATE"], "doubled", fields=("value",)),
                                          name="doubled") | Sum(), max_pending=50)
"""


@pytest.fixture
def pair(tmp_path):
    """Topology files of a producer and a consumer, the commands that run them and their env."""
    (tmp_path / "producer.py").write_text(PRODUCER)
    (tmp_path / "consumer.py").write_text(CONSUMER)
    env = dict(os.environ, N="1500", PRODUCER_STATE=str(tmp_path / "p"), REPORT=str(tmp_path / "sum.json"))

    def command(which, mode="single"):
        return ["run", f"{which}.py", "--state-dir", "p" if which == "producer" else "c", "--mode", mode,
                "--workers", "2", "--log-format", "json"]
    return command, env


def logs(tmp_path):
    return "".join((tmp_path / name).read_text()[-3000:] for name in ("producer.log", "consumer.log")
                   if (tmp_path / name).exists())


def test_a_consumer_started_first_waits_for_the_producer_and_for_its_output_to_close(tmp_path, pair):
    command, env = pair
    env.update(PRODUCER_DELAY="0.002")
    consumer = start_cli(command("consumer"), tmp_path, env, "consumer.log")
    time.sleep(1.0)
    assert consumer.poll() is None  # the producer has never run: it waits
    producer = start_cli(command("producer"), tmp_path, env, "producer.log")
    time.sleep(1.0)
    producer.send_signal(signal.SIGTERM)  # stopped, not complete: the output stays open
    assert producer.wait(timeout=30) == 0, logs(tmp_path)
    time.sleep(1.0)
    assert consumer.poll() is None, logs(tmp_path)
    log = DurableLog(str(tmp_path / "p"), readonly=True)
    info = log.output_info("doubled")
    log.close()
    assert not info["closed"] and 1 < info["next"] < 1501
    producer = start_cli(command("producer"), tmp_path, env, "producer.log")
    assert producer.wait(timeout=60) == 0, logs(tmp_path)
    assert consumer.wait(timeout=60) == 0, logs(tmp_path)
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * sum(range(1500)), "count": 1500}


@pytest.mark.parametrize("modes", [("single", "single"), ("process", "thread"), ("ray", "process")])
def test_producer_and_consumer_killed_at_random_moments_hand_off_each_entry_exactly_once(tmp_path, pair, modes):
    """Both `consecution run` processes are SIGKILLed at random moments, independently, and
    restarted with the same command until both complete: the consumer's sum and count are
    exact and the producer's outbox holds each value once, under consecutive sequence numbers."""
    command, env = pair
    env.update(PRODUCER_DELAY="0.002", CONSUMER_DELAY="0.001")
    kills = int(os.environ.get("CONSECUTION_KILLS", "4"))
    n = max(1500, 400 * kills)
    env["N"] = str(n)
    commands = {"producer": command("producer", modes[0]), "consumer": command("consumer", modes[1])}
    killed = run_killing(commands, tmp_path, env, kills, random.Random(), timeout=120)
    assert killed["producer"] >= 1 and killed["consumer"] >= 1, killed
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * sum(range(n)), "count": n}
    log = DurableLog(str(tmp_path / "p"), readonly=True)
    try:
        info = log.output_info("doubled")
        entries = log.read_outbox("doubled", info["trimmed"], 10**9)
    finally:
        log.close()
    assert info["closed"] and info["next"] == n + 1  # n entries were ever appended
    assert [seq for seq, _ in entries] == list(range(info["trimmed"] + 1, n + 1))
    assert consumer_positions(str(tmp_path / "p"), "doubled") == {"consumer.doubled": n}


def test_consecution_run_waits_for_a_producer_that_starts_later(tmp_path, pair, capfd):
    """The Python API's run() waits as `consecution run` does (a Scheduler would raise)."""
    command, env = pair
    env["N"] = "300"
    producer = start_cli(command("producer"), tmp_path, env, "producer.log")
    result = run(late_consumer(tmp_path / "p", tmp_path / "sum.json"), state_dir=str(tmp_path / "c"))
    assert result.fully_processed and producer.wait(timeout=30) == 0
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * sum(range(300)), "count": 300}
    err = capfd.readouterr().err
    assert "output.waiting" in err and "fields.resolved" in err


# -- one module declares both: the consumer has no fields= and may start first ---------------------

PAIR = """
import json, os, time
from consecution import Bolt, IterableSpout, Topology, component
from consecution.spouts import Output

PRODUCER_DELAY = float(os.environ.get("PRODUCER_DELAY", "0"))
CONSUMER_DELAY = float(os.environ.get("CONSUMER_DELAY", "0"))
FIELDS = tuple(os.environ["FIELDS"].split(",")) if os.environ.get("FIELDS") else None

def double(n):
    if PRODUCER_DELAY:
        time.sleep(PRODUCER_DELAY)
    return n * 2

producer = Topology("producer", IterableSpout(range(int(os.environ["N"])), fields=("n",))
                    | component(double, fields=("value",)), max_pending=50)
producer.output("doubled", "double")
""" + SUM + """
# no fields=: they are read from the producer's log when this topology runs (group_by checks them)
spout = Output(os.environ["PRODUCER_STATE"], os.environ.get("OUTPUT", "doubled"), fields=FIELDS)
consumer = Topology("consumer", component(spout, name="doubled") | component(Sum(), group_by="value"), max_pending=50)
"""


@pytest.fixture
def both(tmp_path):
    """pair.py declaring the producer and the consumer, the command that runs either, and the env."""
    (tmp_path / "pair.py").write_text(PAIR)
    env = dict(os.environ, N="10", PRODUCER_STATE=str(tmp_path / "p"), REPORT=str(tmp_path / "sum.json"))

    def command(which, mode="single"):
        return ["run", f"pair.py:{which}", "--state-dir", "p" if which == "producer" else "c", "--mode", mode,
                "--workers", "2", "--log-format", "json"]
    return command, env


def test_validate_and_show_say_the_fields_are_not_known_yet_and_fields_that_differ_exit_2(tmp_path, both):
    command, env = both
    validate = cli("validate", "pair.py:consumer", cwd=tmp_path, env=env)
    assert validate.returncode == 0, validate.stderr
    assert "is valid as far as it is known: 1 spouts, 1 bolts, fingerprint not known yet" in validate.stdout
    assert "component 'doubled': Output(" in validate.stdout and "the producer has not run in" in validate.stdout
    show = cli("show", "pair.py:consumer", cwd=tmp_path, env=env)
    assert show.returncode == 0, show.stderr
    assert "fingerprint not known yet" in show.stdout and "-> default (not known yet)" in show.stdout
    assert "fields not known yet: component 'doubled'" in show.stdout
    assert cli("validate", "pair.py:producer", cwd=tmp_path, env=env).returncode == 0
    assert cli(*command("producer"), cwd=tmp_path, env=env).returncode == 0
    validate = cli("validate", "pair.py:consumer", cwd=tmp_path, env=env)
    assert validate.returncode == 0 and "is valid: 1 spouts, 1 bolts, fingerprint " in validate.stdout
    assert "-> default (value)" in cli("show", "pair.py:consumer", cwd=tmp_path, env=env).stdout
    env["FIELDS"] = "a,b"
    for args in (command("consumer"), ["validate", "pair.py:consumer"], ["show", "pair.py:consumer"]):
        done = cli(*args, cwd=tmp_path, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert "fields ('a', 'b') differ from the output's ('value',)" in done.stderr


def test_a_consumer_of_an_output_the_producer_does_not_declare_waits_listing_the_outputs_there(tmp_path, both):
    """A typo shows in the first output.waiting; a new producer version could still declare it.
    SIGTERM while waiting exits 0."""
    command, env = both
    assert cli(*command("producer"), cwd=tmp_path, env=env).returncode == 0
    env["OUTPUT"] = "dubled"
    consumer = start_cli(command("consumer"), tmp_path, env, "consumer.log")
    waiting = logged_event(tmp_path / "consumer.log", "output.waiting")
    assert waiting["output"] == "dubled" and waiting["outputs"] == ["doubled"] and waiting["producer"] == "producer"
    assert waiting["state_dir"] == str(tmp_path / "p") and waiting["component"] == "doubled"
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(timeout=10) == 0
    log = (tmp_path / "consumer.log").read_text()
    assert '"run.stopped"' in log and '"run.started"' not in log


@pytest.mark.parametrize("mode", ["single", "process", "ray"])
def test_one_module_declares_both_and_the_consumer_started_first_without_fields_waits_then_survives_kills(
        tmp_path, both, mode):
    """Issue 12: the consumer (no fields=) starts before the producer has ever run and waits;
    the producer, from the same module, starts; the consumer validates with the fields it
    found and runs. Then both are SIGKILLed at random moments and restarted until both
    complete: the totals are exact and each entry was handed off once."""
    command, env = both
    kills = int(os.environ.get("CONSECUTION_KILLS", "2"))
    n = max(1500, 400 * kills)
    env.update(N=str(n), PRODUCER_DELAY="0.002", CONSUMER_DELAY="0.001")
    commands = {"producer": command("producer", mode), "consumer": command("consumer", mode)}
    consumer = start_cli(commands["consumer"], tmp_path, env, "consumer.log")
    waiting = logged_event(tmp_path / "consumer.log", "output.waiting")
    assert waiting["state_dir"] == str(tmp_path / "p") and waiting["output"] == "doubled"
    assert waiting["producer"] is None and waiting["outputs"] == []
    time.sleep(0.5)
    assert consumer.poll() is None, logs(tmp_path)
    producer = start_cli(commands["producer"], tmp_path, env, "producer.log")
    assert logged_event(tmp_path / "consumer.log", "fields.resolved")["fields"] == ["value"]
    logged_event(tmp_path / "consumer.log", "run.started")
    for proc in (consumer, producer):  # the first kill of each
        proc.kill()
        proc.wait(timeout=30)
    killed = run_killing(commands, tmp_path, env, kills, random.Random(), timeout=120)
    assert killed["producer"] >= 1 and killed["consumer"] >= 1, killed
    assert json.loads((tmp_path / "sum.json").read_text()) == {"sum": 2 * sum(range(n)), "count": n}
    log = DurableLog(str(tmp_path / "p"), readonly=True)
    try:
        info = log.output_info("doubled")
        entries = log.read_outbox("doubled", info["trimmed"], 10**9)
    finally:
        log.close()
    assert info["closed"] and info["next"] == n + 1
    assert [seq for seq, _ in entries] == list(range(info["trimmed"] + 1, n + 1))
    assert consumer_positions(str(tmp_path / "p"), "doubled") == {"consumer.doubled": n}


def test_a_consumer_of_an_output_without_declared_fields_resolves_it_and_reads_every_entry(tmp_path, run_cli):
    """The producer's stream is a plain function's, with no fields: the consumer (no `fields=`,
    started first) waits, then reads the entries as one-value tuples named `value`."""
    (tmp_path / "pair.py").write_text(textwrap.dedent("""
        import json
        from consecution import Bolt, Topology
        from consecution.spouts import Output

        def double(n):
            return n * 2

        producer = Topology("producer")
        producer.spout("numbers", list(range(100)))
        producer.bolt("double", double).shuffle_grouping("numbers")
        producer.output("doubled", "double")

        class Sum(Bolt):
            def prepare(self, context):
                self.total = 0

            def process(self, tup):
                self.total += tup["value"]

            def finish(self):
                with open("sum.json", "w") as f:
                    json.dump(self.total, f)

        consumer = Topology("consumer")
        consumer.spout("read", Output("p", "doubled"))
        consumer.bolt("sum", Sum()).shuffle_grouping("read")
    """))
    consumer = start_cli(["run", "pair.py:consumer", "--state-dir", "c", "--log-format", "json"], tmp_path,
                         log="consumer.log")
    try:
        logged_event(tmp_path / "consumer.log", "output.waiting", timeout=20)
        assert consumer.poll() is None
        assert run_cli("run", "pair.py:producer", "--state-dir", "p").returncode == 0
        assert consumer.wait(timeout=30) == 0, (tmp_path / "consumer.log").read_text()
    finally:
        if consumer.poll() is None:
            consumer.kill()
    assert json.loads((tmp_path / "sum.json").read_text()) == 2 * sum(range(100))
