"""The durable replay log, through real `consecution run` processes killed with SIGKILL."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from consecution import Topology
from consecution.runtime import Scheduler
from consecution.storage import DurableLog, Record
from support import EXAMPLES

CRASH_ETL = f"""
import os, random, sys, time
sys.path.insert(0, {EXAMPLES!r})
from etl import JsonLines, SqliteSink, validate
from consecution import Topology

def flaky(id, customer, cents, currency):
    time.sleep(0.002)
    if random.random() < 0.2:
        raise ConnectionError("the database blinked")
    return (id, customer, cents, currency)

flaky.fields = ("id", "customer", "cents", "currency")

topology = Topology("etl", max_retries=30, retry_backoff=0)
topology.spout("orders", JsonLines("orders.jsonl"))
topology.bolt("validate", validate).shuffle_grouping("orders")
topology.bolt("flaky", flaky).shuffle_grouping("validate")
topology.bolt("store", SqliteSink("orders.sqlite")).shuffle_grouping("flaky")
"""


def write_orders(path, n, poison=None):
    rng = random.Random(7)
    expected = {}
    with open(path, "w") as f:
        for i in range(1, n + 1):
            if i == poison:
                f.write(json.dumps({"id": i, "customer": "x", "amount": 1, "currency": "XXX"}) + "\n")
                continue
            amount = round(rng.uniform(1, 500), 2)
            f.write(json.dumps({"id": i, "customer": f"C{i % 9}", "amount": amount, "currency": "EUR"}) + "\n")
            expected[i] = round(amount * 100)
    return expected


def start(args, cwd):
    """Start `consecution ARGS`; its log (stderr) goes to cwd/run.log, appended, so that a run
    that logs a lot never blocks on a pipe nobody reads while the test waits to kill it."""
    log = open(os.path.join(cwd, "run.log"), "a")
    try:
        return subprocess.Popen([sys.executable, "-m", "consecution", *args], cwd=cwd,
                                stdout=subprocess.PIPE, stderr=log, text=True)
    finally:
        log.close()


@pytest.mark.parametrize("mode", ["single", "thread", "process", "ray"])
def test_killed_at_random_moments_every_record_reaches_the_sink_and_the_poison_is_a_dead_letter(
        tmp_path, run_cli, mode):
    kills = int(os.environ.get("CONSECUTION_KILLS", "8"))
    expected = write_orders(tmp_path / "orders.jsonl", 2500, poison=700)
    (tmp_path / "crash_etl.py").write_text(CRASH_ETL)
    rng = random.Random()
    killed_midway = 0
    for _ in range(kills):
        proc = start(["run", "crash_etl.py", "--log-format", "json", "--mode", mode, "--workers", "2"], tmp_path)
        time.sleep(rng.uniform(0.4, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_midway += 1
        proc.communicate(timeout=30)
    final = run_cli("run", "crash_etl.py", "--log-format", "json", "--mode", mode, "--workers", "2", timeout=120)
    assert final.returncode == 3, final.stderr[-2000:]
    assert killed_midway >= min(kills, 3)
    db = sqlite3.connect(tmp_path / "orders.sqlite")
    stored = dict(db.execute("SELECT id, cents FROM orders"))
    assert stored == expected  # every valid record, with its exact amount; the poison one not
    letters = [json.loads(line) for line in
               run_cli("dead-letters", "--state-dir", ".consecution/etl", "--json").stdout.splitlines()]
    assert len(letters) == 1 and letters[0]["component"] == "validate"
    assert "unknown currency 'XXX'" in letters[0]["error"] and "Traceback" in letters[0]["traceback"]
    status = json.loads(run_cli("status", "--state-dir", ".consecution/etl", "--json").stdout)
    assert status["pending"] == 0 and status["dead_letters"] == 1 and status["running_pid"] is None


ENDLESS = """
import itertools, time
from consecution import Bolt, Topology

class Slow(Bolt):
    def process(self, tup):
        time.sleep(0.01)
        print(tup[0], flush=True)

topology = Topology("endless")
topology.spout("numbers", itertools.count())
topology.bolt("slow", Slow()).shuffle_grouping("numbers")
"""


def test_a_second_run_on_a_state_dir_in_use_exits_2_and_the_first_is_unharmed(tmp_path, run_cli):
    (tmp_path / "endless.py").write_text(ENDLESS)
    first = start(["run", "endless.py", "--log-format", "json"], tmp_path)
    try:
        assert first.stdout.readline()
        second = run_cli("run", "endless.py")
        assert second.returncode == 2 and "in use" in second.stderr and str(first.pid) in second.stderr
        status = json.loads(run_cli("status", "--state-dir", ".consecution/endless", "--json").stdout)
        assert status["running_pid"] == first.pid and status["topology"] == "endless"
        listing = run_cli("dead-letters", "--state-dir", ".consecution/endless", "--json")
        assert listing.returncode == 0 and listing.stdout == ""  # readers work while it runs
        requeue = run_cli("dead-letters", "--state-dir", ".consecution/endless", "--requeue")
        assert requeue.returncode == 2 and "in use" in requeue.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0


def test_restart_refuses_another_topology_and_a_changed_shape_with_pending_records(tmp_path, run_cli):
    (tmp_path / "endless.py").write_text(ENDLESS)
    proc = start(["run", "endless.py"], tmp_path)
    assert proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    status = json.loads(run_cli("status", "--state-dir", ".consecution/endless", "--json").stdout)
    assert status["pending"] > 0
    changed = ENDLESS.replace('.shuffle_grouping("numbers")', '.fields_grouping("numbers", "value")')
    (tmp_path / "changed.py").write_text(changed)
    done = run_cli("run", "changed.py")
    assert done.returncode == 2 and "changed" in done.stderr and "'slow' inputs" in done.stderr
    assert "pending" in done.stderr and "Traceback" not in done.stderr
    other = ENDLESS.replace('Topology("endless")', 'Topology("other")')
    (tmp_path / "other.py").write_text(other)
    done = run_cli("run", "other.py", "--state-dir", ".consecution/endless")
    assert done.returncode == 2 and "belongs to topology 'endless'" in done.stderr


def _topology(fail_values=(), name="durable", **settings):
    seen = []

    def check(n):
        seen.append(n)
        if n in fail_values:
            raise ValueError(f"no {n}")
        return n

    t = Topology(name, retry_backoff=0, **settings)
    t.spout("numbers", range(10))
    t.bolt("check", check).shuffle_grouping("numbers")
    return t, seen


def test_pending_records_are_replayed_first_on_restart_with_their_attempt_count(tmp_path):
    state = str(tmp_path / "state")
    t, seen = _topology()
    log = DurableLog(state)
    log.check_topology(t.name, t.fingerprint(), t.shape())
    for root, value in ((log.new_root(), 100), (log.new_root(), 101)):
        log.append(Record(root, "numbers", 0, "default", (value,), None, 1, time.time()))
    log.position("numbers", 0, 7)  # the earlier run had taken 7 items
    log.close()
    result = Scheduler(t, state_dir=state).run()
    assert seen[:2] == [100, 101] and seen[2:] == [7, 8, 9]
    assert result.recovered == 2 and result.completed == 5 and result.pending == 0


def test_a_record_pending_after_a_clean_stop_runs_again_at_its_attempt_uncharged(tmp_path):
    """An interrupted attempt is not a failed one: a log closed cleanly (no crash) with a
    record at its last allowed attempt runs it again, once, and it completes."""
    state = str(tmp_path / "state")
    t, seen = _topology(max_retries=2)
    log = DurableLog(state)
    log.check_topology(t.name, t.fingerprint(), t.shape())
    log.append(Record(log.new_root(), "numbers", 0, "default", (5,), None, 3, time.time()))
    log.position("numbers", 0, 10)
    log.close()
    result = Scheduler(t, state_dir=state).run()
    assert seen == [5] and result.given_up == 0 and result.completed == 1 and result.exit_code == 0


def test_requeued_dead_letters_are_replayed_with_a_fresh_attempt_count_and_purge_deletes(tmp_path, run_cli):
    state = str(tmp_path / "state")
    t, _ = _topology(fail_values={3}, max_retries=1)
    assert Scheduler(t, state_dir=state).run().exit_code == 3
    listed = [json.loads(x) for x in run_cli("dead-letters", "--state-dir", state, "--json").stdout.splitlines()]
    assert [(d["values"], d["attempts"]) for d in listed] == [([3], 2)]
    assert run_cli("dead-letters", "--state-dir", state, "--requeue").returncode == 0
    fixed, seen = _topology(max_retries=1)
    result = Scheduler(fixed, state_dir=state).run()
    assert seen == [3] and result.recovered == 1 and result.completed == 1 and result.exit_code == 0
    broken, _ = _topology(fail_values={3}, max_retries=1)
    DurableLog(state).close()
    log = DurableLog(state)
    log.append(Record(log.new_root(), "numbers", 0, "default", (3,), None, 1, time.time()))
    log.close()
    assert Scheduler(broken, state_dir=state).run().exit_code == 3
    assert run_cli("dead-letters", "--state-dir", state, "--purge").returncode == 0
    assert json.loads(run_cli("status", "--state-dir", state, "--json").stdout)["dead_letters"] == 0


def test_map_grows_instead_of_failing_when_full(tmp_path):
    log = DurableLog(str(tmp_path / "state"), map_size=1 << 20)
    big = "x" * 2000
    for _ in range(3000):
        log.append(Record(log.new_root(), "s", 0, "default", (big,), None, 1, 0.0))
        if log.buffered >= 500:
            log.commit()
    log.commit()
    assert log.pending_count() == 3000
    assert log.env.info()["map_size"] > 1 << 20
    log.close()


def test_a_msg_id_msgpack_cannot_store_names_the_spout(tmp_path):
    log = DurableLog(str(tmp_path / "state"))
    with pytest.raises(Exception) as info:
        log.append(Record(1, "orders", 0, "default", (1,), object(), 1, 0.0))
    assert "spout 'orders'" in str(info.value) and "msg_id" in str(info.value)
    log.close()


def test_etl_example_runs_to_the_end_and_exits_3_for_its_bad_line(tmp_path, run_cli):
    expected = write_orders(tmp_path / "orders.jsonl", 50, poison=10)
    done = run_cli("run", os.path.join(EXAMPLES, "etl.py"), "--retry-backoff", "0")
    assert done.returncode == 3, done.stderr
    stored = dict(sqlite3.connect(tmp_path / "orders.sqlite").execute("SELECT id, cents FROM orders"))
    assert stored == expected
    again = run_cli("run", os.path.join(EXAMPLES, "etl.py"))  # resumes at the end: nothing new
    assert again.returncode == 3
    assert dict(sqlite3.connect(tmp_path / "orders.sqlite").execute("SELECT id, cents FROM orders")) == expected


def test_track_keeps_its_last_failures_in_the_state_directory(tmp_path):
    state = str(tmp_path / "state")
    t, seen = _topology(fail_values={2, 4, 6}, reliability="track", track_last=2)
    result = Scheduler(t, state_dir=state).run()
    assert result.given_up == 3 and seen.count(2) == 1 and result.exit_code == 3
    log = DurableLog(state, readonly=True)
    assert [d.record.values for d in log.dead_letters()] == [(4,), (6,)]
    assert log.pending_count() == 0
    log.close()


def test_power_durability_runs_with_a_sync_on_every_commit(tmp_path, run_cli):
    expected = write_orders(tmp_path / "orders.jsonl", 30)
    done = run_cli("run", os.path.join(EXAMPLES, "etl.py"), "--durability", "power")
    assert done.returncode == 0, done.stderr
    assert dict(sqlite3.connect(tmp_path / "orders.sqlite").execute("SELECT id, cents FROM orders")) == expected


def test_killing_workers_at_random_moments_loses_nothing(tmp_path, run_cli):
    """Process mode: SIGKILL a worker (not the supervisor) again and again during the run."""
    expected = write_orders(tmp_path / "orders.jsonl", 1500, poison=300)
    (tmp_path / "crash_etl.py").write_text(CRASH_ETL)
    proc = start(["run", "crash_etl.py", "--log-format", "json", "--mode", "process", "--workers", "2"],
                 tmp_path)
    rng, kills = random.Random(), 0
    while proc.poll() is None and kills < 6:
        time.sleep(rng.uniform(0.3, 0.8))
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if children:
            os.kill(int(rng.choice(children)), signal.SIGKILL)
            kills += 1
    proc.communicate(timeout=120)
    err = (tmp_path / "run.log").read_text()
    assert proc.returncode == 3, err[-2000:]
    assert kills >= 2
    assert err.count('"worker.died"') >= 1
    stored = dict(sqlite3.connect(tmp_path / "orders.sqlite").execute("SELECT id, cents FROM orders"))
    assert stored == expected


def test_the_state_directory_defaults_to_state_directory_under_systemd(tmp_path, run_cli):
    write_orders(tmp_path / "orders.jsonl", 5)
    done = run_cli("run", os.path.join(EXAMPLES, "etl.py"), env={"STATE_DIRECTORY": str(tmp_path / "systemd")})
    assert done.returncode == 0, done.stderr
    status = json.loads(run_cli("status", "--state-dir", str(tmp_path / "systemd" / "etl"), "--json").stdout)
    assert status["topology"] == "etl" and status["positions"]["orders/0"] > 0
    assert not (tmp_path / ".consecution").exists()


def test_dead_letters_name_their_records_by_seq_and_act_on_one_with_seq_or_its_older_name_root(tmp_path, run_cli):
    state = str(tmp_path / "state")
    t, _ = _topology(fail_values={2, 3}, max_retries=0)
    assert Scheduler(t, state_dir=state).run().exit_code == 3
    listed = [json.loads(x) for x in run_cli("dead-letters", "--state-dir", state, "--json").stdout.splitlines()]
    assert sorted(d["values"] for d in listed) == [[2], [3]] and all(d["seq"] == d["root"] for d in listed)
    by_value = {d["values"][0]: d["seq"] for d in listed}
    text = run_cli("dead-letters", "--state-dir", state, "--seq", str(by_value[2])).stdout  # a pipe: JSON
    assert [json.loads(x)["values"] for x in text.splitlines()] == [[2]]
    assert run_cli("dead-letters", "--state-dir", state, "--purge", "--seq", str(by_value[2])).returncode == 0
    assert run_cli("dead-letters", "--state-dir", state, "--purge", "--root", str(by_value[3])).returncode == 0
    assert json.loads(run_cli("status", "--state-dir", state, "--json").stdout)["dead_letters"] == 0
