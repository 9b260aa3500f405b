import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from consecution import Spout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def cli(*args, cwd, env=None, timeout=60, input=None):
    """Run `consecution ARGS` as a real subprocess of the installed package, in `cwd` (the
    test's temporary directory under `run_cli`, so `./.consecution/<name>` lands there)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "consecution", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=input)


def start_cli(args, cwd, env=None, log="run.log"):
    """Start `consecution ARGS` as a real subprocess and return it without waiting (to kill it,
    or to run another beside it); stdout is dropped, stderr appended to `cwd/log`."""
    full_env = dict(os.environ, **(env or {}))
    with open(os.path.join(cwd, log), "a") as stderr:
        return subprocess.Popen([sys.executable, "-m", "consecution", *args], cwd=cwd, env=full_env,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def logged_event(path, event, timeout=30):
    """The first complete JSON log line of `event` in the file at `path` (the stderr of a run
    with --log-format json), as a dict; waits up to `timeout` seconds for it to appear."""
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    if line.endswith("\n") and f'"event": "{event}"' in line:
                        return json.loads(line)
        assert time.monotonic() < deadline, f"no {event} in {path} after {timeout} s"
        time.sleep(0.05)


def run_killing(commands, cwd, env, kills, rng, timeout, window=(0.5, 1.5)):
    """Run `commands` ({name: args}) side by side; SIGKILL each `kills` times at random moments
    (`window`: 0.5 to 1.5 s after it logged `run.started`, so that a slow start does not eat the time)
    and start it again with the same command, until every one has exited 0. Returns
    {name: times killed}; stderr goes to `cwd/<name>.log`."""
    logs = {name: cwd / f"{name}.log" for name in commands}
    procs, seen, due = {}, {}, {}

    def start(name):
        procs[name] = start_cli(commands[name], cwd, env, log=logs[name].name)
        seen[name] = logs[name].stat().st_size if logs[name].exists() else 0
        due[name] = None

    for name in commands:
        start(name)
    killed = dict.fromkeys(commands, 0)
    deadline = time.monotonic() + timeout
    try:
        while procs:
            assert time.monotonic() < deadline, f"still running after {timeout} s: {sorted(procs)}, killed {killed}"
            for name, proc in list(procs.items()):
                if proc.poll() is not None:
                    assert proc.returncode == 0, logs[name].read_text()[-3000:]
                    del procs[name]
                elif killed[name] < kills and due[name] is None:
                    with open(logs[name]) as f:
                        f.seek(seen[name])
                        if '"run.started"' in f.read():
                            due[name] = time.monotonic() + rng.uniform(*window)
                elif killed[name] < kills and time.monotonic() >= due[name]:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=30)
                    killed[name] += 1
                    start(name)
            time.sleep(0.01)
    finally:
        for proc in procs.values():
            proc.kill()
    return killed


@pytest.fixture
def run_cli(tmp_path):
    def run(*args, **kwargs):
        kwargs.setdefault("cwd", tmp_path)
        return cli(*args, **kwargs)
    return run


@pytest.fixture
def topology_file(tmp_path):
    """Write a topology module into the test's folder and return its path."""
    def write(source, name="topo.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return str(path)
    return write


class Numbers(Spout):
    """Emits 0..n-1 on field `n`, with msg ids; records acks and fails."""

    fields = ("n",)

    def __init__(self, n):
        self.n = n

    def open(self, context):
        self.i = 0
        self.acked, self.failed = [], []

    def next_tuple(self):
        if self.i >= self.n:
            raise StopIteration
        self.emit((self.i,), msg_id=self.i)
        self.i += 1

    def ack(self, msg_id):
        self.acked.append(msg_id)

    def fail(self, msg_id, error):
        self.failed.append(msg_id)
