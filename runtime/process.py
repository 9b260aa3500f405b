"""Process mode: bolt tasks on worker processes (`multiprocess`, so classes from the topology
module, closures and lambdas work under fork and spawn). This module is the supervisor's side;
runtime/worker.py is the worker's.

    supervisor (spouts, log, acker)                     worker k: task i of each bolt, i % N == k
    send(task, values, ...) -> frames (runtime/frames.py: what waits for each worker)
        --("t", [deliveries], [blobs], [groups])--frame--> each runs its task's generated chain
        <--("r", n, events, acks, forwards)--           one reply per frame
    events (failures, roots, collected) applied in order, then the acks XORed per root or
    record group (runtime/groups.py: a commit's records for a plain function, one acker entry);
    forwards: deliveries for tasks of worker j, one msgpack blob each, queued for j undecoded

At most two frames per worker are in flight, so a slow worker holds back only its own tasks,
and the work queued for a worker (`load`) steers shuffle groupings away from it (see
`Routing.localize`). Spouts, acker and log stay in the supervisor. A worker that dies is
started again, its tasks prepared again (a worker whose call of user code ran past
`task_timeout` ends itself: runtime/watchdog.py), and every tree in flight goes to the recovery, which
runs them again isolated to find the one that killed it (runtime/recovery.py; a tree that was
not on the dead worker runs again too).

Stateful bolt tasks keep their `State` in their worker. The supervisor keeps a copy of each one
as of the last checkpoint (the changes workers hand over at checkpoints), which a worker started
again begins from; the epoch is rolled back on every worker (see runtime/trees.py).
"""
import copy
import os
import pickle
import select
import socket

import multiprocess

from consecution.errors import ConsecutionError
from consecution.storage import CodecError, decode, encode
from consecution.topology import Component

from .errors import RemoteTraceback, remote_error
from .executors import ROOM, Concurrent
from .frames import Frames
from .state import apply_changes
from .events import FIRST, ONE, apply
from .watchdog import EXIT_TASK_TIMEOUT
from .worker import worker_main

FRAME = 1024      # deliveries per frame, at most (forwarded blobs come on top: frames.FORWARD)
IN_FLIGHT = 2     # frames per worker sent and not yet answered
FRAME_SECONDS = 0.01  # the work a frame should hold: its size follows what the worker measured
FIRST_FRAME = 1       # deliveries in a worker's first frame; its frames grow at most 4x a reply
                      # (slow start: a slow worker does not grab a big share before it measured)
SOCKET_BUFFER = 4 << 20  # bytes a connection to a worker may hold unread, asked of the kernel (capped there)


class WorkerDied(ConsecutionError):
    """A worker process ended while the supervisor waited for its answer; `cause`, when the
    worker said why (a call past task_timeout), is what its trees are charged with."""

    def __init__(self, message, cause=None):
        super().__init__(message)
        self.cause = cause


def bolts_only(topology):
    """A copy of the topology whose spout components carry no object: what a worker needs
    (routing and its bolts), without the supervisor's spouts (which may hold open files)."""
    view = copy.copy(topology)
    view.components = {}
    for name, c in topology.components.items():
        clone = Component(c.name, c.kind, c.obj if c.kind == "bolt" else None, c.parallelism, c.streams)
        clone.inputs = c.inputs
        view.components[name] = clone
    return view


def _room_for_frames(conn):
    """Let the socket under `conn` hold frames unread (SOCKET_BUFFER, as far as the kernel
    allows: net.core.wmem_max and rmem_max): a frame is up to some 200 kB, and with the
    default buffer (about 200 kB) the supervisor's send of a worker's second frame in flight
    waited until that worker read its first, serving no other worker meanwhile (a fifth of
    W's time with parallelism 2)."""
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:
        return
    with sock:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass


class ProcessExecutor(Concurrent):

    def __init__(self, core, workers, start_method):
        self.core = core
        self.n = workers or os.cpu_count() or 1
        self.ctx = multiprocess.get_context(start_method or "fork")
        self.start_method = start_method or "fork"
        bolts = core.bolt_tasks_in_order
        self.n = max(1, min(self.n, max(t.context.parallelism for t in bolts)))
        # task i of every bolt on worker i mod n: tasks of equal index share a worker, so a chain
        # of components with equal parallelism runs inside one worker, by direct calls
        self.placement = {t.task_id: t.context.task_index % self.n for t in bolts}
        self.procs = [None] * self.n
        self.conns = [None] * self.n
        self.frames = Frames(self.placement, self.n)  # what waits for each worker's next frame
        self.sent = [[] for _ in range(self.n)]       # per worker: (deliveries, forwarded ones) per frame in flight
        self.budget = [FIRST_FRAME] * self.n          # per worker: deliveries its next frame may hold
        self.turn = 0
        self.outstanding = 0
        self.forwards = 0  # of the outstanding deliveries, those that workers sent each other (see has_room)
        self.view = bolts_only(core.topology)
        self.committed = {}  # stateful task id -> its state at the last checkpoint
        self.poller = None  # a select.poll of every worker's connection and sentinel (see _watch)
        self.polled = {}    # file descriptor -> (worker, whether it is the sentinel)

    # -- workers -----------------------------------------------------------------------------

    def _spawn(self, k):
        self._launch(k)
        self._ready_or_raise(k)

    def _launch(self, k):
        """Start worker k; it reports when its tasks are built and prepared (`_ready_or_raise`)."""
        ids = [t for t, w in self.placement.items() if w == k]
        settings = {"spec": dict(self.core.spec, mode=self.core.mode), "placement": self.placement,
                    "epochs": self.core.epochs, "task_timeout": self.core.task_timeout,
                    "state": {t: self.committed[t] for t in ids if t in self.committed}}
        self.procs[k], self.conns[k] = self._start_worker(k, ids, settings)
        self._watch(k)

    def _ready_or_raise(self, k):
        reply = self._recv(k)
        if reply[0] == "e":
            self._stop_all()
            raise remote_error(reply[1])

    def _start_worker(self, k, ids, settings):
        """Start worker k (a process) serving the tasks `ids`: (process, connection)."""
        parent, child = self.ctx.Pipe(duplex=True)
        for end in (parent, child):
            _room_for_frames(end)
        settings.update(lock_fd=self.core.lock.fd if self.core.lock is not None else None, parent=os.getpid(),
                        fork=self.start_method == "fork")
        proc = self.ctx.Process(target=worker_main, args=(child, self.view, ids, settings),
                                name=f"consecution-worker-{k}", daemon=True)
        proc.start()
        child.close()
        return proc, parent

    def start(self):
        self.committed = {t: dict(data) for t, data in self.core.initial_state.items()}
        self._start_workers()

    def _start_workers(self):
        for k in range(self.n):  # every worker builds and prepares its tasks at once
            self._launch(k)
        for k in range(self.n):
            self._ready_or_raise(k)

    def _stateful_workers(self, stateful):
        return sorted({self.placement[t] for t in stateful})

    def checkpoint(self, stateful):
        """Every stateful task's changes, once every worker checked its tasks' (CodecError:
        none taken, every state as it was)."""
        workers = self._stateful_workers(stateful)
        for k in workers:
            self.conns[k].send_bytes(encode(["v"]))
        refused = [error for error in (self._recv(k)[1] for k in workers) if error is not None]
        if refused:
            raise CodecError(refused[0])
        out = []
        for k in workers:
            self.conns[k].send_bytes(encode(["p"]))
            for task_id, rows in self._recv(k)[1]:
                if task_id in self.core.named_outputs.writers:
                    out.append((task_id, rows))  # an output's values, not state changes
                    continue
                for row in rows:
                    row[0] = _as_key(row[0])
                apply_changes(self.committed[task_id], rows)
                out.append((task_id, rows))
        return out

    def rollback(self, stateful):
        for k in self._stateful_workers(stateful):
            self.conns[k].send_bytes(encode(["u"]))
            self._recv(k)

    def _recv(self, k):
        try:
            reply = decode(self.conns[k].recv_bytes())
        except (EOFError, OSError):
            raise WorkerDied(f"worker process {k} ended (exit code {self.procs[k].exitcode})") from None
        if reply[0] == "stuck":  # a call past task_timeout, reported instead of the worker ending (ray mode)
            raise WorkerDied(f"worker {k}: {reply[1]} ran longer than task_timeout", self._timed_out(k))
        if reply[0] == "x":  # SystemExit or KeyboardInterrupt in user code: the run ends with it
            exc = pickle.loads(reply[1])
            exc.__cause__ = RemoteTraceback(reply[2])
            raise exc
        return reply

    def _timed_out(self, k):
        return f"worker {k} was ended: a call ran longer than task_timeout ({self.core.task_timeout:g} s)"

    def _died(self, k, cause=None):
        proc = self.procs[k]
        proc.join(timeout=1)
        code = proc.exitcode
        lost, forwards = self.frames.drop(k)
        lost += sum(n for n, _ in self.sent[k])
        self.outstanding -= lost
        self.forwards -= forwards + sum(forwarded for _, forwarded in self.sent[k])
        self.budget[k] = FIRST_FRAME
        self.sent[k] = []
        self._unwatch(k)
        try:
            self.conns[k].close()
        except OSError:
            pass
        if cause is None:
            cause = self._timed_out(k) if code == EXIT_TASK_TIMEOUT else f"worker process {k} died (exit code {code})"
        self.core.logger.error("worker.died", topology=self.core.topology.name, worker=k, exitcode=code,
                               deliveries_lost=lost, cause=cause)
        self.core.worker_died(cause)
        self._spawn(k)
        self._restarted(k)

    def _restarted(self, k):
        """Tell the other workers that worker k was started again, before any frame that follows:
        the words their crossings to it hold start over (runtime/vocabulary.py). Ray mode tells
        its actors when it introduces them again."""
        for j in range(self.n):
            if j != k and self.conns[j] is not None:
                try:
                    self.conns[j].send_bytes(encode(["z", k]))
                except OSError:
                    pass  # that one has died too: started again, it knows no words

    # -- the executor protocol ---------------------------------------------------------------

    def send(self, task_id, values, stream, source, source_task, tid, roots, fields):
        self.frames.delivery(task_id, values, stream, source, source_task, tid, roots)
        self.outstanding += 1

    def send_records(self, task_id, rows, stream, source, source_task, roots, group):
        """The records of one commit for `task_id` (or any task of a shuffle, < 0), as two
        columns: their values and their trees' roots (trees.py, `_queue_batch`). `group`: the
        id of the record group they form (runtime/groups.py), also the id of its first tuple;
        0 when each root is the id of its record's tuple instead. `rows`: the records' values
        tuples; where each has one value, the values themselves travel (`flat`: a list of
        strings unpacks in a third of the time of a list of one-value arrays). No roots:
        untracked records (reliability "none"), run in one loop. A frame carries them as [task,
        source, source task, stream, values, roots, group, part id, flat], split to fit the
        worker's budget: the ids of a group's parts XOR to the group's id."""
        flat = all(map(ONE, map(len, rows)))
        values = list(map(FIRST, rows)) if flat else rows
        self.frames.records([task_id, source, source_task, stream, values, roots, group, group, flat])
        self.outstanding += len(values)

    def submit(self, task_id, tup):
        self.send(task_id, tup.values, tup.stream, tup.source, tup.task, tup.id, tup.roots, None)

    def shared(self, tasks):
        """A stand-in task id (< 0) for "any of `tasks`": a shuffle from the supervisor. Its
        deliveries wait here (runtime/frames.py), and each goes to the first worker with room
        for more work, in a frame sized to what that worker does in FRAME_SECONDS (Storm's
        load-aware shuffle, by pull: a worker on a busier core asks less often, so it gets less)."""
        return self.frames.shared(tasks)

    def _send(self):
        self.turn = (self.turn + 1) % self.n  # no worker is always the first to take shared work
        for i in range(self.n):
            k = (self.turn + i) % self.n
            while len(self.sent[k]) < IN_FLIGHT:
                batch, groups, blobs, n, forwarded = self.frames.take(k, self.budget[k])
                if not (batch or groups or blobs):
                    break
                try:
                    self.conns[k].send_bytes(encode(["t", batch, blobs, groups]))
                except (BrokenPipeError, OSError):
                    self.frames.put_back(k, batch, groups, blobs)
                    break
                self.sent[k].append((n, forwarded))

    def has_room(self):
        """Whether the core may ask the spouts for more: what workers send each other does
        not count (it is bounded by the frames in flight that made it, and counting it starved
        the workers: a frame of lines made five words to forward per line)."""
        return self.outstanding - self.forwards < ROOM

    def run_some(self):
        self._send()
        self._receive(0)

    def wait(self, timeout):
        self._send()
        self._receive(timeout)

    def _receive(self, timeout):
        for k, died in self._ready(timeout):
            if died:
                self._died(k)
                return
            try:
                reply = self._recv(k)
            except WorkerDied as exc:
                self._died(k, exc.cause)
                return
            self.forwards -= self.sent[k].pop(0)[1]
            n, busy = reply[1], reply[2]
            self.outstanding -= n
            if n:
                fits = int(FRAME_SECONDS * n / busy) if busy > 0 else FRAME
                self.budget[k] = max(1, min(FRAME, fits, self.budget[k] * 4))
            self._apply(*reply[3:6])
            if reply[6] is not None:
                self.core.meter.merge(reply[6])

    def _ready(self, timeout):
        """(worker, died) for each worker with a reply to read, or that died, within `timeout`:
        one poll of the file descriptors of every worker's connection and process sentinel,
        registered when it starts (`_watch`)."""
        waiting = any(self.sent)
        events = self.poller.poll(max(0, int(timeout * 1000 + 0.999)) if waiting and timeout is not None
                                  else -1 if waiting else 0)
        ready = []
        for fd, _ in events:
            k, died = self.polled[fd]
            if died or self.sent[k]:
                ready.append((k, died))
        return ready

    def _watch(self, k):
        """Poll worker k's connection and sentinel from now on."""
        if self.poller is None:
            self.poller = select.poll()
        for fd, died in ((self.conns[k].fileno(), False), (self.procs[k].sentinel, True)):
            self.poller.register(fd, select.POLLIN)
            self.polled[fd] = (k, died)

    def _unwatch(self, k):
        """Poll worker k's no longer (it died: before its descriptors close, so that a number
        the system gives out again is never taken for it)."""
        for fd, (worker, _) in list(self.polled.items()):
            if worker == k:
                self.poller.unregister(fd)
                del self.polled[fd]

    def _apply(self, events, acks, forwards):
        """A worker's reply (runtime/events.py), then the deliveries it has for other workers."""
        apply(self.core, events, acks)
        for k, count, blob in forwards:
            self.frames.forward(k, count, blob)
            self.outstanding += count
            self.forwards += count

    def call(self, task, method, *args):
        k = self.placement[task.task_id]
        self.conns[k].send_bytes(encode(["c", task.task_id, method]))
        reply = self._recv(k)
        self._apply(*reply[1:4])
        if reply[4] is not None:
            raise remote_error(reply[4])

    def _stop_all(self):
        """Stop every worker: all are told first, so that they clean up at once."""
        errors, told = [], []
        for k in range(self.n):
            if self.conns[k] is not None and self.procs[k] is not None:
                try:
                    self.conns[k].send_bytes(encode(["s"]))
                    told.append(k)
                except OSError:
                    pass
        for k in told:
            try:
                reply = self._recv(k)
                while reply[0] != "bye":  # replies to frames still in flight (a stop after the grace)
                    reply = self._recv(k)
                errors.extend(remote_error(error) for error in reply[1])
                if reply[2] is not None:  # the worker's last counts
                    self.core.meter.merge(reply[2])
            except (WorkerDied, OSError):
                pass
        for k in range(self.n):
            conn, proc = self.conns[k], self.procs[k]
            if conn is None or proc is None:
                continue
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            conn.close()
            self.procs[k] = self.conns[k] = None
        return errors

    def close(self):
        return self._stop_all()


def _as_key(key):
    """A state key back from msgpack: keys are never lists, so a list was a tuple."""
    return tuple(_as_key(k) for k in key) if key.__class__ is list else key
