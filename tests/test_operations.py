"""Operating a run: resumes that explain themselves, --fresh, run.progress events, and systemd's
notify protocol spoken to a datagram socket of the test's own."""
import json
import os
import re
import signal
import socket
import time

import pytest

from support import cli, logged_event, start_cli

SLOW = """
import itertools, os, time
from consecution import Topology

def slow(n):
    time.sleep(0.002)
    return n

topology = Topology("slow")
n = int(os.environ.get("N", "0"))
topology.spout("numbers", range(n) if n else itertools.count())
topology.bolt("slow", slow).shuffle_grouping("numbers")
"""


def events(path, name):
    return [json.loads(line) for line in path.read_text().splitlines() if f'"event": "{name}"' in line]


def test_a_rerun_at_the_end_of_its_input_warns_and_fresh_starts_over(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    env = {"N": "50"}
    first = cli("run", "slow.py", "--log-format", "json", cwd=tmp_path, env=env)
    assert first.returncode == 0 and "run.nothing_new" not in first.stderr
    started = [json.loads(x) for x in first.stderr.splitlines() if '"run.started"' in x][0]
    assert started["resumed"] is None  # a first run resumes nothing
    again = cli("run", "slow.py", "--log-format", "json", cwd=tmp_path, env=env)
    assert again.returncode == 0
    lines = [json.loads(x) for x in again.stderr.splitlines()]
    started = next(e for e in lines if e["event"] == "run.started")
    assert started["resumed"]["positions"] == 1 and "last_run" in started["resumed"]
    warning = next(e for e in lines if e["event"] == "run.nothing_new")
    assert warning["level"] == "warning" and "--fresh to start over" in warning["reason"]
    assert warning["last_run"] == started["resumed"]["last_run"]
    assert next(e for e in lines if e["event"] == "run.finished")["roots"] == 0
    fresh = cli("run", "slow.py", "--log-format", "json", "--fresh", cwd=tmp_path, env=env)
    lines = [json.loads(x) for x in fresh.stderr.splitlines()]
    cleared = next(e for e in lines if e["event"] == "state.cleared")
    assert cleared["positions"] == 1 and cleared["pending"] == 0 and cleared["dead_letters"] == 0
    assert next(e for e in lines if e["event"] == "run.started")["resumed"] is None
    assert next(e for e in lines if e["event"] == "run.finished")["roots"] == 50
    assert not any(e["event"] == "run.nothing_new" for e in lines)


def test_a_restart_after_a_kill_says_what_it_resumes_and_fresh_is_refused_while_a_run_holds_the_directory(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    proc = start_cli(["run", "slow.py", "--log-format", "json"], tmp_path)
    logged_event(tmp_path / "run.log", "run.started")
    time.sleep(0.5)
    refused = cli("run", "slow.py", "--fresh", cwd=tmp_path)
    assert refused.returncode == 2 and "in use" in refused.stderr
    assert proc.poll() is None  # the running one is unharmed, its log kept
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    status = json.loads(cli("status", "--state-dir", ".consecution/slow", "--json", cwd=tmp_path).stdout)
    assert status["pending"] > 0
    again = start_cli(["run", "slow.py", "--log-format", "json"], tmp_path, log="again.log")
    try:
        started = logged_event(tmp_path / "again.log", "run.started")
        assert started["resumed"]["pending"] == status["pending"] and started["resumed"]["positions"] == 1
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0


def test_run_progress_events_count_as_the_run_goes(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    done = cli("run", "slow.py", "--log-format", "json", "--progress-interval", "0.3", "--mode", "thread",
               cwd=tmp_path, env={"N": "600"})
    assert done.returncode == 0, done.stderr[-2000:]
    progress = [json.loads(x) for x in done.stderr.splitlines() if '"run.progress"' in x]
    assert len(progress) >= 2, done.stderr[-2000:]
    completed = [p["completed"] for p in progress]
    assert completed == sorted(completed) and completed[-1] > completed[0] > 0
    assert all(p["elapsed"] > 0 and p["dead_letters"] == 0 and p["pending_trees"] >= 0 for p in progress)
    quiet = cli("run", "slow.py", "--log-format", "json", "--progress-interval", "0", "--fresh", cwd=tmp_path,
                env={"N": "600"})
    assert quiet.returncode == 0 and '"run.progress"' not in quiet.stderr


class Notifications:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: (time, message) received."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.got = []

    def read_for(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            for line in data.split("\n"):
                self.got.append((time.monotonic(), line))
            if until is not None and any(line == until for _, line in self.got):
                return
        assert until is None, (until, self.got[-10:])

    def lines(self, prefix):
        return [(t, line) for t, line in self.got if line.startswith(prefix)]


def test_systemd_hears_ready_after_recovery_watchdog_pings_status_and_stopping(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    first = start_cli(["run", "slow.py", "--log-format", "json"], tmp_path, log="first.log")
    logged_event(tmp_path / "first.log", "run.started")
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)  # records left in flight: the next start recovers them first
    first.wait(timeout=30)
    sock = Notifications(tmp_path / "notify")
    env = {"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "400000"}
    proc = start_cli(["run", "slow.py", "--log-format", "json"], tmp_path, env=env)
    try:
        sock.read_for(30, until="READY=1")
        sock.read_for(2.0)
        recovered = logged_event(tmp_path / "run.log", "run.recovered")
        assert recovered["replayed"] > 0
        pings = [t for t, _ in sock.lines("WATCHDOG=1")]
        assert len(pings) >= 6 and max(b - a for a, b in zip(pings, pings[1:])) < 0.4, pings
        assert len(sock.lines("READY=1")) == 1
        statuses = [line for _, line in sock.lines("STATUS=running: ")]
        assert statuses and " completed, " in statuses[-1] and statuses[-1].endswith(" dead letters")
        proc.send_signal(signal.SIGTERM)
        sock.read_for(30, until="STOPPING=1")
        assert proc.wait(timeout=30) == 0
        sock.read_for(0.3)
        assert sock.got[-1][1].startswith("STATUS=stopped: ")
    finally:
        proc.kill()


def test_under_systemd_a_consumer_waiting_for_its_producer_extends_its_start_and_is_not_ready(tmp_path):
    (tmp_path / "consumer.py").write_text(f"""
from consecution import Topology
from consecution.spouts import Output
topology = Topology("consumer")
topology.spout("entries", Output({str(tmp_path / "nowhere")!r}, "doubled"))
topology.bolt("show", print).shuffle_grouping("entries")
""")
    sock = Notifications(tmp_path / "notify")
    env = {"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "1000000"}
    proc = start_cli(["run", "consumer.py", "--log-format", "json"], tmp_path, env=env)
    try:
        sock.read_for(2.5)
        assert sock.lines("EXTEND_TIMEOUT_USEC=") and sock.lines("WATCHDOG=1") and not sock.lines("READY=1")
        assert any("waiting for the fields of entries" in line for _, line in sock.lines("STATUS="))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_under_systemd_a_run_wedged_in_user_code_stops_its_watchdog_pings(tmp_path):
    """A bolt call that never returns (single mode: on the scheduler's thread): the pings stop,
    so systemd's WatchdogSec restarts the unit."""
    (tmp_path / "hangs.py").write_text("""
import time

import pytest
from consecution import Topology

def step(n):
    if n == 300:
        time.sleep(10**6)
    time.sleep(0.001)
    return n

topology = Topology("hangs")
topology.spout("numbers", range(1000))
topology.bolt("step", step).shuffle_grouping("numbers")
""")
    sock = Notifications(tmp_path / "notify")
    env = {"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": "200000"}
    proc = start_cli(["run", "hangs.py", "--log-format", "json"], tmp_path, env=env)
    try:
        sock.read_for(30, until="READY=1")
        sock.read_for(2.5)
        pings = [t for t, _ in sock.lines("WATCHDOG=1")]
        assert len(pings) >= 2 and time.monotonic() - pings[-1] > 1.5, pings  # silent since it hung
        assert proc.poll() is None
    finally:
        proc.kill()


METERED = """
import os, time
from consecution import Bolt, Topology

def slow(n):
    time.sleep(0.002)
    if n in (500, 900):
        raise ValueError("a bad one")
    return n

class Total(Bolt):
    stateful = True
    def process(self, tup):
        self.state["n"] = self.state.get("n", 0) + 1

topology = Topology("metered", max_retries=0)
topology.spout("numbers", range(int(os.environ["N"])))
topology.bolt("slow", slow, parallelism=2).shuffle_grouping("numbers")
topology.bolt("total", Total()).global_grouping("slow")
topology.output("passed", "slow")
"""


def scrape(port):
    from urllib.request import urlopen
    from prometheus_client.parser import text_string_to_metric_families
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


@pytest.mark.parametrize("mode", ["thread", "process", "ray"])
def test_metrics_are_scraped_during_a_run_with_the_workers_counts(tmp_path, mode):
    from spout_support import free_port
    port = free_port()
    (tmp_path / "metered.py").write_text(METERED)
    proc = start_cli(["run", "metered.py", "--mode", mode, "--workers", "2", "--metrics-port", str(port),
                      "--log-format", "json"], tmp_path, env={"N": "5000"})
    scrapes = []
    try:
        serving = logged_event(tmp_path / "run.log", "metrics.serving")
        assert serving["url"] == f"http://127.0.0.1:{port}/metrics"
        while proc.poll() is None:
            try:
                scrapes.append(scrape(port))
            except OSError:  # the run ended meanwhile
                break
            time.sleep(0.4)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 3  # the bad ones are dead letters
    scrapes = [s for s in scrapes if s]  # a scrape before the run started finds no metric
    executed = [total(s, "consecution_tuples_executed_total", component="slow", topology="metered") for s in scrapes]
    assert len(set(executed)) >= 3 and executed == sorted(executed), executed  # the workers' counts, as they run
    last = scrapes[-1]
    for task in ("0", "1"):  # both tasks ran, wherever they run
        assert total(last, "consecution_tuples_executed_total", component="slow", task=task) > 0
    assert any(total(s, "consecution_tuples_failed_total", component="slow") == 2 ==
               total(s, "consecution_spout_given_up_total", spout="numbers") for s in scrapes)
    assert any(total(s, "consecution_spout_acked_total", spout="numbers") > 0 for s in scrapes)
    for s in scrapes:
        assert total(s, "consecution_spout_emitted_total", spout="numbers") >= \
            total(s, "consecution_spout_acked_total", spout="numbers") + total(s, "consecution_spout_pending")
    # the latency histogram: cumulative buckets, +Inf equals the count, one call in 16 timed
    buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in last.items()
                     if n == "consecution_process_latency_seconds_bucket" and ("component", "slow") in ls
                     and ("task", "0") in ls)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    count = total(last, "consecution_process_latency_seconds_count", component="slow", task="0")
    executed_0 = total(last, "consecution_tuples_executed_total", component="slow", task="0")
    assert buckets[-1] == (float("inf"), count) and 0 < count <= executed_0 / 16 + 1
    assert total(last, "consecution_process_latency_seconds_sum", component="slow", task="0") >= 0.002 * count
    assert total(last, "consecution_log_size_bytes") > 0
    assert any(total(s, "consecution_output_entries", output="passed") > 0 for s in scrapes)
    assert any(total(s, "consecution_checkpoint_duration_seconds_count") >= 1 for s in scrapes)
    with pytest.raises(OSError):  # the endpoint closed with the run
        scrape(port)


def test_a_metrics_port_in_use_exits_2_naming_it_before_the_run_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "slow.py").write_text(SLOW)
        done = cli("run", "slow.py", "--metrics-port", str(port), cwd=tmp_path, env={"N": "5"})
    assert done.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert "run.started" not in done.stderr
    bad = cli("run", "slow.py", "--metrics-port", "nine", cwd=tmp_path, env={"N": "5"})
    assert bad.returncode == 2 and "'nine' is not a port" in bad.stderr


def on_a_terminal(args, cwd, env=None, timeout=60):
    """Run `consecution ARGS` with stdout and stderr on a pseudo-terminal: (exit code, what the
    terminal got)."""
    import pty
    import subprocess
    import sys
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "consecution", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=child, stderr=child, env={**os.environ, "TERM": "xterm", "COLUMNS": "120",
                                                             **(env or {})})
    os.close(child)
    got = b""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, got[-2000:]
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal's other end closed: every writer is gone
            break
        if not data:
            break
        got += data
    os.close(main)
    return proc.wait(timeout=30), got.decode(errors="replace")


SHOWN = """
import time
from consecution import Topology

def slow(n):
    time.sleep(0.002)
    if n % 400 == 0:
        print("saw", n, flush=True)
    return n

topology = Topology("shown")
topology.spout("numbers", list(range(1200)))
topology.bolt("slow", slow, parallelism=2).shuffle_grouping("numbers")
"""


@pytest.mark.parametrize("mode", ["single", "process"])
def test_on_a_terminal_a_live_display_shows_progress_with_prints_and_logs_above_it(tmp_path, mode):
    (tmp_path / "shown.py").write_text(SHOWN)
    code, screen = on_a_terminal(["run", "shown.py", "--mode", mode, "--workers", "2"], tmp_path)
    assert code == 0, screen[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # without the terminal's control sequences
    for heading in ("component", "tasks", "tuples/s", "numbers (spout)"):
        assert heading in text, text[-2000:]
    assert "shown  " + mode + " mode  running" in text  # redrawn while it ran
    assert "100.0% 1,200/1,200" in text and "ETA " in text  # a list's spout: a bar and an ETA
    final = text[text.rindex("shown  " + mode + " mode"):]
    assert "complete" in final.splitlines()[0] and "completed 1,200" in final
    for n in (0, 400, 800):  # what the bolt printed, each on a line of its own above the display
        assert f"\r\n\x1b[2Ksaw {n}\r\n" in screen or f"\x1b[2Ksaw {n}\r\n" in screen, screen[-3000:]
    assert "run.finished" in screen and screen.rstrip().endswith("\x1b[?25h")  # the cursor is shown
    assert "\x1b[?25l" not in screen[screen.rindex("run.finished"):]
    plain = on_a_terminal(["run", "shown.py", "--mode", mode, "--fresh", "--no-progress"], tmp_path)[1]
    assert "tuples/s" not in plain and "run.finished" in plain and "saw 800" in plain


def test_spouts_that_know_their_length_say_how_far_they_are(tmp_path):
    from consecution.spouts import File
    from consecution.topology import IterableSpout
    path = tmp_path / "lines.txt"
    path.write_text("one\ntwo\nthree\n")
    spout = File(str(path))
    spout.open(None)
    spout._emit = lambda *args: None
    assert spout.progress() == (0, 14, "bytes")
    spout.next_tuple()
    assert spout.progress() == (4, 14, "bytes")
    assert File(str(path), follow=True).progress() is None  # a followed file has no end
    items = IterableSpout([10, 20, 30])
    items.open(None)
    items._emit = lambda *args: None
    items.next_tuple()
    assert items.progress() == (1, 3, "records")
    assert IterableSpout(iter([1, 2])).progress() is None


def test_metrics_show_a_named_outputs_entries_and_the_lag_of_its_registered_consumer(tmp_path):
    import itertools
    import threading
    from spout_support import free_port
    from consecution import Topology
    from consecution.runtime import Scheduler
    from consecution.storage import DurableLog, register_consumer

    def producer():
        def double(n):
            time.sleep(0.002)
            return n * 2
        t = Topology("lagged")
        t.spout("numbers", itertools.count())
        t.bolt("double", double).shuffle_grouping("numbers")
        t.output("doubled", "double")
        return t

    state = str(tmp_path / "state")
    first = Scheduler(producer(), state_dir=state)
    threading.Timer(1.0, first.stop).start()
    first.run()
    log = DurableLog(state, readonly=True)
    outbox = log.output_info("doubled")["id"]
    log.close()
    register_consumer(state, "doubled", "reader", 10, outbox)
    port = free_port()
    second = Scheduler(producer(), state_dir=state, metrics_port=port)
    runner = threading.Thread(target=second.run)
    runner.start()
    try:
        time.sleep(1.5)
        scraped = [scrape(port)]
        time.sleep(1.2)
        scraped.append(scrape(port))
    finally:
        second.stop()
        runner.join(30)
    lags = [total(s, "consecution_output_consumer_lag", output="doubled", consumer="reader") for s in scraped]
    entries = [total(s, "consecution_output_entries", output="doubled") for s in scraped]
    assert 0 < lags[0] < lags[1] and entries[0] < entries[1], (lags, entries)
    assert lags[1] <= entries[1] + 10  # behind by what came after its position 10
