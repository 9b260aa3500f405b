"""The command line, through real subprocesses: exit statuses, messages, signals, logs."""
import json
import shutil
import os
import signal
import subprocess
import sys
import time

import pytest

from consecution.storage import DurableLog
from support import EXAMPLES

GOOD = """
    from consecution import Bolt, Topology

    class Show(Bolt):
        def process(self, tup):
            print("got", tup[0], flush=True)

    topology = Topology("good")
    topology.spout("numbers", range(3))
    topology.bolt("show", Show()).shuffle_grouping("numbers")
    other = Topology("other")
    other.spout("numbers", [7])
    other.bolt("show", Show()).shuffle_grouping("numbers")
"""


BROKEN_PREPARE = """
        from consecution import Bolt, Topology

        class Broken(Bolt):
            def prepare(self, context):
                raise OSError("database unreachable")
            def process(self, tup):
                pass

        topology = Topology("broken")
        topology.spout("numbers", range(3))
        topology.bolt("broken", Broken()).shuffle_grouping("numbers")
    """


def test_run_completes_with_exit_0(run_cli, topology_file):
    done = run_cli("run", topology_file(GOOD))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["got 0", "got 1", "got 2"]


def test_run_picks_a_named_topology(run_cli, topology_file):
    done = run_cli("run", topology_file(GOOD) + ":other")
    assert done.returncode == 0 and done.stdout.strip() == "got 7"


def test_run_with_a_poison_record_exits_3_and_logs_the_give_up_as_json(run_cli, topology_file):
    path = topology_file("""
        from consecution import Topology

        def check(n):
            if n == 2:
                raise ValueError("poison record")
            return n

        topology = Topology("poison", retry_backoff=0, max_retries=1)
        topology.spout("numbers", range(4))
        topology.bolt("check", check).shuffle_grouping("numbers")
    """)
    done = run_cli("run", path, "--log-format", "json")
    assert done.returncode == 3, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    given_up = [e for e in events if e["event"] == "tuple.given_up"]
    assert len(given_up) == 1 and given_up[0]["component"] == "check"
    assert "poison record" in given_up[0]["error"] and given_up[0]["attempts"] == 2
    finished = [e for e in events if e["event"] == "run.finished"][0]
    assert finished["completed"] == 3 and finished["given_up"] == 1


def test_command_line_overrides_the_topology_settings(run_cli, topology_file):
    path = topology_file("""
        from consecution import Topology

        def check(n):
            raise ValueError("always")

        topology = Topology("override", retry_backoff=0, max_retries=5)
        topology.spout("numbers", range(1))
        topology.bolt("check", check).shuffle_grouping("numbers")
    """)
    done = run_cli("run", path, "--log-format", "json", "--max-retries", "0", "--reliability", "replay")
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [e["attempts"] for e in events if e["event"] == "tuple.given_up"] == [1]
    assert done.returncode == 3


def test_invalid_topology_exits_2_naming_the_place_without_traceback(run_cli, topology_file):
    path = topology_file("""
        from consecution import Topology
        topology = Topology("cyclic")
        topology.spout("numbers", range(3))
        topology.bolt("a", lambda n: n).shuffle_grouping("numbers").shuffle_grouping("b")
        topology.bolt("b", lambda n: n).shuffle_grouping("a")
    """)
    for command in ("run", "validate", "show"):
        done = run_cli(command, path)
        assert done.returncode == 2, (command, done.stderr)
        assert "cycle" in done.stderr and "a -> b -> a" in done.stderr
        assert "Traceback" not in done.stderr


def test_unknown_source_at_build_time_exits_2(run_cli, topology_file):
    path = topology_file("""
        from consecution import Topology
        topology = Topology("typo")
        topology.spout("numbers", range(3))
        topology.bolt("a", lambda n: n).shuffle_grouping("nubmers")
    """)
    done = run_cli("validate", path)
    assert done.returncode == 2 and "unknown component 'nubmers'" in done.stderr


def test_syntax_error_in_a_topology_file_names_file_and_line(run_cli, topology_file):
    path = topology_file("from consecution import Topology\ntopology = Topology('x'\nx = )\n")
    done = run_cli("run", path)
    assert done.returncode == 2 and "topo.py:" in done.stderr and "Traceback" not in done.stderr


def test_missing_file_and_missing_topology_exit_2(run_cli, topology_file):
    assert run_cli("run", "nowhere.py").returncode == 2
    path = topology_file("x = 1\n")
    done = run_cli("run", path)
    assert done.returncode == 2 and "defines no 'topology'" in done.stderr
    done = run_cli("run", topology_file(GOOD, "two.py") + ":nothing")
    assert done.returncode == 2 and "defines no 'nothing'" in done.stderr


def test_error_importing_the_module_exits_1_with_its_traceback(run_cli, topology_file):
    done = run_cli("run", topology_file("import no_such_module_here\n"))
    assert done.returncode == 1 and "No module named 'no_such_module_here'" in done.stderr


def test_a_typo_in_a_topology_file_shows_the_users_line_and_a_suggestion_not_the_loader(run_cli, topology_file):
    path = topology_file(GOOD.replace("shuffle_grouping", "shufle_grouping"))
    done = run_cli("run", path)
    assert done.returncode == 1 and "shufle_grouping" in done.stderr and "topo.py\", line" in done.stderr
    assert "Did you mean: 'shuffle_grouping'" in done.stderr
    assert "loading.py" not in done.stderr and "importlib" not in done.stderr, done.stderr


def test_user_error_in_prepare_exits_1(run_cli, topology_file):
    path = topology_file(BROKEN_PREPARE)
    done = run_cli("run", path, "--log-format", "json")
    assert done.returncode == 1
    failed = [json.loads(line) for line in done.stderr.splitlines() if '"run.failed"' in line][0]
    assert failed["component"] == "broken" and failed["phase"] == "prepare"
    assert "database unreachable" in failed["error"]


def test_every_mode_gives_the_same_output(run_cli, topology_file):
    outputs = set()
    for mode in ("single", "thread", "process"):
        done = run_cli("run", topology_file(GOOD), "--mode", mode, "--workers", "2", "--state-dir", mode)
        assert done.returncode == 0, (mode, done.stderr)
        outputs.add(tuple(sorted(done.stdout.splitlines())))
    assert outputs == {("got 0", "got 1", "got 2")}


def test_bad_flag_values_exit_2(run_cli, topology_file):
    assert run_cli("run", topology_file(GOOD), "--max-pending", "0").returncode == 2
    assert run_cli("run", topology_file(GOOD), "--mode", "cluster").returncode == 2
    for flag in ("--message-timeout", "--grace", "--checkpoint-interval"):
        refused = run_cli("run", topology_file(GOOD), flag, "nan")
        assert refused.returncode == 2 and "'nan' is not a number" in refused.stderr, (flag, refused.stderr)


def test_validate_and_show(run_cli):
    wordcount = os.path.join(EXAMPLES, "wordcount.py")
    done = run_cli("validate", wordcount)
    assert done.returncode == 0 and "'wordcount' is valid" in done.stdout
    text = run_cli("show", wordcount).stdout
    assert "bolt  count  x2" in text and "<- split:default  fields(word)" in text
    dot = run_cli("show", wordcount, "--format", "dot").stdout
    assert dot.startswith('digraph "wordcount"') and '"split" -> "count" [label="fields(word)"]' in dot


def test_show_draws_the_revenue_example_as_svg_and_png_with_graphviz(run_cli, tmp_path):
    import xml.etree.ElementTree as ElementTree
    revenue = os.path.join(EXAMPLES, "revenue.py")
    done = run_cli("show", revenue, "--format", "svg", "-o", str(tmp_path / "revenue.svg"))
    assert done.returncode == 0, done.stderr
    svg = ElementTree.parse(tmp_path / "revenue.svg").getroot()
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    for label in ("topology revenue", "payments", "route(by_budget==0)", "stateful", "report"):
        assert label in texts, (label, texts)
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert "payments&#45;&gt;operating_budget" in titles or "payments->operating_budget" in titles, titles
    done = run_cli("show", os.path.join(EXAMPLES, "wordcount.py"), "--format", "png", "-o", str(tmp_path / "w.png"))
    assert done.returncode == 0 and (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dot = run_cli("show", revenue, "--format", "dot", "-o", str(tmp_path / "revenue.dot"))
    assert dot.returncode == 0 and dot.stdout == ""
    assert (tmp_path / "revenue.dot").read_text().startswith('digraph "revenue"')


def test_show_without_graphviz_or_without_a_file_exits_2_saying_what_to_do(run_cli, tmp_path):
    revenue = os.path.join(EXAMPLES, "revenue.py")
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    no_dot = run_cli("show", revenue, "--format", "svg", "-o", str(tmp_path / "r.svg"), env={"PATH": str(bare)})
    assert no_dot.returncode == 2 and "`dot` program of Graphviz" in no_dot.stderr
    assert "apt install graphviz" in no_dot.stderr and "Traceback" not in no_dot.stderr
    assert not (tmp_path / "r.svg").exists()
    no_file = run_cli("show", revenue, "--format", "png")
    assert no_file.returncode == 2 and "-o FILE" in no_file.stderr


def test_sigterm_stops_an_endless_run_gracefully_with_exit_0(tmp_path, topology_file):
    path = topology_file("""
        import itertools
        from consecution import Bolt, Topology

        class Sink(Bolt):
            def process(self, tup):
                if tup[0] == 10:
                    print("running", flush=True)

        topology = Topology("endless")
        topology.spout("numbers", itertools.count())
        topology.bolt("sink", Sink()).shuffle_grouping("numbers")
    """)
    proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", path, "--log-format", "json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    finished = [json.loads(line) for line in err.splitlines() if '"run.finished"' in line][0]
    assert finished["status"] == "stopped" and finished["pending"] == 0


def test_second_signal_stops_at_once(tmp_path, topology_file):
    path = topology_file("""
        import time
        from consecution import Bolt, Topology

        class Slow(Bolt):
            def process(self, tup):
                print("processing", flush=True)
                time.sleep(60)

        topology = Topology("slow")
        topology.spout("numbers", range(5))
        topology.bolt("slow", Slow()).shuffle_grouping("numbers")
    """)
    proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", path, "--log-format", "json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "processing"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 0, err
    assert '"aborted"' in err


def test_console_log_prints_the_traceback_of_a_user_error_as_python_does(run_cli, topology_file):
    path = topology_file(BROKEN_PREPARE)
    done = run_cli("run", path, "--log-format", "console")
    assert done.returncode == 1
    assert "run.failed" in done.stderr and "Traceback (most recent call last):" in done.stderr
    assert 'line 6, in prepare\n    raise OSError("database unreachable")' in done.stderr


PRODUCER = """
    from consecution import Topology, component

    def double(n):
        return n * 2

    topology = Topology("producer", range(10) | component(double, fields=("x",)))
    topology.output("doubled", "double")
"""

CONSUMER = """
    from consecution import Topology, component
    from consecution.spouts import Output

    def show(x):
        print("got", x, flush=True)

    topology = Topology("consumer", component(Output("pstate", "doubled"), name="doubled") | show)
"""

OPEN = """
    from consecution import Topology, component

    def parse(n):
        return f"line {n}"

    def check(line):
        return line

    topology = Topology("lines", component(parse, group_by="value") | check)
    topology.output("checked", "check")
    fed = range(2) | topology
"""


def test_status_shows_each_output_with_its_consumers_and_their_lag(run_cli, topology_file, tmp_path):
    from consecution.storage import register_consumer
    assert run_cli("run", topology_file(PRODUCER, "producer.py"), "--state-dir", "pstate").returncode == 0
    status = json.loads(run_cli("status", "--state-dir", "pstate", "--json").stdout)
    outbox = status["outputs"]["doubled"].pop("id")
    assert status["outputs"] == {"doubled": {"fields": ["x"], "length": 10, "last": 10, "trimmed": 0,
                                             "closed": True, "consumers": {}}}
    consumed = run_cli("run", topology_file(CONSUMER, "consumer.py"), "--state-dir", "cstate")
    assert consumed.returncode == 0 and consumed.stdout.count("got") == 10, consumed.stderr
    register_consumer(str(tmp_path / "pstate"), "doubled", "other.doubled", 4, outbox)  # stopped part-way
    register_consumer(str(tmp_path / "pstate"), "doubled", "old.doubled", 2, "a-former-outbox")  # not shown
    status = json.loads(run_cli("status", "--state-dir", "pstate", "--json").stdout)
    assert status["outputs"]["doubled"]["consumers"] == {"consumer.doubled": {"position": 10, "lag": 0},
                                                         "other.doubled": {"position": 4, "lag": 6}}
    text = run_cli("status", "--state-dir", "pstate").stdout
    assert "\noutputs:\n  doubled:" in text and '"other.doubled": {"position": 4, "lag": 6}' in text
    consumer = json.loads(run_cli("status", "--state-dir", "cstate", "--json").stdout)
    assert consumer["outputs"] == {} and consumer["positions"] == {"doubled/0": [outbox, 10]}


def test_status_of_a_topology_without_outputs_shows_none(run_cli, topology_file):
    assert run_cli("run", topology_file(GOOD), "--state-dir", "good").returncode == 0
    assert json.loads(run_cli("status", "--state-dir", "good", "--json").stdout)["outputs"] == {}
    assert "\noutputs:            {}\n" in run_cli("status", "--state-dir", "good").stdout


def test_status_reads_a_state_dir_written_before_outputs_existed(run_cli, tmp_path):
    import lmdb
    from consecution.storage import encode
    (tmp_path / "old" / "log").mkdir(parents=True)
    env = lmdb.open(str(tmp_path / "old" / "log"), max_dbs=8)  # the databases of that version
    for name in (b"pending", b"dead", b"positions"):
        env.open_db(name)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"name", encode("old"), db=meta)
    env.close()
    done = run_cli("status", "--state-dir", "old", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["topology"] == "old" and status["outputs"] == {} and status["state_entries"] == {}


def test_status_shows_the_output_of_a_running_producer(run_cli, topology_file, tmp_path):
    path = topology_file("""
        import itertools
        from consecution import Topology, component

        def double(n):
            return n * 2

        topology = Topology("endless", itertools.count() | component(double))
        topology.output("doubled", "double")
    """)
    proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", path, "--state-dir", "pstate",
                             "--log-format", "json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            done = run_cli("status", "--state-dir", "pstate", "--json")
            status = json.loads(done.stdout) if done.returncode == 0 else {}
            if status.get("outputs", {}).get("doubled", {}).get("length"):
                break
            assert time.monotonic() < deadline and proc.poll() is None, (done.stderr, proc.poll())
            time.sleep(0.1)
        doubled = status["outputs"]["doubled"]
        assert status["running_pid"] == proc.pid and doubled["closed"] is False
        assert doubled["last"] == doubled["length"] + doubled["trimmed"] and doubled["fields"] is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_show_draws_a_named_output_as_an_output(run_cli, topology_file):
    path = topology_file(PRODUCER)
    text = run_cli("show", path).stdout
    assert "  output doubled  <- double:default  (x)" in text and "__output" not in text
    dot = run_cli("show", path, "--format", "dot").stdout
    assert '"__output.doubled" [shape=cds, label="output doubled"];' in dot
    assert '"double" -> "__output.doubled";' in dot
    assert "max_pending=1000 (stateful bolts)" in text  # an output's writer is stateful


BIG = """
from consecution import Topology
topology = Topology("big")
topology.spout("numbers", range(3))
for i in range(2000):  # far more text than a pipe holds
    topology.bolt(f"step_{i}", lambda x: x).shuffle_grouping(f"step_{i - 1}" if i else "numbers")
"""


def test_show_piped_into_head_exits_quietly(tmp_path, topology_file):
    path = topology_file(BIG)
    done = subprocess.run(f"{sys.executable} -m consecution show {path} | head -1; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("topology big") and done.stderr == ""


def test_show_draws_an_open_topology_with_its_entries_and_run_refuses_it(run_cli, topology_file):
    path = topology_file(OPEN)
    done = run_cli("show", path)
    assert done.returncode == 0, done.stderr
    assert "  bolt  parse  x1  (FunctionBolt)\n          <- (entry: fed by producer | topology)  fields(value)\n" \
        in done.stdout
    assert "  output checked  <- check:default  (undeclared)" in done.stdout
    dot = run_cli("show", path, "--format", "dot").stdout
    assert '"__input" [shape=point, xlabel="input"];' in dot
    assert '"__input" -> "parse" [label="fields(value)", style=dashed];' in dot
    refused = run_cli("run", path)
    assert refused.returncode == 2 and "feed it with `producer | topology`" in refused.stderr


def test_show_draws_a_composed_topology_with_its_producer(run_cli, topology_file):
    path = topology_file(OPEN) + ":fed"
    text = run_cli("show", path).stdout
    assert "  spout range  x1  (IterableSpout)" in text and "<- range:default  fields(value)" in text
    assert "entry" not in text and "  output checked  <- check:default" in text
    dot = run_cli("show", path, "--format", "dot").stdout
    assert '"range" -> "parse" [label="fields(value)"];' in dot and "__input" not in dot
    assert run_cli("run", path).returncode == 0


def test_show_says_which_output_an_output_spout_reads(run_cli, topology_file, tmp_path):
    path = topology_file(CONSUMER.replace('Output("pstate", "doubled")',
                                          'Output("pstate", "doubled", fields=("x",))'))
    text = run_cli("show", path).stdout
    assert f"  spout doubled  x1  (Output {tmp_path / 'pstate'} 'doubled')" in text
    dot = run_cli("show", path, "--format", "dot").stdout
    assert (f'"doubled" [shape=box, label="doubled\\nreads output \'doubled\'\\nof {tmp_path / "pstate"}", '
            'style="rounded,filled"') in dot


def test_requeue_and_purge_refuse_a_path_that_holds_no_state_and_create_nothing(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    for flag in ("--requeue", "--purge"):
        missing = run_cli("dead-letters", "--state-dir", str(tmp_path / "missing"), flag)
        assert missing.returncode == 2 and "no such state directory" in missing.stderr, missing.stderr
        empty = run_cli("dead-letters", "--state-dir", str(tmp_path / "empty"), flag)
        assert empty.returncode == 2 and "holds no consecution state" in empty.stderr, empty.stderr
    assert not (tmp_path / "missing").exists() and list((tmp_path / "empty").iterdir()) == []


def test_a_state_directory_that_cannot_be_one_is_a_clear_error(run_cli, topology_file, tmp_path):
    (tmp_path / "afile").write_text("x")
    for path, reason in ((tmp_path / "afile", "it is a file"), (tmp_path / "afile" / "sub", "Not a directory")):
        done = run_cli("run", topology_file(GOOD), "--state-dir", str(path))
        assert done.returncode == 2 and "as a state directory" in done.stderr and reason in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_more_threads_than_tasks_start_only_one_per_task(run_cli, topology_file):
    done = run_cli("run", topology_file(GOOD), "--mode", "thread", "--workers", "100000", "--state-dir", "many")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


SHADOWING = """
import copy
from consecution import Topology


def write(n):
    with open("seen.txt", "a") as f:  # appends of one short line each: whole lines in any mode
        f.write(f"{copy.copy(n)}\\n")


topology = Topology("shadow")
topology.spout("n", range(6))
topology.bolt("p", write, parallelism=2).shuffle_grouping("n")
"""


@pytest.mark.parametrize("name", ["copy.py", "signal.py", "socket.py", "consecution.py"])
def test_a_topology_file_named_like_a_module_hides_nothing(run_cli, tmp_path, name):
    """The file is imported under a name of its own: process mode (fork) runs it, and spawn,
    whose workers would import the other module by that name, is refused with the reason.
    (The file is in a folder of its own: `python -m` puts the working directory first on
    sys.path, where a copy.py would shadow the standard module before any topology loads.)"""
    (tmp_path / "jobs").mkdir()
    path = tmp_path / "jobs" / name
    path.write_text(SHADOWING)
    path = str(path)
    done = run_cli("run", path, "--mode", "process", "--workers", "2", "--state-dir", "s")
    assert done.returncode == 0, done.stderr
    assert sorted(int(x) for x in (tmp_path / "seen.txt").read_text().split()) == list(range(6))
    spawned = run_cli("run", path, "--mode", "process", "--start-method", "spawn", "--state-dir", "t")
    assert spawned.returncode == 2 and "rename the file" in spawned.stderr, spawned.stderr


def _written_log(run_cli, topology_file):
    done = run_cli("run", topology_file(GOOD), "--state-dir", "s")
    assert done.returncode == 0, done.stderr
    return topology_file(GOOD)


@pytest.mark.parametrize("damage", ["half", "empty", "garbled"])
def test_a_damaged_log_is_a_clear_error_never_a_signal_or_a_fresh_start(run_cli, topology_file, tmp_path, damage):
    """A truncated data.mdb would be read past its end (SIGBUS), an empty one taken for a new
    log (pending records, dead letters and positions silently gone), garbled pages raise from
    deep in LMDB: each is exit 2 with the file and what to do, and the file is left as it was."""
    path = _written_log(run_cli, topology_file)
    data = tmp_path / "s" / "log" / "data.mdb"
    size = data.stat().st_size
    if damage == "half":
        os.truncate(data, size // 2)
    elif damage == "empty":
        os.truncate(data, 0)
    else:
        with open(data, "r+b") as f:
            for offset in range(2 * 4096, size, 4096):  # every page after the two meta pages
                f.seek(offset)
                f.write(b"\xff" * 64)
    damaged = data.read_bytes()
    for command in (("run", path, "--state-dir", "s"), ("status", "--state-dir", "s"),
                    ("dead-letters", "--state-dir", "s"), ("dead-letters", "--state-dir", "s", "--requeue")):
        done = run_cli(*command)
        assert done.returncode == 2, (command, done.returncode, done.stderr)
        assert "is damaged" in done.stderr and "move the state directory away" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert data.read_bytes() == damaged


PEAK = """
import sys, tracemalloc
from consecution.cli import main
tracemalloc.start()
code = main(sys.argv[1:])
sys.stdout.flush()
print("peak", tracemalloc.get_traced_memory()[1] // 2**20, file=sys.stderr)
sys.exit(code)
"""


def _peak_mb(tmp_path, *args):
    done = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stderr.split("peak")[-1])


def test_listing_and_requeuing_many_dead_letters_streams_them(tmp_path):
    """20,000 dead letters with 4 KB tracebacks (80 MB stored): listing and requeuing them
    allocate within a few MB of doing it for 10 (loaded at once they took 500 MB). Python's
    allocations are measured (tracemalloc): the log's pages, mapped from the file, are not."""
    from consecution.storage import DeadLetter, DurableLog, Record
    for name, count in (("few", 10), ("many", 20_000)):
        log = DurableLog(str(tmp_path / name))
        for i in range(count):
            record = Record(log.new_root(), "numbers", 0, "default", (i,), None, 1, 0.0)
            log.dead_letter(DeadLetter(record, "bolt", 0, "boom", "x" * 4096, 0.0))
            if i % 1000 == 999:
                log.commit()
        log.close()
    few = _peak_mb(tmp_path, "dead-letters", "--state-dir", "few", "--json")
    many = _peak_mb(tmp_path, "dead-letters", "--state-dir", "many", "--json")
    assert many < few + 10, (few, many)
    requeued = _peak_mb(tmp_path, "dead-letters", "--state-dir", "many", "--requeue")
    assert requeued < few + 10, (few, requeued)
    log = DurableLog(str(tmp_path / "many"), readonly=True)
    assert log.dead_count() == 0 and len(log) == 20_000
    log.close()


FILL = """
from consecution import Bolt, Topology

class Count(Bolt):
    def prepare(self, context):
        self.n = 0

    def process(self, tup):
        self.n += 1

    def finish(self):
        with open("counted.txt", "a") as f:
            f.write(f"{self.n}\\n")

topology = Topology("fill")
topology.spout("lines", ["x" * 2000 for _ in range(2000)])
topology.bolt("count", Count()).shuffle_grouping("lines")
"""


def test_a_full_disk_is_a_clear_error_and_a_run_with_room_again_loses_nothing(tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes the log's writes fail as a full disk does: exit 2
    with what happened and what to do, no traceback; the next run, with room, completes and
    every record is counted (at least once)."""
    import resource
    (tmp_path / "fill.py").write_text(FILL)

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    full = subprocess.run([sys.executable, "-m", "consecution", "run", "fill.py", "--state-dir", "s"], cwd=tmp_path,
                          preexec_fn=small_disk, capture_output=True, text=True, timeout=120)
    assert full.returncode == 2, full.stderr
    assert "cannot write the log" in full.stderr and "free some space" in full.stderr
    assert "Traceback" not in full.stderr
    again = subprocess.run([sys.executable, "-m", "consecution", "run", "fill.py", "--state-dir", "s"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    counted = sum(int(n) for n in (tmp_path / "counted.txt").read_text().split())
    assert counted >= 2000


def test_status_on_a_state_directory_it_may_not_read_says_so_not_that_it_holds_no_state(tmp_path):
    """As root (root reads everything), the directory belongs to another user and the command
    runs without the capabilities that override file permissions (setpriv), so it may still
    import the package from wherever it is installed but not read the directory."""
    state = tmp_path / "s"
    DurableLog(str(state)).close()
    os.chmod(state, 0o700)
    command = [sys.executable, "-m", "consecution", "status", "--state-dir", str(state)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: cannot run without the right to read every file")
        for path in [state, *state.iterdir()]:
            os.chown(path, 65534, 65534)
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot read the state" in done.stderr and "Permission denied" in done.stderr
    assert "holds no consecution state" not in done.stderr
