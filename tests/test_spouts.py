"""consecution.spouts: Stdin, File, Push, Interval, Cron, Query and the `logged` hook, against
real pipes, files, threads, clocks, SQLite and PostgreSQL, in every mode."""
import datetime
import os
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from consecution import Spout, Topology, UserCodeError
from consecution.storage import DurableLog
from consecution.spouts import Closed, Cron, File, Full, Interval, Push, Query, Stdin
from consecution.testing import run_local
from spout_support import MODES, running


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def upper(line):
    return line.upper()


def echo(*values):
    return values


def through(spout, fn=echo, **options):
    t = Topology("spouts", **options)
    t.spout("source", spout)
    t.bolt("sink", fn).shuffle_grouping("source")
    return t


# -- the logged hook ---------------------------------------------------------------------------

class Recording(Spout):
    """Emits n tuples (msg ids i, or None), recording logged and ack calls in order."""

    fields = ("n",)

    def __init__(self, n, with_ids=True):
        self.n, self.with_ids = n, with_ids

    def open(self, context):
        self.i, self.events = 0, []

    def next_tuple(self):
        if self.i >= self.n:
            raise StopIteration
        self.emit((self.i,), msg_id=self.i if self.with_ids else None)
        self.i += 1

    def logged(self, msg_ids):
        self.events += [("logged", m) for m in msg_ids]

    def ack(self, msg_id):
        self.events.append(("ack", msg_id))


def test_logged_gets_each_msg_id_once_after_its_commit_and_before_its_ack(mode, tmp_path):
    spout = Recording(300)
    result = run_local(through(spout), mode=mode, workers=2, state_dir=str(tmp_path / "state"))
    assert result.completed == 300
    logged = [m for kind, m in spout.events if kind == "logged"]
    assert logged == list(range(300))
    for i in range(300):
        assert spout.events.index(("logged", i)) < spout.events.index(("ack", i))


def test_logged_gets_root_ids_for_tuples_without_msg_id(mode):
    spout = Recording(5, with_ids=False)
    run_local(through(spout), mode=mode, workers=2)
    logged = [m for kind, m in spout.events if kind == "logged"]
    acked = [m for kind, m in spout.events if kind == "ack"]
    assert len(logged) == 5 and sorted(logged) == sorted(acked) and None not in logged


def test_with_reliability_none_logged_is_called_at_emit(mode):
    spout = Recording(5)
    result = run_local(through(spout, reliability="none"), mode=mode, workers=2)
    assert spout.events == [("logged", i) for i in range(5)] and result.roots == 5


# -- next_batch ----------------------------------------------------------------------------------

class Batches(Spout):
    """Emits 0..n-1 through next_batch, recording the limits it was given; `bad` puts an
    unstorable value in the row of that number."""

    fields = ("n",)

    def __init__(self, n, bad=None):
        self.n, self.bad = n, bad

    def open(self, context):
        self.i, self.limits = 0, []

    def next_batch(self, limit):
        self.limits.append(limit)
        if self.i >= self.n:
            raise StopIteration
        rows = [(i,) if i != self.bad else ({1, 2},) for i in range(self.i, min(self.n, self.i + limit))]
        self.i += len(rows)
        return rows

    def position(self):
        return self.i

    def seek(self, position):
        self.i = position


def test_a_slow_generator_as_a_spout_hands_over_each_item_without_waiting_for_the_next(tmp_path):
    produced, seen = {}, {}

    def slowly():
        for i in range(8):
            time.sleep(0.05)
            produced[i] = time.monotonic()
            yield i

    def note(n):
        seen[n] = time.monotonic()

    run_local(through(slowly(), note), state_dir=str(tmp_path / "state"))
    assert sorted(seen) == list(range(8)) and seen[0] < produced[7] - 0.2


def test_next_batch_emits_every_row_and_is_asked_within_max_pending(mode, tmp_path):
    spout = Batches(1000)
    result = run_local(through(spout, max_pending=64), mode=mode, workers=2, state_dir=str(tmp_path / "state"))
    assert sorted(result.emitted("sink")) == [(i,) for i in range(1000)] and result.completed == 1000
    assert max(spout.limits) <= 64 and len(spout.limits) >= 1000 // 64


def test_a_subclass_that_overrides_only_next_tuple_has_it_called(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("one\ntwo\n")

    class Shouting(File):
        def next_tuple(self):
            rows = self.next_batch(1)
            if rows:
                self.emit((rows[0][0].upper(),))

    assert sorted(run_local(through(Shouting(path))).emitted("sink")) == [("ONE",), ("TWO",)]
    assert sorted(run_local(through(File(path))).emitted("sink")) == [("one",), ("two",)]


def test_next_batch_resumes_after_the_last_committed_row(tmp_path):
    state = str(tmp_path / "state")
    run_local(through(Batches(300)), state_dir=state)
    spout = Batches(500)
    result = run_local(through(spout), state_dir=state)
    assert result.emitted("sink") == [(i,) for i in range(300, 500)]


def test_a_bad_value_in_a_batch_stops_the_run_naming_the_spout_and_the_next_run_goes_on_from_it(tmp_path):
    state = str(tmp_path / "state")
    with pytest.raises(UserCodeError, match=r"source\.next_batch\(\) raised .*source.*\{1, 2\}"):
        run_local(through(Batches(100, bad=40)), state_dir=state)
    got = [n for (n,) in run_local(through(Batches(100)), state_dir=state).emitted("sink")]
    assert got[0] <= 40 and got == list(range(got[0], 100))  # the batch with the bad row was not logged


@pytest.mark.parametrize("reliability", ["none", "replay"])
def test_a_failing_tuple_of_a_batch_fails_alone(mode, reliability):
    def picky(line):
        if line == "bad":
            raise ValueError("bad line")
        return line.upper()

    lines = ["a", "b", "bad", "c", "d"] * 40
    result = run_local(through(lines, picky, reliability=reliability, max_retries=0), mode=mode, workers=2)
    assert sorted(result.emitted("sink")) == sorted([(line.upper(),) for line in lines if line != "bad"])
    assert (result.errors if reliability == "none" else result.failed) == 40  # "none" tracks no trees



class Hooked(Batches):
    """Batches with the logged and ack hooks: what it was told, in order."""

    def open(self, context):
        super().open(context)
        self.events = []

    def logged(self, msg_ids):
        self.events += [("logged", m) for m in msg_ids]

    def ack(self, msg_id):
        self.events.append(("ack", msg_id))


def test_a_batch_is_logged_as_one_run_and_its_records_come_back_one_by_one_when_needed(mode, tmp_path):
    """A spout's batch is one Run in the log (no Record per row): its seqs still reach `logged`
    and `ack` one by one, a record that fails is retried and given up with its own values,
    and nothing stays pending."""
    tries = {}

    def odd_sevens(n):
        tries[n] = tries.get(n, 0) + 1
        if n % 7 == 0 and n % 2:
            raise ValueError(f"odd seven {n}")
        return (n,)

    spout = Hooked(600)
    state = str(tmp_path / "state")
    result = run_local(through(spout, odd_sevens, max_retries=1, retry_backoff=0), mode=mode, workers=2,
                       state_dir=state)
    bad = [n for n in range(600) if n % 7 == 0 and n % 2]
    assert sorted(n for (n,) in result.emitted("sink")) == [n for n in range(600) if n not in bad]
    assert sorted(letter.record.values[0] for letter in result.failures) == bad
    assert all(letter.record.attempts == 2 and "odd seven" in letter.error for letter in result.failures)
    logged = [m for kind, m in spout.events if kind == "logged"]
    acked = [m for kind, m in spout.events if kind == "ack"]
    assert len(logged) == 600 and logged == sorted(logged) and len(set(logged)) == 600  # the seqs, in order
    assert sorted(acked) == sorted(set(logged) - {letter.record.seq for letter in result.failures})
    assert result.completed == 600 - len(bad) and result.given_up == len(bad)
    log = DurableLog(state, readonly=True)
    assert log.pending_count() == 0 and sorted(r.values[0] for r in (l.record for l in log.dead_letters())) == bad
    log.close()


# -- Stdin ---------------------------------------------------------------------------------------

PRODUCER = """
import sys, time
out = sys.stdout.buffer
for i in range(2000):
    out.write(f"line {i} {'x' * (i % 50)}\\n".encode())
    if i % 300 == 0:
        out.flush()
        time.sleep(0.01)
out.write(b"last without newline")
"""


def test_stdin_emits_every_line_of_a_pipe_in_order_and_ends_at_eof(mode):
    """The producer is a real process: the pipe's write end lives only there, as in a shell
    pipe (worker processes forked by the run must not hold it open)."""
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER], stdout=subprocess.PIPE)
    try:
        result = run_local(through(Stdin(producer.stdout), upper), mode=mode, workers=2)
    finally:
        producer.stdout.close()
        producer.wait()
    lines = [f"line {i} {'x' * (i % 50)}" for i in range(2000)]
    assert result.emitted("sink") == [(line.upper(),) for line in lines] + [("LAST WITHOUT NEWLINE",)]


def test_stdin_line_that_is_not_utf8_stops_the_run_naming_the_line():
    r, w = os.pipe()
    os.write(w, b"fine\n\xff\xfe\n")
    os.close(w)
    with pytest.raises(UserCodeError, match="stdin line 2: not valid utf-8"):
        run_local(through(Stdin(r)))
    os.close(r)


def test_producer_piped_into_consecution_run(run_cli, topology_file, tmp_path):
    path = topology_file("""
        import sys
        from consecution import Bolt, Topology
        from consecution.spouts import Stdin

        class Total(Bolt):
            def prepare(self, context):
                self.total = 0
            def process(self, tup):
                self.total += int(tup["line"])
            def finish(self):
                print("total", self.total)

        topology = Topology("sum")
        topology.spout("numbers", Stdin())
        topology.bolt("total", Total()).global_grouping("numbers")
    """)
    done = run_cli("run", path, "--mode", "process", input="".join(f"{i}\n" for i in range(1, 1001)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "total 500500"


# -- File ----------------------------------------------------------------------------------------

def test_file_resumes_after_the_last_committed_line_on_the_next_run(mode, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("a\nb\nc\n")
    state = str(tmp_path / "state")
    assert run_local(through(File(path), upper), mode=mode, workers=2, state_dir=state).emitted("sink") == [
        ("A",), ("B",), ("C",)]
    with open(path, "a") as f:
        f.write("d\ne")
    assert run_local(through(File(path), upper), mode=mode, workers=2, state_dir=state).emitted("sink") == [
        ("D",), ("E",)]


def test_a_file_line_that_is_not_utf8_stops_the_run_naming_the_file_and_its_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\n\xff bad\nlast\n")
    with pytest.raises(UserCodeError, match=r"bad\.txt: line at byte 3: not valid utf-8"):
        run_local(through(File(path)), state_dir=str(tmp_path / "state"))


def test_file_replaced_between_runs_is_read_from_its_start(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("one\ntwo\n")
    state = str(tmp_path / "state")
    run_local(through(File(path)), state_dir=state)
    os.remove(path)
    (tmp_path / "other").write_text("new\n")  # keeps the old inode from being reused at once
    path.write_text("fresh\n")
    assert run_local(through(File(path)), state_dir=state).emitted("sink") == [("fresh",)]


def test_a_missing_file_is_an_error_at_open_naming_it(tmp_path):
    with pytest.raises(UserCodeError, match=r"File\(.*nope.txt'\): cannot open it") as info:
        run_local(through(File(tmp_path / "nope.txt")))
    assert info.value.phase == "open"


def test_file_follow_tails_a_growing_file_and_survives_rotation(mode, tmp_path):
    path = tmp_path / "app.log"
    path.write_text("1\n2\n")
    with running(through(File(path, follow=True, poll=0.02)), mode) as run:
        run.wait_emitted("sink", 2)
        with open(path, "a") as f:
            f.write("3\n4")          # "4" is not complete yet
            f.flush()
            time.sleep(0.1)
            assert run.emitted("sink") == [("1",), ("2",), ("3",)]
            f.write("0\n")
        run.wait_emitted("sink", 4)
        os.rename(path, tmp_path / "app.log.1")
        with open(tmp_path / "app.log.1", "a") as old:
            old.write("5\n")         # the writer still had the old file open
        path.write_text("6\n7\n")
        run.wait_emitted("sink", 7)
        with open(path, "a") as f:
            f.write("8\n")
        run.wait_emitted("sink", 8)
        result = run.stop()
    assert result.emitted("sink") == [(v,) for v in ["1", "2", "3", "40", "5", "6", "7", "8"]]


# -- Push ----------------------------------------------------------------------------------------

def test_push_feeds_a_run_from_another_thread_and_end_finishes_it(mode):
    feed = Push(fields=("n",))
    with running(through(feed), mode) as run:
        for i in range(500):
            feed.push(i)
        feed.end()
        result = run.join()
    assert result.status == "complete" and result.emitted("sink") == [(i,) for i in range(500)]
    with pytest.raises(Closed):
        feed.push(1)


def slow(n):
    time.sleep(0.05)
    return n


def test_push_waits_while_maxsize_records_are_pending(mode):
    feed = Push(fields=("n",), maxsize=3)
    with running(through(feed, slow), mode) as run:
        for i in range(3):
            feed.push(i, block=False)
        with pytest.raises(Full, match="limit is 3"):
            feed.push(99, block=False)
        started = time.monotonic()
        feed.push(3)              # waits until a tree completes
        assert time.monotonic() - started >= 0.03
        feed.end()
        result = run.join()
    assert result.emitted("sink") == [(0,), (1,), (2,), (3,)]


# -- Interval and Cron ---------------------------------------------------------------------------

def test_interval_calls_fn_on_its_schedule_and_emits_what_it_returns(mode):
    calls = []

    def tick():
        calls.append(time.monotonic())
        yield len(calls)
        yield -len(calls)

    with running(through(Interval(0.1, tick, fields=("n",))), mode) as run:
        run.wait_emitted("sink", 8)
        result = run.stop()
    got = result.emitted("sink")
    assert got[:8] == [(1,), (-1,), (2,), (-2,), (3,), (-3,), (4,), (-4,)]
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert all(0.07 < g < 0.2 for g in gaps[:3]), gaps


def test_interval_does_not_tick_again_after_a_restart_within_its_period(tmp_path):
    state = str(tmp_path / "state")
    for expected in (1, 0):
        with running(through(Interval(30, lambda: "tick")), "single", state_dir=state) as run:
            if expected:
                run.wait_emitted("sink", 1)
            else:
                time.sleep(0.2)
            assert len(run.stop().emitted("sink")) == expected


def test_interval_fires_a_missed_tick_once_and_keeps_its_schedule():
    spout = Interval(10, lambda: None)
    assert spout.next_due(None, now=1000.0) == 1000.0
    assert spout.next_due(1000.0, now=1003.0) == 1010.0
    assert spout.next_due(1000.0, now=1047.0) == 1040.0      # fires once now, then 1050
    assert spout.next_due(1040.0, now=1047.5) == 1050.0


def test_interval_jitter_delays_each_tick_within_bounds():
    spout = Interval(1, lambda: None, jitter=datetime.timedelta(seconds=0.5))
    spout.open(None)
    for _ in range(50):
        spout._plan(after=spout.due)
        assert spout.due <= spout.fire_at <= spout.due + 0.5


def test_cron_ticks_on_the_second_with_a_six_field_expression(mode):
    with running(through(Cron("* * * * * *", time.time)), mode) as run:
        got = run.wait_emitted("sink", 1, timeout=5)
        run.stop()
    assert got[0][0] % 1 < 0.2  # on a whole second, give or take the scheduler's latency


def test_cron_reads_its_expression_in_the_given_time_zone():
    nine_new_york = datetime.datetime(2024, 7, 1, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-4)))
    now = datetime.datetime(2024, 7, 1, 12, 0, tzinfo=datetime.timezone.utc).timestamp()  # 08:00 there
    assert Cron("0 9 * * *", lambda: None, tz="America/New_York").next_due(None, now) == nine_new_york.timestamp()
    assert Cron("0 9 * * *", lambda: None, tz="UTC").next_due(None, now) == now + 21 * 3600
    # missed while down: the latest slot, so it fires once now
    assert Cron("0 9 * * *", lambda: None, tz="UTC").next_due(now - 5 * 86400, now) == now - 3 * 3600


def test_cron_refuses_an_invalid_expression():
    with pytest.raises(Exception, match="not a valid cron expression"):
        Cron("61 * * * *", lambda: None)


# -- Query ---------------------------------------------------------------------------------------

def _sqlite(path, rows):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, cents INTEGER)")
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def test_query_reads_rows_in_key_order_and_resumes_after_the_last_committed_row(mode, tmp_path):
    path = str(tmp_path / "shop.db")
    _sqlite(path, [(i, f"c{i % 3}", i * 100) for i in range(10, 0, -1)])
    state = str(tmp_path / "state")

    def query():
        return Query(lambda: sqlite3.connect(path), "SELECT id, customer, cents FROM orders WHERE cents > 100",
                     key="id", fields=("id", "customer", "cents"), batch=3)

    first = run_local(through(query()), mode=mode, workers=2, state_dir=state).emitted("sink")
    assert first == [(i, f"c{i % 3}", i * 100) for i in range(2, 11)]
    _sqlite(path, [(11, "late", 1100), (12, "later", 1200)])
    assert run_local(through(query()), mode=mode, workers=2, state_dir=state).emitted("sink") == [
        (11, "late", 1100), (12, "later", 1200)]


def test_query_with_poll_picks_up_new_rows_and_without_fields_emits_dicts(tmp_path):
    path = str(tmp_path / "shop.db")
    _sqlite(path, [(1, "a", 100)])
    spout = Query(lambda: sqlite3.connect(path), "SELECT * FROM orders", key="id", poll=0.02)
    with running(through(spout), "single") as run:
        run.wait_emitted("sink", 1)
        _sqlite(path, [(2, "b", 200), (3, "c", 300)])
        run.wait_emitted("sink", 3)
        result = run.stop()
    assert [values[0]["customer"] for values in result.emitted("sink")] == ["a", "b", "c"]


def test_query_with_a_composite_key_resumes_after_the_last_pair(tmp_path):
    path = str(tmp_path / "events.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE events (day TEXT, seq INTEGER, what TEXT)")
    db.executemany("INSERT INTO events VALUES (?, ?, ?)",
                   [("2024-01-02", 1, "c"), ("2024-01-01", 2, "b"), ("2024-01-01", 1, "a"), ("2024-01-02", 2, "d")])
    db.commit()
    spout = Query(lambda: sqlite3.connect(path), "SELECT day, seq, what FROM events", key=("day", "seq"),
                  fields=("day", "seq", "what"), batch=1)
    assert [v[2] for v in run_local(through(spout)).emitted("sink")] == ["a", "b", "c", "d"]


def test_query_key_missing_from_the_columns_is_a_clear_error(tmp_path):
    path = str(tmp_path / "shop.db")
    _sqlite(path, [(1, "a", 100)])
    with pytest.raises(UserCodeError, match="key nope: .*no such column: q.nope"):
        run_local(through(Query(lambda: sqlite3.connect(path), "SELECT * FROM orders", key="nope")))


@pytest.fixture
def pg_table():
    psycopg = pytest.importorskip("psycopg")
    dsn = "host=127.0.0.1 port=5432 user=postgres dbname=test"
    table = f"orders_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, customer text, cents bigint)")
        db.execute(f"INSERT INTO {table} (customer, cents) SELECT 'c' || i, i * 10 FROM generate_series(1, 25) i")
    yield (lambda: psycopg.connect(dsn)), table
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f"DROP TABLE {table}")


def test_query_reads_postgresql_and_resumes_after_a_restart(mode, tmp_path, pg_table):
    connect, table = pg_table
    state = str(tmp_path / "state")

    def query():
        return Query(connect, f"SELECT id, customer, cents FROM {table} WHERE customer LIKE 'c%%'", key="id",
                     fields=("id", "customer", "cents"), batch=4)

    first = run_local(through(query()), mode=mode, workers=2, state_dir=state).emitted("sink")
    assert first == [(i, f"c{i}", i * 10) for i in range(1, 26)]
    with connect() as db:
        db.execute(f"INSERT INTO {table} (customer, cents) VALUES ('c26', 260)")
    assert run_local(through(query()), mode=mode, workers=2, state_dir=state).emitted("sink") == [(26, "c26", 260)]
