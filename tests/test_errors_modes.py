"""Errors in user code name the user's file and line in every mode: a worker process's
traceback travels back with its error (as CPython's concurrent.futures does), and a worker's
TopologyContext says what single mode's says."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import textwrap

import pytest

from consecution.runtime import Scheduler, UserCodeError

MODES = ["single", "thread", "process", "ray"]

SOURCE = textwrap.dedent('''
    from consecution import Bolt, Topology

    class Look(Bolt):
        fields = ("n",)

        def __init__(self, phase):
            self.phase = phase

        def prepare(self, context):
            self.context = context
            if self.phase == "prepare":
                raise RuntimeError("broken in prepare")  # LINE prepare

        def process(self, tup):
            if self.phase == "process":
                raise KeyError("broken in process")  # LINE process
            self.emit(tup.values)

        def finish(self):
            if self.phase == "finish":
                raise ValueError("broken in finish")  # LINE finish

    class Context(Bolt):
        fields = ("fact",)

        def prepare(self, context):
            self.facts = [context.topology, context.component, context.task_index, context.task_id,
                          context.parallelism, context.mode, context.max_pending, context.reliability,
                          context.tasks_of("context")]

        def process(self, tup):
            pass

        def finish(self):
            self.emit((self.facts,), anchors=())

    def build(phase):
        t = Topology("errors", max_retries=0)
        t.spout("numbers", [1, 2, 3])
        t.bolt("look", Look(phase)).shuffle_grouping("numbers")
        return t

    def context_topology():
        t = Topology("context", max_pending=77, reliability="confirm")
        t.spout("numbers", [1, 2, 3])
        t.bolt("context", Context(), parallelism=2).shuffle_grouping("numbers")
        return t
''')


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "user_topology.py"
    path.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location("user_topology", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, str(path)


def line_of(phase):
    return next(i for i, line in enumerate(SOURCE.splitlines(), 1) if line.endswith(f"# LINE {phase}"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("phase", ["prepare", "finish"])
def test_an_error_outside_processing_shows_the_users_file_and_line(module, mode, phase):
    mod, path = module
    with pytest.raises(UserCodeError) as info:
        Scheduler(mod.build(phase), mode=mode, workers=1).run()
    error = info.value
    assert error.component == "look" and error.phase == phase
    expected = {"prepare": "RuntimeError: broken in prepare", "finish": "ValueError: broken in finish"}[phase]
    assert expected in str(error)
    assert f'File "{path}", line {line_of(phase)}' in error.traceback, error.traceback


@pytest.mark.parametrize("mode", MODES)
def test_an_error_in_process_shows_the_users_file_and_line_in_the_dead_letter(module, mode):
    mod, path = module
    result = Scheduler(mod.build("process"), mode=mode, workers=1).run()
    assert result.given_up == 3
    for letter in result.failures:
        assert letter.component == "look" and "KeyError" in letter.error
        assert f'File "{path}", line {line_of("process")}' in letter.traceback, letter.traceback


def test_a_workers_context_says_what_single_modes_says(module):
    mod, _ = module
    facts = {}
    for mode in MODES:
        result = Scheduler(mod.context_topology(), mode=mode, workers=2, collect=True).run()
        facts[mode] = sorted(values[0] for values in result.emitted("context"))
    first = facts["single"][0]
    assert first[:5] == ["context", "context", 0, 1, 2] and first[6:] == [77, "confirm", [1, 2]]
    for mode in ("thread", "process"):
        assert facts[mode] == [[*f[:5], mode, *f[6:]] for f in facts["single"]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("raised", [SystemExit(4), KeyboardInterrupt()])
def test_sys_exit_or_keyboard_interrupt_in_process_ends_the_run_in_every_mode(mode, raised, tmp_path):
    """User code that raises SystemExit or KeyboardInterrupt asks the run to end: it ends with
    that exception in every mode (process mode used to fail the tuple, and dead-letter the
    records beside it, as if the worker had crashed). The record stays pending."""
    from consecution import Topology
    from consecution.storage import DurableLog

    def leave(n):
        if n == 3:
            raise raised
        return n

    t = Topology("leave", max_retries=1, retry_backoff=0)
    t.spout("numbers", range(6))
    t.bolt("leave", leave).shuffle_grouping("numbers")
    with pytest.raises(type(raised)) as info:
        Scheduler(t, mode=mode, workers=2, state_dir=str(tmp_path / "s")).run()
    if isinstance(raised, SystemExit):
        assert info.value.code == 4
    log = DurableLog(str(tmp_path / "s"), readonly=True)
    try:
        assert log.dead_count() == 0 and 4 in {r.seq for r in log.pending()}
    finally:
        log.close()


@pytest.mark.parametrize("mode", ["thread", "process", "ray"])
def test_a_stop_ends_the_run_when_its_grace_is_over_even_with_work_queued(mode, tmp_path):
    """2,000 inputs of 10 ms queued behind two workers; stop with a grace of 1 s: the run ends
    about then (it waited for every queued input before: 18 s), and what did not complete
    stays pending in the log, to be replayed."""
    import threading
    import time
    from consecution import Topology
    from consecution.storage import DurableLog

    def slow(n):
        time.sleep(0.01)
        return n

    t = Topology("grace", max_pending=4000)
    t.spout("numbers", range(2000))
    t.bolt("slow", slow, parallelism=2).shuffle_grouping("numbers")
    scheduler = Scheduler(t, mode=mode, workers=2, grace=1.0, state_dir=str(tmp_path / "s"))
    stopped = []

    def stop():
        stopped.append(time.monotonic())
        scheduler.stop()

    threading.Timer(2.5 if mode == "ray" else 0.5, stop).start()  # ray: after its actors started
    result = scheduler.run()
    elapsed = time.monotonic() - stopped[0]
    assert result.status == "stopped" and elapsed < 5.5, elapsed
    log = DurableLog(str(tmp_path / "s"), readonly=True)
    try:
        assert result.completed + len(log) == 2000 and len(log) > 0
    finally:
        log.close()


HANGS = """
import sys
import time
from consecution import Spout, Topology

class Waits(Spout):
    def next_tuple(self):
        print("hanging now", file=sys.stderr, flush=True)
        time.sleep(10**6)  # a spout blocked on input that never comes

def step(n):
    if n == 5:
        print("hanging now", file=sys.stderr, flush=True)
        time.sleep(10**6)  # a bolt that never returns
    return n

topology = Topology("hangs")
topology.spout("numbers", range(50) if "{what}" == "bolt" else Waits())
topology.bolt("step", step).shuffle_grouping("numbers")
"""


def _stop_after_start(path, mode, cwd):
    proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", str(path), "--mode", mode, "--grace", "0.5",
                             "--log-format", "json"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:  # the signal comes once the spout or bolt hangs (a busy host may take long)
        line = proc.stderr.readline()
        lines.append(line)
        if not line or "hanging now" in line:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, time.monotonic() - started, "".join(lines) + err


@pytest.mark.parametrize("mode", MODES)
def test_the_first_signal_stops_a_spout_blocked_in_next_tuple(mode, tmp_path):
    path = tmp_path / "hangs.py"
    path.write_text(HANGS.replace("{what}", "spout"))
    code, took, err = _stop_after_start(path, mode, tmp_path)
    assert code == 0 and '"spout.interrupted"' in err and took < 10, (code, took, err[-2000:])


@pytest.mark.parametrize("mode", MODES)
def test_a_bolt_that_never_returns_is_abandoned_after_the_grace_and_no_process_is_left(mode, tmp_path):
    """A signal gives it --grace (0.5 s) and 5 s more to close; then the run ends with exit 4
    as a kill would end it, worker processes killed too. The next run knows it crashed."""
    path = tmp_path / "hangs.py"
    path.write_text(HANGS.replace("{what}", "bolt"))
    code, took, err = _stop_after_start(path, mode, tmp_path)
    assert code == 4 and '"run.abandoned"' in err and 5 <= took < 20, (code, took, err[-2000:])
    assert _running_with(str(path)) == []
    status = subprocess.run([sys.executable, "-m", "consecution", "status", "--state-dir", ".consecution/hangs",
                             "--json"], cwd=tmp_path, capture_output=True, text=True)
    info = json.loads(status.stdout)
    assert info["last_run"] == "open" and info["pending"] >= 1


def _running_with(arg):
    """Pids of the processes whose command line holds `arg` (from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("options, says", [
    ({"mode": "proces"}, "unknown mode 'proces': choose one of single, thread, process, ray"),
    ({"mode": "process", "start_method": "forkserver"},
     "unknown start_method 'forkserver' (how process mode starts its workers): choose one of fork, spawn"),
])
def test_an_unknown_mode_or_start_method_is_refused_before_anything_runs(tmp_path, options, says):
    from consecution import Topology
    from consecution.runtime import ModeNotAvailable, run

    ran = []
    t = Topology("typo")
    t.spout("numbers", range(3))
    t.bolt("note", ran.append).shuffle_grouping("numbers")
    for start in (lambda: Scheduler(t, state_dir=str(tmp_path / "state"), **options), lambda: run(t, **options)):
        with pytest.raises(ModeNotAvailable) as info:
            start()
        assert str(info.value) == says
    assert ran == [] and not (tmp_path / "state").exists()
