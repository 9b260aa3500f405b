"""The command line, through real subprocesses: exit statuses, messages, signals, logs."""
import json
import os
import signal
import subprocess
import sys
import time

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


def test_validate_and_show(run_cli):
    wordcount = os.path.join(EXAMPLES, "wordcount.py")
    done = run_cli("validate", wordcount)
    assert done.returncode == 0 and "'wordcount' is valid" in done.stdout
    text = run_cli("show", wordcount).stdout
    assert "bolt  count  x2" in text and "<- split:default  fields(word)" in text
    dot = run_cli("show", wordcount, "--format", "dot").stdout
    assert dot.startswith('digraph "wordcount"') and '"split" -> "count" [label="fields(word)"]' in dot


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
