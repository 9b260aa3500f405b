"""The replay log's protocol (`consecution.storage.ReplayLog`): the same behaviour checks run
against the in-memory log and the durable one (real LMDB in a temporary directory)."""
import struct

import lmdb
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consecution.storage import (DeadLetter, DurableLog, MemoryLog, Record, ReplayLog, Run, StorageError,
                                 TopologyMismatch, decode)

SHAPE = {"components": {"numbers": {"kind": "spout", "parallelism": 1}}}
CHANGED = {"components": {"numbers": {"kind": "spout", "parallelism": 2}}}


@pytest.fixture(params=["memory", "durable"])
def make_log(request, tmp_path):
    """make_log(keep_dead=None): a fresh log of the parametrized kind; closed after the test."""
    made = []

    def make(keep_dead=None):
        if request.param == "memory":
            log = MemoryLog(keep=keep_dead)
        else:
            log = DurableLog(str(tmp_path / f"state{len(made)}"), keep_dead=keep_dead)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


@pytest.fixture
def log(make_log):
    return make_log()


def record(log, value, attempts=1):
    return Record(log.new_root(), "numbers", 0, "default", (value,), None, attempts, 0.0)


def appended(log, values):
    records = [record(log, v) for v in values]
    for r in records:
        log.append(r)
    log.commit()
    return records


def letter(r, error="boom"):
    return DeadLetter(r, "check", 1, error, "Traceback ...", 12.5)


def test_both_logs_implement_every_member_of_the_protocol(log):
    assert isinstance(log, ReplayLog)
    members = [name for name in vars(ReplayLog) if not name.startswith("_") or name == "__len__"]
    members += list(ReplayLog.__annotations__)
    assert {"append", "commit", "read_outbox", "requeue", "durable"} <= set(members)
    assert all(hasattr(log, name) for name in members)


def test_sequence_numbers_grow_and_pending_records_come_back_oldest_first(log):
    seqs = [log.new_root() for _ in range(3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and log.next_root == seqs[-1] + 1
    records = appended(log, ["a", "b", "c"])
    assert len(log) == log.pending_count() == 3
    assert [r.values for r in log.pending()] == [("a",), ("b",), ("c",)]
    assert [r.seq for r in log.iter_pending()] == [r.seq for r in records]
    assert log.oldest_pending().values == ("a",)


def test_a_batch_takes_consecutive_sequence_numbers_and_is_pending_in_order(log):
    (before,) = appended(log, ["a"])
    first = log.new_seqs(3)
    assert first > before.seq and log.next_root == first + 3 and log.new_root() == first + 3
    run = Run(first, "numbers", 0, "default", [(v,) for v in "xyz"], 0.0)
    log.append_run(run)
    batch = run.records()
    log.commit()
    assert [(r.seq, r.values) for r in log.pending()] == [(before.seq, ("a",))] + [(r.seq, r.values) for r in batch]
    log.release_all([batch[1].seq])
    log.commit()
    assert [r.values for r in log.pending()] == [("a",), ("x",), ("z",)]


def test_a_run_of_records_is_pending_after_a_reopen_and_releases_one_by_one(tmp_path):
    log = DurableLog(str(tmp_path))
    first = log.new_seqs(4)
    log.append_run(Run(first, "numbers", 0, "default", [(i,) for i in range(4)], 1.0))
    log.append(Record(log.new_root(), "numbers", 0, "default", ("single",), "m", 1, 2.0))
    log.commit()
    log.close()
    log = DurableLog(str(tmp_path))
    assert [(r.seq, r.values, r.msg_id) for r in log.pending()] == [
        (first + 4, ("single",), "m")] + [(first + i, (i,), None) for i in range(4)]
    assert [r.values for r in log.records([first + 3, first + 1])] == [(3,), (1,)]
    log.release_all([first, first + 2])
    log.commit()
    log.close()
    log = DurableLog(str(tmp_path))
    assert sorted(r.seq for r in log.pending()) == [first + 1, first + 3, first + 4] and len(log) == 3
    log.close()


def test_appending_a_pending_record_again_updates_its_attempts(log):
    (r,) = appended(log, ["a"])
    r.attempts = 2
    log.append(r)
    log.commit()
    assert [(p.seq, p.attempts) for p in log.pending()] == [(r.seq, 2)]


def test_released_records_are_no_longer_pending(log):
    records = appended(log, ["a", "b", "c", "d"])
    log.release(records[1].seq)
    log.release(records[3].root)  # the older name of the sequence number
    log.commit()
    assert [r.values for r in log.pending()] == [("a",), ("c",)]
    assert log.oldest_pending().seq == records[0].seq


RELEASES = {  # name: (leave a gap first, released(stored, every seq), kept(stored))
    "every record": (False, lambda stored, every: stored, lambda stored: []),
    "every record, around a gap": (True, lambda stored, every: stored, lambda stored: []),
    "every record and unknown ones": (True, lambda stored, every: stored + [10**6, 10**6 + 5], lambda stored: []),
    "a run as long as what is stored, not all of it": (True, lambda stored, every: every[10:], lambda stored: stored[:10]),
    "all but one, and unknown ones": (True, lambda stored, every: stored[:-1] + [10**6, 10**7], lambda stored: stored[-1:]),
    "all but one": (False, lambda stored, every: stored[:-1], lambda stored: stored[-1:]),
}


@pytest.mark.parametrize("at_once", [False, True], ids=["release", "release_all"])
@pytest.mark.parametrize("case", list(RELEASES))
def test_releasing_many_records_at_once_keeps_exactly_the_others(log, case, at_once):
    gap, released, kept = RELEASES[case]
    every = [r.seq for r in appended(log, range(50))]
    stored = every
    if gap:  # earlier releases leave a gap in the stored sequence numbers
        for seq in every[10:20]:
            log.release(seq)
        log.commit()
        stored = every[:10] + every[20:]
    if at_once:
        log.release_all(released(stored, every))
    else:
        for seq in released(stored, every):
            log.release(seq)
    log.commit()
    assert [r.seq for r in log.pending()] == kept(stored) and len(log) == len(kept(stored))


def test_records_appended_in_the_commit_that_releases_every_other_record_stay_pending(log):
    records = appended(log, range(20))
    log.release_all([r.seq for r in records[:10]])
    for r in records[10:]:
        log.release(r.seq)
    new = record(log, "new")
    log.append(new)
    log.commit()
    assert [(r.seq, r.values) for r in log.pending()] == [(new.seq, ("new",))]


def test_a_dead_letter_leaves_pending_and_can_be_requeued_or_purged(log):
    a, b, c = appended(log, ["a", "b", "c"])
    for r in (a, b):
        r.attempts = 4
        log.dead_letter(letter(r, f"no {r.values[0]}"))
    log.commit()
    assert [r.seq for r in log.pending()] == [c.seq] and log.dead_count() == 2
    letters = log.dead_letters()
    assert [(d.record.values, d.record.attempts, d.error) for d in letters] == [(("a",), 4, "no a"), (("b",), 4, "no b")]
    assert (letters[0].component, letters[0].task, letters[0].traceback, letters[0].time) == ("check", 1, "Traceback ...", 12.5)
    assert [d.record.seq for d in log.dead_letters(b.seq)] == [b.seq] and log.dead_letters(10**6) == []
    assert log.requeue(a.seq) == 1
    assert [(r.seq, r.attempts) for r in log.pending()] == [(a.seq, 0), (c.seq, 1)]
    assert log.purge() == 1 and log.dead_count() == 0 and log.dead_letters() == []


def test_only_the_newest_dead_letters_are_kept_when_bounded(make_log):
    log = make_log(keep_dead=2)
    for r in appended(log, ["a", "b", "c"]):
        log.dead_letter(letter(r))
    log.commit()
    assert [d.record.values for d in log.dead_letters()] == [("b",), ("c",)] and log.dead_count() == 2


def test_positions_are_kept_per_spout_task(log):
    assert log.get_position("numbers", 0) is None
    log.position("numbers", 0, 7)
    log.position("numbers", 1, ["file", 120])
    log.position("numbers", 0, 9)
    log.commit()
    assert log.get_position("numbers", 0) == 9 and log.get_position("numbers", 1) == ["file", 120]
    assert log.positions() == {"numbers/0": 9, "numbers/1": ["file", 120]}


def test_metadata_entries_are_kept(log):
    assert log.get_meta("finished") is None
    log.put_meta("finished", ["count", "split"])
    log.commit()
    assert log.get_meta("finished") == ["count", "split"]


def test_state_rows_are_applied_per_task(log):
    log.put_state("totals", 0, [["a", True, 1], [("count", "a"), True, [1, 2]], ["gone", True, 0]])
    log.put_state("totals", 1, [["b", True, {"x": 1}]])
    log.commit()
    log.put_state("totals", 0, [["a", True, 5], ["gone", False, None]])
    log.commit()
    assert log.load_state("totals", 0) == {"a": 5, ("count", "a"): [1, 2]}
    assert log.load_state("totals", 1) == {"b": {"x": 1}} and log.load_state("totals", 2) == {}
    assert log.state_count() == 3 and log.states() == {("totals", 0): 2, ("totals", 1): 1}


def test_a_state_value_changed_in_place_after_its_checkpoint_is_not_the_checkpoint(log):
    seen = [1]
    log.put_state("totals", 0, [["seen", True, seen]])
    log.commit()
    seen.append(2)
    assert log.load_state("totals", 0) == {"seen": [1]}


def test_declared_outputs_keep_their_entries_in_order_until_trimmed(log):
    assert log.output_info("doubled") is None and log.outputs() == {}
    log.declare_outputs({"doubled": ("value",)})
    log.put_outbox("doubled", [[2], [4], [6]])
    log.commit()
    log.put_outbox("doubled", [[8]])
    log.commit()
    info = log.output_info("doubled")
    assert (info["fields"], info["next"], info["closed"], info["trimmed"]) == (["value"], 5, False, 0)
    assert log.read_outbox("doubled", 0, 10) == [(1, (2,)), (2, (4,)), (3, (6,)), (4, (8,))]
    assert log.read_outbox("doubled", 1, 2) == [(2, (4,)), (3, (6,))] and log.read_outbox("doubled", 4, 10) == []
    log.trim_outbox("doubled", 2)
    log.close_outputs(True)
    log.commit()
    assert log.read_outbox("doubled", 0, 10) == [(3, (6,)), (4, (8,))]
    described = log.outputs()["doubled"]
    assert (described["trimmed"], described["closed"], described["length"]) == (2, True, 2)
    assert described["id"] == info["id"] and log.consumers("doubled") == {}


def test_a_first_topology_is_recorded_and_another_is_refused(log):
    assert log.check_topology("wc", "f1", SHAPE) is None
    assert log.get_meta("name") == "wc" and log.get_meta("fingerprint") == "f1"
    assert log.check_topology("wc", "f1", SHAPE) is None
    with pytest.raises(TopologyMismatch, match="belongs to topology 'wc', not 'other'"):
        log.check_topology("other", "f1", SHAPE)


def test_a_changed_shape_is_refused_while_records_are_pending_and_accepted_after(log):
    log.check_topology("wc", "f1", SHAPE)
    (r,) = appended(log, ["a"])
    with pytest.raises(TopologyMismatch, match=r"1 records are pending.*'numbers' parallelism: 1 -> 2"):
        log.check_topology("wc", "f2", CHANGED)
    log.release(r.seq)
    log.commit()
    assert log.check_topology("wc", "f2", CHANGED) == SHAPE
    assert log.get_meta("fingerprint") == "f2"


def test_record_seq_is_its_sequence_number_and_root_the_same_slot():
    r = Record(5, "numbers", 0, "default", (1,), None, 1, 0.0)
    assert r.seq == r.root == 5
    r.root = 6
    assert r.seq == 6 and "seq=0x6" in repr(r)


# -- the durable log only ---------------------------------------------------------------------

def test_a_commit_that_fails_writes_nothing_of_any_store(tmp_path):
    """Records, positions, state and metadata of one commit are written together or not at all."""
    log = DurableLog(str(tmp_path))
    log.append(record(log, "a"))
    log.position("numbers", 0, 1)
    log.put_meta("finished", ["x"])
    log.put_state("totals", 0, [["ok", True, 1], ["bad", True, object()]])
    with pytest.raises(Exception, match="stateful bolt 'totals': state\\['bad'\\] cannot be stored"):
        log.commit()
    assert log.pending_count() == 0 and log.get_position("numbers", 0) is None
    assert log.get_meta("finished") is None and log.load_state("totals", 0) == {}
    log.env.close()


def test_the_files_keep_the_layout_earlier_versions_wrote(tmp_path):
    """Database names, keys and values as the log writes them (format 3: pending records in
    batches, a spout's batch as a run of values; a batch of records appended one by one as
    format 2 wrote it; the other databases as the first version wrote them)."""
    log = DurableLog(str(tmp_path))
    log.check_topology("wc", "f1", SHAPE)
    r = record(log, "a")
    log.append(r)
    log.commit()
    first = log.new_seqs(2)
    log.append_run(Run(first, "numbers", 0, "default", [(v,) for v in "bc"], 2.5))
    log.append(record(log, "d"))
    log.position("numbers", 0, 7)
    log.put_state("totals", 0, [[("k", 1), True, 3]])
    log.declare_outputs({"out": ["v"]})
    log.put_outbox("out", [[1]])
    log.close()
    env = lmdb.open(str(tmp_path / "log"), max_dbs=8, readonly=True)
    dbs = {name: env.open_db(name, create=False) for name in
           (b"batches", b"pending", b"dead", b"positions", b"meta", b"state", b"outbox")}
    with env.begin() as txn:
        batch = [[r.seq], [["numbers", 0, "default", ["a"], None, 1, 0.0]]]
        assert decode(txn.get(struct.pack(">Q", 1), db=dbs[b"batches"])) == batch
        batch = [[first + 2], [[[first, first + 1], "numbers", 0, "default", None, 1, 2.5]],
                 [["numbers", 0, "default", ["d"], None, 1, 0.0]], [[["b"], ["c"]]]]
        assert decode(txn.get(struct.pack(">Q", 2), db=dbs[b"batches"])) == batch
        assert decode(txn.get(b"numbers/0", db=dbs[b"positions"])) == 7
        key = msgpack.packb("totals") + msgpack.packb(0) + msgpack.packb(("k", 1))
        assert decode(txn.get(key, db=dbs[b"state"])) == 3
        assert decode(txn.get(msgpack.packb("out") + struct.pack(">Q", 1), db=dbs[b"outbox"])) == [1]
        assert decode(txn.get(b"next_root", db=dbs[b"meta"])) == first + 3
        assert decode(txn.get(b"format", db=dbs[b"meta"])) == 3
        assert decode(txn.get(b"output:out", db=dbs[b"meta"]))["next"] == 2
    env.close()


def test_a_log_of_format_1_is_read_and_upgraded_so_that_older_versions_refuse_it(tmp_path):
    """Format 1 kept one record per entry of `pending`: such a log opens, its records are
    pending (and replayed, released, dead-lettered as any), and checking the topology marks it
    format 3, which a version that reads only format 1 or 2 refuses instead of missing batches."""
    log = DurableLog(str(tmp_path))
    log.check_topology("wc", "f1", SHAPE)
    log.close()
    env = lmdb.open(str(tmp_path / "log"), max_dbs=8)
    with env.begin(write=True) as txn:
        pending, meta = env.open_db(b"pending", txn=txn), env.open_db(b"meta", txn=txn)
        for seq, value in ((3, "old"), (5, "older")):
            txn.put(struct.pack(">Q", seq), msgpack.packb(["numbers", 0, "default", [value], None, 1, 0.0]), db=pending)
        txn.put(b"format", msgpack.packb(1), db=meta)
        txn.put(b"next_root", msgpack.packb(6), db=meta)
    env.close()
    log = DurableLog(str(tmp_path))
    assert log.get_meta("format") == 1 and len(log) == 2
    assert [(r.seq, r.values) for r in log.pending()] == [(3, ("old",)), (5, ("older",))]
    log.check_topology("wc", "f1", SHAPE)
    assert log.get_meta("format") == 3
    again = log.pending()[0]
    again.attempts += 1
    log.append(again)  # a replay: the record moves to a batch
    log.release(5)
    fresh = record(log, "new")
    log.append(fresh)
    log.commit()
    assert [(r.seq, r.values, r.attempts) for r in log.pending()] == [(3, ("old",), 2), (fresh.seq, ("new",), 1)]
    log.close()
    log = DurableLog(str(tmp_path))
    assert len(log) == 2 and log.oldest_pending().seq == 3
    log.release_all([3, fresh.seq])
    log.commit()
    assert len(log) == 0 and log.pending() == []
    log.close()


def test_a_state_directory_without_a_log_is_named_when_read(tmp_path):
    with pytest.raises(StorageError, match=f"{tmp_path} holds no consecution state"):
        DurableLog(str(tmp_path), readonly=True)


def test_records_released_at_once_before_the_commit_that_would_append_them_are_never_pending(log):
    kept = appended(log, ["kept"])
    fresh = [record(log, v) for v in ("a", "b", "c")]
    for r in fresh:
        log.append(r)
    log.release_all([fresh[0].seq, fresh[2].seq])
    log.commit()
    assert [r.values for r in log.pending()] == [("kept",), ("b",)] and kept[0].seq == log.pending()[0].seq


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["new", "again", "release", "letter", "commit", "reopen", "map"]),
                          st.integers(0, 1000)), max_size=80))
def test_the_batches_keep_exactly_the_records_appended_and_not_released(tmp_path_factory, steps):
    """Any sequence of appends (new records, and records appended again with one more attempt),
    releases, dead letters, commits, reopenings and map growth leaves the durable log pending
    exactly what a plain dict says, after every commit and after reopening."""
    path = str(tmp_path_factory.mktemp("batches"))
    log = DurableLog(path, map_size=64 * 1024)
    model, committed = {}, {}  # seq -> attempts: buffered / as of the last commit

    def check():
        assert {r.seq: r.attempts for r in log.pending()} == committed
        assert len(log) == len(committed)

    for op, n in steps:
        if op == "new":
            for _ in range(n % 7 + 1):
                r = Record(log.new_root(), "numbers", 0, "default", ("x" * (n % 50),), None, 1, 0.0)
                log.append(r)
                model[r.seq] = 1
        elif model and op in ("again", "release", "letter"):
            seq = sorted(model)[n % len(model)]
            if op == "again":
                model[seq] += 1
                log.append(Record(seq, "numbers", 0, "default", ("y",), None, model[seq], 0.0))
            elif op == "release":
                log.release(seq)
                del model[seq]
            else:
                log.dead_letter(DeadLetter(Record(seq, "numbers", 0, "default", ("y",), None, model.pop(seq), 0.0),
                                           "c", 0, "boom", None, 0.0))
        elif op == "commit":
            log.commit()
            committed = dict(model)
            check()
        elif op == "map":  # many records at once: the map grows, and the commit is written again
            for _ in range(300):
                r = Record(log.new_root(), "numbers", 0, "default", ("z" * 200,), None, 1, 0.0)
                log.append(r)
                model[r.seq] = 1
            log.commit()
            committed = dict(model)
            check()
        elif op == "reopen":  # close commits what is buffered
            log.close()
            log = DurableLog(path)
            committed = dict(model)
            check()
    log.commit()
    committed = dict(model)
    check()
    log.close()
    log = DurableLog(path)
    check()
    log.close()
