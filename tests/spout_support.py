"""Running an endless topology on a thread, and waiting for what it emits."""
import contextlib
import socket
import threading
import time

from consecution.runtime import Scheduler

MODES = ["single", "thread", "process", "ray"]


def wait_for(condition, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Running:
    """A Scheduler running on a thread; `emitted(component)` reads what it collected so far."""

    def __init__(self, topology, mode, **options):
        options.setdefault("collect", True)
        self.scheduler = Scheduler(topology, mode=mode, workers=2, **options)
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.result = self.scheduler.run()
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def emitted(self, component, stream="default"):
        return list(self.scheduler.collected.get((component, stream), ()))

    def wait_emitted(self, component, n, timeout=10.0):
        wait_for(lambda: len(self.emitted(component)) >= n or not self.thread.is_alive(), timeout,
                 f"{n} tuples from {component}")
        return self.emitted(component)

    def stop(self):
        if self.thread.is_alive():
            self.scheduler.stop()
        return self.join()

    def join(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not end"
        if self.error is not None:
            raise self.error
        return self.result


@contextlib.contextmanager
def running(topology, mode, **options):
    run = Running(topology, mode, **options)
    try:
        yield run
    finally:
        if run.thread.is_alive():
            run.scheduler.stop()
            run.thread.join(30)


def wait_listening(spout, timeout=10.0):
    wait_for(lambda: getattr(spout, "address", None) is not None, timeout, "the spout to listen")
    return spout.address


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
