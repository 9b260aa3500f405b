"""`task_timeout`: a call of user code that runs longer ends what runs it as a crash would, and
the record that hangs it is isolated and charged like a record that crashes its process
(runtime/watchdog.py, runtime/recovery.py). Real `consecution run` processes, restarted the
way systemd restarts them, in every mode."""
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from consecution import Topology, TopologyError

MODES = ["single", "thread", "process", "ray"]

HANGS = textwrap.dedent('''
    import sqlite3, time
    from consecution import Bolt, Spout, Topology

    class Store(Bolt):
        def prepare(self, context):
            self.db = sqlite3.connect("out.sqlite", isolation_level=None, timeout=30)
            self.db.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER PRIMARY KEY)")

        def process(self, tup):
            n = tup[0]
            if n == HANG:
                time.sleep(10**6)  # never returns
            time.sleep(SLEEP)
            self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (n,))

    class Stuck(Spout):
        def next_tuple(self):
            time.sleep(10**6)

    topology = Topology("hangs", max_retries=1, message_timeout=20, retry_backoff=0, task_timeout=1)
    topology.spout("numbers", Stuck() if HANG == "spout" else range(N))
    topology.bolt("store", Store()).shuffle_grouping("numbers")
''')


def _write(tmp_path, hang, n=60, sleep=0.0):
    path = tmp_path / "hangs.py"
    path.write_text(f"HANG, N, SLEEP = {hang!r}, {n}, {sleep}\n" + HANGS)
    return path


def _run(path, mode, *extra):
    return subprocess.run([sys.executable, "-m", "consecution", "run", str(path), "--mode", mode, "--workers", "2",
                           "--log-format", "json", *extra], cwd=path.parent, capture_output=True, text=True,
                          timeout=120)


def _seen(tmp_path):
    with sqlite3.connect(tmp_path / "out.sqlite") as db:
        return sorted(n for (n,) in db.execute("SELECT n FROM seen"))


def _dead_letters(tmp_path):
    out = subprocess.run([sys.executable, "-m", "consecution", "dead-letters", "--state-dir", ".consecution/hangs",
                          "--json"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("mode", MODES)
def test_a_record_that_hangs_its_task_is_the_one_dead_letter_and_every_other_is_processed(mode, tmp_path):
    """Process and ray mode: the worker is ended, the run goes on and isolates the culprit. Single
    and thread mode: the process ends (exit 4), and runs started again as systemd would start
    them isolate it: each crash it causes alone costs it an attempt, the others none."""
    path = _write(tmp_path, hang=13)
    codes = []
    while len(codes) < 20:
        done = _run(path, mode)
        codes.append(done.returncode)
        if done.returncode != 4:
            break
        assert '"task.stuck"' in done.stderr and "time.sleep(10**6)" in done.stderr, done.stderr[-3000:]
    assert codes[-1] == 3, (codes, done.stderr[-3000:])  # completed, a record given up
    if mode in ("process", "ray"):  # the worker is ended, the run goes on
        assert codes == [3] and "was ended: a call ran longer than task_timeout" in done.stderr
    else:
        assert 2 <= len(codes) <= 12, codes  # bisection: about log2(suspects) crashes, then max_retries + 1
    assert _seen(tmp_path) == [n for n in range(60) if n != 13]
    letters = _dead_letters(tmp_path)
    assert [letter["values"] for letter in letters] == [[13]], letters
    cause = ("a call ran longer than task_timeout" if mode in ("process", "ray")
             else "the process ended without closing its log")
    assert cause in letters[0]["error"] and "while this record ran alone (attempt 2)" in letters[0]["error"]


@pytest.mark.parametrize("mode", MODES)
def test_slow_calls_within_the_limit_are_never_ended_however_many_run_in_a_row(mode, tmp_path):
    """The limit is per call: 12 calls of 0.3 s in a row (a frame of a worker, a round of the
    scheduler, a batch of a thread may hold several) exceed 1 s together, never alone."""
    path = _write(tmp_path, hang=None, n=12, sleep=0.3)
    done = _run(path, mode, "--workers", "1")
    assert done.returncode == 0 and '"task.stuck"' not in done.stderr, done.stderr[-3000:]
    assert _seen(tmp_path) == list(range(12))


def test_a_spout_whose_next_tuple_never_returns_ends_the_run(tmp_path):
    done = _run(_write(tmp_path, hang="spout"), "process")
    assert done.returncode == 4, done.stderr[-3000:]
    stuck = next(json.loads(line) for line in done.stderr.splitlines() if '"task.stuck"' in line)
    assert stuck["where"].startswith("spout Stuck.next_tuple on the scheduler thread"), stuck


def test_task_timeout_must_be_less_than_the_message_timeout(tmp_path):
    with pytest.raises(TopologyError, match=r"task_timeout \(30 s\) must be less than message_timeout \(30 s\)"):
        Topology("t", message_timeout=30, task_timeout=30)
    with pytest.raises(TopologyError, match="task_timeout must be a positive number"):
        Topology("t", task_timeout=float("nan"))
    done = _run(_write(tmp_path, hang=None, n=3), "single", "--task-timeout", "25")
    assert done.returncode == 2 and "task_timeout (25 s) must be less than message_timeout (20 s)" in done.stderr, \
        done.stderr
