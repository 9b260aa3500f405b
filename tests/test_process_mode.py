"""Process mode's own promises: spawn and fork, supervision of dead workers, no orphans."""
import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from consecution import Bolt, Spout, Topology, UserCodeError
from consecution.testing import run_local

WORKERS = """
import os, sqlite3, time
from consecution import Bolt, Topology

class Slow(Bolt):
    fields = ("n", "pid")

    def prepare(self, context):
        with open(f"worker-{{context.task_index}}.pid", "a") as f:
            f.write(f"{{os.getpid()}}\\n")

    def process(self, tup):
        time.sleep({sleep})
        self.emit((tup[0], os.getpid()))

class Sink(Bolt):
    def prepare(self, context):
        self.db = sqlite3.connect("sink.sqlite")
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER PRIMARY KEY, pid INTEGER)")

    def process(self, tup):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?)", tup.values)

topology = Topology("workers", max_retries=10, retry_backoff=0)
topology.spout("numbers", {source})
topology.bolt("slow", Slow(), parallelism=2).shuffle_grouping("numbers")
topology.bolt("sink", Sink()).shuffle_grouping("slow")
"""


def pids(folder, index):
    path = folder / f"worker-{index}.pid"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def start(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "consecution", "run", "workers.py", "--mode", "process",
                             "--workers", "2", "--log-format", "json", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_worker_is_restarted_and_its_trees_replayed(tmp_path):
    (tmp_path / "workers.py").write_text(WORKERS.format(sleep=0.005, source="range(600)"))
    proc = start(tmp_path)
    assert wait_for(lambda: pids(tmp_path, 0) and (tmp_path / "sink.sqlite").exists())
    time.sleep(0.5)
    victim = pids(tmp_path, 0)[0]
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert len(pids(tmp_path, 0)) == 2 and pids(tmp_path, 0)[1] != victim  # prepared again
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    died = [e for e in events if e["event"] == "worker.died"]
    assert len(died) == 1 and died[0]["exitcode"] == -signal.SIGKILL
    finished = [e for e in events if e["event"] == "run.finished"][0]
    assert finished["completed"] == 600 and finished["given_up"] == 0
    db = sqlite3.connect(tmp_path / "sink.sqlite")
    assert db.execute("SELECT count(*) FROM seen").fetchone() == (600,)


def test_sigterm_stops_the_workers_and_leaves_no_orphans(tmp_path):
    (tmp_path / "workers.py").write_text(WORKERS.format(sleep=0.01, source="__import__('itertools').count()"))
    proc = start(tmp_path, "--grace", "2")  # what is in flight drains for 2 s, not the default 30
    assert wait_for(lambda: pids(tmp_path, 0) and pids(tmp_path, 1) and (tmp_path / "sink.sqlite").exists())
    workers = pids(tmp_path, 0) + pids(tmp_path, 1)
    assert all(alive(pid) for pid in workers)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)


def test_killing_the_supervisor_kills_its_workers_and_a_restart_finds_the_directory_free(tmp_path):
    (tmp_path / "workers.py").write_text(WORKERS.format(sleep=0.005, source="range(400)"))
    proc = start(tmp_path)
    assert wait_for(lambda: pids(tmp_path, 0) and pids(tmp_path, 1))
    time.sleep(0.3)
    workers = pids(tmp_path, 0) + pids(tmp_path, 1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
    again = start(tmp_path)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err[-3000:]
    db = sqlite3.connect(tmp_path / "sink.sqlite")
    assert db.execute("SELECT count(*) FROM seen").fetchone() == (400,)


CLOSURES = """
from consecution import Bolt, Topology


def make_closures():
    \"\"\"Closures, lambdas and a class local to a function: what spawn must carry over.\"\"\"
    offset = 100

    class Add(Bolt):
        fields = ("n",)

        def process(self, tup):
            self.emit((tup[0] + offset,))

    class Show(Bolt):
        def process(self, tup):
            print(tup[0], flush=True)

    t = Topology("closures")
    t.spout("numbers", range(20))
    t.bolt("add", Add(), parallelism=2).shuffle_grouping("numbers")
    t.bolt("double", lambda n: n * 2, parallelism=2, fields=("n",)).shuffle_grouping("add")
    t.bolt("odd", lambda n: n if n % 4 else None, fields=("n",)).custom_grouping(
        "double", lambda tup, n: tup[0] % n)
    t.bolt("show", Show()).shuffle_grouping("odd")
    return t


topology = make_closures()
"""


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_closures_lambdas_and_local_classes_run_under_fork_and_spawn(start_method, run_cli, tmp_path):
    (tmp_path / "closures.py").write_text(CLOSURES)
    single = run_cli("run", "closures.py", "--state-dir", "single")
    assert single.returncode == 0, single.stderr
    done = run_cli("run", "closures.py", "--mode", "process", "--workers", "2", "--start-method", start_method,
                   "--state-dir", start_method)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(single.stdout.split()) and len(single.stdout.split()) == 10


def test_a_topology_built_in_a_test_function_runs_in_process_mode():
    offset = 100
    t = Topology("local")
    t.spout("numbers", range(10))
    t.bolt("add", lambda n: n + offset, parallelism=2).shuffle_grouping("numbers")
    result = run_local(t, mode="process", workers=2)
    assert sorted(result.emitted("add")) == [(n + offset,) for n in range(10)]


def test_an_error_in_prepare_in_a_worker_stops_the_run():
    class Broken(Bolt):
        def prepare(self, context):
            raise OSError("no database here")

        def process(self, tup):
            pass

    t = Topology("broken")
    t.spout("numbers", range(3))
    t.bolt("broken", Broken()).shuffle_grouping("numbers")
    with pytest.raises(UserCodeError) as info:
        run_local(t, mode="process", workers=1)
    assert info.value.component == "broken" and info.value.phase == "prepare"
    assert "no database here" in str(info.value) and "OSError" in info.value.traceback


class Overlapping(Bolt):
    """Writes when each of its tasks' prepare and cleanup start and end, each taking `pause`."""

    def __init__(self, folder, pause, broken=()):
        self.folder, self.pause, self.broken = folder, pause, broken

    def _spell(self, phase):
        start = time.time()
        time.sleep(self.pause)
        with open(os.path.join(self.folder, f"{phase}-{self.index}"), "w") as f:
            f.write(f"{start} {time.time()} {os.getpid()}")
        if phase == "prepare" and self.index in self.broken:
            raise OSError(f"task {self.index} has no database")

    def prepare(self, context):
        self.index = context.task_index
        self._spell("prepare")

    def process(self, tup):
        pass

    def cleanup(self):
        self._spell("cleanup")


def spells(folder, phase):
    """{task index: (start, end, pid)} of the `phase` each task of Overlapping went through."""
    out = {}
    for path in folder.glob(f"{phase}-*"):
        start, end, pid = path.read_text().split()
        out[int(path.name.split("-")[1])] = (float(start), float(end), int(pid))
    return out


def test_workers_prepare_and_clean_up_at_the_same_time(tmp_path):
    t = Topology("overlap")
    t.spout("numbers", range(10))
    t.bolt("slow", Overlapping(str(tmp_path), 0.5), parallelism=2).shuffle_grouping("numbers")
    run_local(t, mode="process", workers=2)
    for phase in ("prepare", "cleanup"):
        (start0, end0, pid0), (start1, end1, pid1) = spells(tmp_path, phase)[0], spells(tmp_path, phase)[1]
        assert pid0 != pid1
        assert start0 < end1 and start1 < end0, f"{phase}: one worker waited for the other"


def test_a_prepare_that_fails_in_one_worker_stops_the_others_too(tmp_path):
    t = Topology("overlap")
    t.spout("numbers", range(10))
    t.bolt("slow", Overlapping(str(tmp_path), 0.3, broken=(1,)), parallelism=3).shuffle_grouping("numbers")
    with pytest.raises(UserCodeError) as info:
        run_local(t, mode="process", workers=3)
    assert info.value.phase == "prepare" and "task 1 has no database" in str(info.value)
    prepared = spells(tmp_path, "prepare")
    assert sorted(prepared) == [0, 1, 2]
    for _, _, pid in prepared.values():  # every worker ended, also those that prepared well
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), timeout=10)


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_spouts_shuffle_gives_a_slow_worker_fewer_tuples_than_a_fast_one():
    """Tuples a spout shuffles wait in the supervisor until a worker asks for work: the task on
    the slow worker gets fewer than round robin's half."""
    from consecution.runtime import Scheduler

    class Work(Bolt):
        fields = ("task",)

        def prepare(self, context):
            self.index = context.task_index

        def process(self, tup):
            if self.index == 0:
                time.sleep(0.05)  # task 0 (worker 0) is slow
            self.emit((self.index,))

    t = Topology("balance")
    t.spout("numbers", range(60))
    t.bolt("work", Work(), parallelism=2).shuffle_grouping("numbers")
    result = Scheduler(t, mode="process", workers=2, collect=True).run()
    by_task = collections.Counter(v[0] for v in result.emitted("work"))
    assert sum(by_task.values()) == 60 and by_task[1] > 40, by_task


def test_a_shuffle_between_bolts_stays_inside_the_emitting_worker():
    """split and lower have a task on each worker: each lower task gets only what the split task
    of its own worker emitted (a direct call, no frame to the other worker)."""
    from consecution.runtime import Scheduler

    def split(line):
        yield from line.split()

    class Lower(Bolt):
        fields = ("source_task", "task")

        def prepare(self, context):
            self.task_id = context.task_id

        def process(self, tup):
            self.emit((tup.task, self.task_id))

    t = Topology("local")
    t.spout("lines", [f"a{i} b{i} c{i}" for i in range(40)])
    t.bolt("split", split, parallelism=2).shuffle_grouping("lines")
    t.bolt("lower", Lower(), parallelism=2).shuffle_grouping("split")
    result = Scheduler(t, mode="process", workers=2, collect=True).run()
    pairs = collections.Counter((s, t) for s, t in result.emitted("lower"))
    assert sum(pairs.values()) == 120 and len({s for s, _ in pairs}) == 2  # both split tasks worked
    placement = {s: t for s, t in pairs}  # split task -> the one lower task that got its words
    assert len(placement) == 2 and len(set(placement.values())) == 2 and len(pairs) == 2, pairs


@pytest.mark.parametrize("singles", [False, True])
def test_undeclared_values_between_workers_keep_their_shape_and_their_order(singles):
    """A function with no declared fields sends the other worker's task each one-value tuple
    as its value itself, unless that value is a list (then, as any other tuple, as an array):
    every shape arrives as it was emitted, and in emit order. `singles`: only one-value tuples
    whose value is no list, which a crossing sends as width 1 (events.Crossing, `nested`)."""
    from consecution.runtime import Scheduler

    def shapes(n):  # one of each shape per input, undeclared fields
        yield f"s{n}"
        yield ([n, n],) if not singles else n  # one value, a list; or an int
        yield {"n": n}
        yield (None,)
        yield (n, "two") if not singles else (n * 1.5,)
        yield b"raw"

    class Arrivals(Bolt):
        fields = ("values",)

        def process(self, tup):
            self.emit((list(tup.values),))

    t = Topology("shapes")
    t.spout("numbers", range(200))
    t.bolt("shapes", shapes, parallelism=2).shuffle_grouping("numbers")
    t.bolt("arrivals", Arrivals()).global_grouping("shapes")  # one task: half the inputs cross workers
    got = [values for (values,) in Scheduler(t, mode="process", workers=2, collect=True).run().emitted("arrivals")]
    if singles:
        expected = {n: [[f"s{n}"], [n], [{"n": n}], [None], [n * 1.5], [b"raw"]] for n in range(200)}
    else:
        expected = {n: [[f"s{n}"], [[n, n]], [{"n": n}], [None], [n, "two"], [b"raw"]] for n in range(200)}
    by_input = collections.defaultdict(list)
    for values in got:
        first = values[0]
        n = (first["n"] if isinstance(first, dict) else first[0] if isinstance(first, list)
             else int(first[1:]) if isinstance(first, str) else first if isinstance(first, int)
             else int(first / 1.5) if isinstance(first, float) else None)
        if n is None:  # (None,) and b"raw" name no input: checked by count below
            continue
        by_input[n].append(values)
    assert len(got) == 6 * 200
    assert sorted(map(repr, got)) == sorted(repr(v) for n in range(200) for v in expected[n])
    for n, arrived in by_input.items():  # s, list (or int), dict and the pair (or float) arrive in emit order
        assert arrived == [v for v in expected[n] if v not in ([None], [b"raw"])], n


class Where(Bolt):
    """Emits the values it got and the id of the task that got them; raises for "boom"."""

    fields = ("values", "task")

    def prepare(self, context):
        self.task_id = context.task_id

    def process(self, tup):
        if tup[0] == "boom":
            raise ValueError("boom")
        self.emit((list(tup.values), self.task_id))


@pytest.mark.parametrize("width", [1, 2, None])
@pytest.mark.parametrize("reliability", ["none", "replay"])
def test_tuples_between_workers_reach_the_task_of_their_hash_and_a_failure_fails_only_its_record(
        width, reliability, tmp_path):
    """What a task emits to a task of the other worker travels as columns in runs that share
    their roots (runtime/events.py): each value reaches the task of its hash with its own
    values, for declared fields of one or two values and for undeclared ones; a value that
    raises there fails its own record only (dead-lettered with replay, reported with none)."""
    from consecution.runtime import Scheduler

    class Split(Bolt):
        fields = {1: ("word",), 2: ("word", "position"), None: None}[width]

        def process(self, tup):
            for position, word in enumerate(tup[0].split()):
                self.emit((word,) if width == 1 else (word, position))

    lines = [f"w{i} x{i} y{i} z{i}" for i in range(200)] + ["a boom b"]
    t = Topology("cross", reliability=reliability, max_retries=1, retry_backoff=0)
    t.spout("lines", lines)
    t.bolt("split", Split(), parallelism=2).shuffle_grouping("lines")
    where = t.bolt("where", Where(), parallelism=2)
    if width is None:
        where.global_grouping("split")  # a grouping that needs no field: task 0 gets all
    else:
        where.fields_grouping("split", "word")
    state = str(tmp_path / "state") if reliability == "replay" else None
    result = Scheduler(t, mode="process", workers=2, collect=True, state_dir=state).run()
    got = [(values[0], task, len(values)) for values, task in result.emitted("where")]
    words = [w for line in lines[:-1] for w in line.split()]
    assert sorted(w for w, _, _ in got if w not in ("a", "b")) == sorted(words)
    assert {n for _, _, n in got} == {1 if width == 1 else 2}
    tasks = {w: task for w, task, _ in got}
    assert len(set(tasks.values())) == (1 if width is None else 2)  # both workers' tasks got words
    for w, task, _ in got:
        assert tasks[w] == task  # one task per word
    if reliability == "replay":
        assert result.completed == len(lines) - 1 and result.failed == 2  # the attempt and its retry
        assert result.dead_letters == 1 and result.given_up == 1
    else:
        assert result.errors == 1


class Lines(Spout):
    """Emits `n` lines of 100 words; at each call, notes the process executor's counts: what is
    outstanding, and what of it workers forward to each other."""
    scheduler = None  # set by the test: the spout runs in the supervisor, next to the executor

    def __init__(self, n):
        self.n = n

    def open(self, context):
        self.i, self.seen = 0, []

    def next_tuple(self):
        if self.i == self.n:
            raise StopIteration
        executor = Lines.scheduler.executor
        self.seen.append((executor.outstanding, executor.forwards))
        self.emit((" ".join(f"w{(self.i * 7 + k) % 997}" for k in range(100)),))
        self.i += 1


def test_deliveries_workers_forward_each_other_leave_room_for_the_spouts():
    """The room for spout reads (ROOM outstanding deliveries) counts what the supervisor hands
    out, not what workers send each other through it: the words a line sends to the other
    worker must not stop the spouts (they did, and starved the workers). Checked on the
    executor itself (forwards as a worker's reply brings them, records as a commit queues
    them), then through a run whose lines send most words across: the rule holds at every
    spout call, and the counts return to 0."""
    from consecution.runtime import Scheduler
    from consecution.runtime.executors import ROOM

    def split(line):
        yield from line.split()

    class Count(Bolt):
        def prepare(self, context):
            self.n = 0

        def process(self, tup):
            self.n += 1

    def topology(lines):
        t = Topology("room")
        t.spout("lines", lines)
        t.bolt("split", split, parallelism=2).shuffle_grouping("lines")
        t.bolt("count", Count(), parallelism=2).fields_grouping("split", "value")
        return t

    executor = Scheduler(topology(["a b"]), mode="process", workers=2).executor  # no worker started
    executor._apply([], [], [[1, 2 * ROOM, b"words for worker 1"]])  # as a worker's reply brings them
    assert executor.outstanding == 2 * ROOM and executor.has_room()
    executor.send_records(-1, [("a line",)] * (ROOM - 1), "default", "lines", 0, list(range(1, ROOM)), 0)
    assert executor.has_room()
    executor.send(-1, ("one more",), "default", "lines", 0, 7, (7,), None)
    assert not executor.has_room()  # ROOM handed out: the spouts wait

    lines = Lines(3000)
    scheduler = Lines.scheduler = Scheduler(topology(lines), mode="process", workers=2)
    result = scheduler.run()
    assert result.completed == 3000 and result.failed == 0
    seen = lines.seen  # the supervisor runs the spout object itself
    assert len(seen) == 3000
    assert all(outstanding - forwards < ROOM for outstanding, forwards in seen)
    assert scheduler.executor.outstanding == 0 and scheduler.executor.forwards == 0


def test_a_workers_connection_holds_frames_unread():
    """A connection to a worker asks the kernel for room for frames (runtime/process.py,
    SOCKET_BUFFER): a supervisor's send of a frame does not wait for the worker to read the
    one before, as far as net.core.wmem_max allows."""
    import socket

    import multiprocess

    from consecution.runtime.process import SOCKET_BUFFER, _room_for_frames
    with open("/proc/sys/net/core/wmem_max") as f:
        allowed = min(int(f.read()), SOCKET_BUFFER)
    parent, child = multiprocess.Pipe(duplex=True)
    sock = socket.socket(fileno=os.dup(parent.fileno()))
    before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    if allowed * 2 <= before:
        pytest.skip(f"the kernel allows no more than the default buffer here ({before} bytes)")
    _room_for_frames(parent)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == allowed * 2  # Linux doubles what it grants
    sock.close()
    parent.close()
    child.close()


def test_three_workers_cross_to_two_others_each_and_a_failure_fails_only_its_record(tmp_path):
    """With three workers, a task sends to the tasks of two other workers (a crossing each,
    looked up per word): each word reaches the task of its hash once, in the order its line
    emitted it, and a word that raises fails its own line only."""
    from consecution.runtime import Scheduler

    def split(line):
        number, words = line.split(":")
        for position, word in enumerate(words.split()):
            yield (word, int(number) * 100 + position)

    lines = [f"{i}:" + " ".join(f"w{(i * 13 + k) % 101}" for k in range(12)) for i in range(300)] + ["300:x boom y"]
    t = Topology("three", max_retries=0)
    t.spout("lines", lines)
    t.bolt("split", split, parallelism=3, fields=("word", "at")).shuffle_grouping("lines")  # two values per word
    t.bolt("where", Where(), parallelism=3).fields_grouping("split", "word")
    result = Scheduler(t, mode="process", workers=3, collect=True, state_dir=str(tmp_path / "state")).run()
    got = [(word, at, task) for (word, at), task in result.emitted("where") if at < 30000]
    assert sorted(at for _, at, _ in got) == [i * 100 + k for i in range(300) for k in range(12)]
    tasks, last = collections.defaultdict(set), {}
    for word, at, task in got:
        tasks[word].add(task)
        line = (task, at // 100)
        assert last.get(line, -1) < at  # a line's words reach each task in the order emitted
        last[line] = at
    assert all(len(t) == 1 for t in tasks.values()) and len(set().union(*tasks.values())) == 3
    assert result.completed == 300 and result.given_up == 1 and result.dead_letters == 1


@pytest.mark.parametrize("mode", ["process", "ray"])
@pytest.mark.parametrize("numbered", [False, True])
def test_words_reach_a_worker_started_again_as_they_were_sent(tmp_path, mode, numbered):
    """Words cross to the other worker as numbers in a vocabulary both ends keep
    (runtime/vocabulary.py): numbered at encoding (a generator's words), or picked as numbers
    by the fields grouping itself (a function's str). A receiving worker killed mid-run is
    started again knowing no words: the senders' vocabularies start over, so every word it
    gets afterwards is the word sent, none fails, and every record completes."""
    from consecution.runtime import Scheduler

    marker = tmp_path / "killed"

    def words(n):
        yield f"{n}:a"
        yield "the"
        yield f"{n}:b"
        yield "and"

    class Note(Bolt):
        """Writes each word with the record it came from; kills its worker once, mid-run."""

        def prepare(self, context):
            self.index, self.seen = context.task_index, 0
            self.out = open(tmp_path / f"seen-{os.getpid()}", "a")

        def process(self, tup):
            self.out.write(f"{tup.seqs[0]} {tup[0]}\n")
            self.out.flush()
            self.seen += 1
            if self.index == 1 and self.seen == 150 and not marker.exists():
                marker.write_text("")
                os.kill(os.getpid(), signal.SIGKILL)

    def same(word):
        return word

    t = Topology("vocabulary", max_retries=0)
    t.spout("numbers", range(600))
    t.bolt("words", words, parallelism=2).shuffle_grouping("numbers")
    if numbered:  # a str from a function: the fields grouping picks its number (vocabulary.Numbered)
        t.bolt("same", same, parallelism=2).local_or_shuffle_grouping("words")
    t.bolt("note", Note(), parallelism=2).fields_grouping("same" if numbered else "words", "value")
    result = Scheduler(t, mode=mode, workers=2, state_dir=str(tmp_path / "state")).run()
    assert marker.exists() and result.recovered > 0
    assert result.completed == 600 and result.failed == 0 and result.given_up == 0
    numbers_of = collections.defaultdict(set)  # seq -> the numbers its words name
    noted = collections.Counter()
    for path in tmp_path.glob("seen-*"):
        for line in path.read_text().splitlines():
            seq, word = line.split(" ")
            noted[word] += 1
            if ":" in word:
                numbers_of[seq].add(word.split(":")[0])
    assert all(len(numbers) == 1 for numbers in numbers_of.values())  # no word of another record
    assert all(noted[f"{n}:{part}"] >= 1 for n in range(600) for part in "ab")
    assert set(noted) == {f"{n}:{part}" for n in range(600) for part in "ab"} | {"the", "and"}


@pytest.mark.parametrize("mode", ["process", "ray"])
def test_a_function_that_raises_amid_a_crossing_run_fails_its_record_alone(tmp_path, mode):
    """The words of one record cross to the other worker as one run. A function there that
    raises for one of them fails that record (a dead letter, with max_retries 0) and skips the
    rest of its run; every other record's words reach the sink, each with its own record (the
    next run does not start with the failed one's rest)."""
    from consecution.runtime import Scheduler

    def words(n):
        for part in "abcdef":
            yield f"{n}:{part}"

    def check(word):
        n, part = word.split(":")
        if int(n) % 10 == 3 and part == "a":  # the first of its record's words: the rest come after it
            raise ValueError(f"no {word}")
        return word

    class Note(Bolt):
        def prepare(self, context):
            self.out = open(tmp_path / f"seen-{os.getpid()}-{context.task_index}", "a")

        def process(self, tup):
            self.out.write(f"{tup.seqs[0]} {tup[0]}\n")
            self.out.flush()

    t = Topology("amid", max_retries=0)
    t.spout("numbers", range(300))
    t.bolt("words", words, parallelism=2).shuffle_grouping("numbers")
    t.bolt("check", check, parallelism=2).fields_grouping("words", "value")
    t.bolt("note", Note(), parallelism=2).local_or_shuffle_grouping("check")
    result = Scheduler(t, mode=mode, workers=2, state_dir=str(tmp_path / "state")).run()
    assert result.completed == 270 and result.given_up == 30 and result.dead_letters == 30
    numbers_of, noted = collections.defaultdict(set), set()
    for path in tmp_path.glob("seen-*"):
        for line in path.read_text().splitlines():
            seq, word = line.split(" ")
            numbers_of[seq].add(word.split(":")[0])
            noted.add(word)
    assert all(len(numbers) == 1 for numbers in numbers_of.values())  # each word with its own record
    assert {f"{n}:{part}" for n in range(300) if n % 10 != 3 for part in "abcdef"} <= noted
    assert not {f"{n}:a" for n in range(3, 300, 10)} & noted
