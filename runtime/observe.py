"""Observers: what watches a run from outside without steering it (progress, systemd).

The core calls each observer at fixed points, as it calls its other seams:

    opening(core)    the log is open; worker processes are about to start
    started(core)    the spouts are open and recovery knows what it has to replay
    tick(now)        from the scheduler loop, every EXPIRE_EVERY seconds (0.1 s) while it runs,
                     also in the finish phase; a loop wedged in user code stops ticking
    stopping()       a stop was asked for (SIGTERM, SIGINT, `Scheduler.stop`)
    finished(result) the run ended (the RunResult), also when it failed

An observer reads the core's counts (`snapshot(core)`); it never changes them. Its errors
are its own: one that raises is logged once and dropped, the run goes on.
"""
import os
import socket
import sys
import threading
import time

from .watchdog import current_call, input_of

PROGRESS_EVERY = 10.0  # seconds between `run.progress` events (--progress-interval)


def snapshot(core):
    """The counts of a run as it stands: what the progress display, `run.progress`, systemd's
    STATUS and the metrics show."""
    result = core.result
    return {"elapsed": round(core.clock() - core.started, 3), "roots": result.roots,
            "completed": result.completed, "failed": result.failed, "replayed": result.replayed,
            "given_up": result.given_up, "errors": result.errors, "pending_trees": core.trees_in_flight(),
            "dead_letters": core.dead_letters_before + result.given_up,
            "recovering": core.recovery.active}


class Observers:
    """The observers of one run, called in order; one that raises is dropped (logged once)."""

    def __init__(self, core, observers):
        self.core = core
        self.observers = list(observers)
        self.on = False  # started: until then (and after finished) no other call is made

    def __bool__(self):
        return bool(self.observers)

    def _each(self, method, *args):
        for observer in list(self.observers):
            try:
                getattr(observer, method)(*args)
            except Exception as exc:  # noqa: BLE001 - an observer never ends a run
                self.observers.remove(observer)
                self.core.logger.warning("observer.dropped", topology=self.core.topology.name,
                                         observer=type(observer).__name__, error=f"{type(exc).__name__}: {exc}")

    def opening(self):
        self._each("opening", self.core)

    def started(self):
        self.on = True
        self._each("started", self.core)

    def tick(self, now):
        if self.on:
            self._each("tick", now)

    def stopping(self):
        if self.on:
            self._each("stopping")

    def finished(self, result):
        """The run ended; observers of a run that never started are closed instead."""
        if self.on:
            self.on = False
            self._each("finished", result)
        else:
            self._each("close")


class Observer:
    """The base: every call does nothing."""

    def opening(self, core):
        pass

    def started(self, core):
        self.core = core

    def tick(self, now):
        pass

    def stopping(self):
        pass

    def finished(self, result):
        self.close()

    def close(self):
        pass


class ProgressLog(Observer):
    """A `run.progress` event every `every` seconds with the run's counts (for journald and
    other logs that are not a terminal)."""

    def __init__(self, every=PROGRESS_EVERY):
        self.every = every
        self.due = None

    def started(self, core):
        super().started(core)
        self.due = core.clock() + self.every

    def tick(self, now):
        if now >= self.due:
            self.due = now + self.every
            self.core.logger.info("run.progress", topology=self.core.topology.name, **snapshot(self.core))


class SystemdNotify(Observer):
    """sd_notify(3) for a unit of `Type=notify`, over the datagram socket in NOTIFY_SOCKET:
    READY=1 once recovery has replayed what an earlier run left pending (until then, and while
    a consumer waits for its producer's fields, EXTEND_TIMEOUT_USEC keeps the start from timing
    out while it makes progress); STATUS= with the counts every STATUS_EVERY seconds;
    STOPPING=1 when a stop begins. `SystemdNotify.from_environ()` is None outside systemd.

    WATCHDOG=1 every half of WATCHDOG_USEC while the scheduler shows it is alive: its loop ticked,
    or the scheduler thread is in another call of user code than at the last ping (the stack,
    and a generated loop's input count, read as the task_timeout watchdog reads them,
    runtime/watchdog.py). The pings come from a
    thread of their own, because in single mode the loop hands a whole commit of records (up to
    512) to the bolts, depth first, and a slow bolt keeps it there for seconds while the run is
    well; a run wedged in one call of user code (or in a C extension that holds the GIL) does
    neither, stops pinging, and systemd restarts it. So WatchdogSec must exceed the longest
    single call of user code, as task_timeout must."""

    STATUS_EVERY = 2.0
    EXTEND = 30.0  # seconds each EXTEND_TIMEOUT_USEC grants a start that is still recovering

    def __init__(self, address, watchdog_usec=None, clock=time.monotonic):
        if address.startswith("@"):  # an abstract socket
            address = "\0" + address[1:]
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_every = watchdog_usec / 2e6 if watchdog_usec else None
        self.reads_inputs = self.watchdog_every is not None  # generated loops mark their inputs for it
        self.clock = clock
        self.ready = False
        self.next_ping = self.next_status = self.next_extend = 0.0
        self.ticks = 0
        self.done = threading.Event()
        self.pinger = None

    @classmethod
    def from_environ(cls, environ=os.environ):
        address = environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        usec = environ.get("WATCHDOG_USEC")
        pid = environ.get("WATCHDOG_PID")
        watchdog = int(usec) if usec and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        return cls(address, watchdog)

    def send(self, *lines):
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError:  # systemd went away, or the socket is full: nothing to do about it here
            pass

    def waiting(self, status):
        """Before the run starts (a consumer waiting for its producer): still starting."""
        now = self.clock()
        lines = []
        if now >= self.next_extend:
            self.next_extend = now + self.EXTEND / 3
            lines.append(f"EXTEND_TIMEOUT_USEC={int(self.EXTEND * 1e6)}")
        if self.watchdog_every is not None and now >= self.next_ping:
            self.next_ping = now + self.watchdog_every
            lines.append("WATCHDOG=1")
        if lines:
            self.send(*lines, f"STATUS={status}")

    def started(self, core):
        super().started(core)
        if self.watchdog_every is not None:
            self.send("WATCHDOG=1")
            self.pinger = threading.Thread(target=self._ping, name="consecution-systemd", daemon=True)
            self.pinger.start()
        self.tick(core.clock())

    def _alive(self):
        frame = sys._current_frames().get(self.core.core_thread)
        call = current_call(frame) if frame is not None else None
        return self.ticks, call, input_of(call) if call is not None else None

    def _ping(self):
        seen = self._alive()
        while not self.done.wait(self.watchdog_every):
            now = self._alive()
            if now[0] != seen[0] or now[1] is not seen[1] or now[2] is not seen[2]:
                self.send("WATCHDOG=1")
            seen = now

    def tick(self, now):
        self.ticks += 1
        lines = []
        if not self.ready:
            if self.core.recovery.active:
                if now >= self.next_extend:
                    self.next_extend = now + self.EXTEND / 3
                    lines.append(f"EXTEND_TIMEOUT_USEC={int(self.EXTEND * 1e6)}")
            else:
                self.ready = True
                lines.append("READY=1")
                self.next_status = 0.0
        if now >= self.next_status:
            self.next_status = now + self.STATUS_EVERY
            lines.append("STATUS=" + self.status())
        if lines:
            self.send(*lines)

    def status(self):
        s = snapshot(self.core)
        state = "recovering" if s["recovering"] else "stopping" if self.core.stopping else "running"
        return (f"{state}: {s['completed']} completed, {s['pending_trees']} pending, {s['failed']} failed, "
                f"{s['replayed']} replayed, {s['dead_letters']} dead letters")

    def stopping(self):
        self.send("STOPPING=1", "STATUS=stopping: in-flight trees drain")

    def finished(self, result):
        self.done.set()
        if self.pinger is not None:
            self.pinger.join()
        self.send(f"STATUS={result.status}: {result.completed} completed, {result.pending} pending, "
                  f"{result.dead_letters} dead letters")
        self.sock.close()
