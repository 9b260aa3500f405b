"""Ray mode: bolt tasks on Ray actors, spread over a cluster's nodes; spouts, the acker, the log
and the state checkpoints stay in the driver (the `consecution run` process), as in process
mode.

It is process mode over another transport: `RayExecutor` is the `ProcessExecutor` (frames,
budgets, forwarding, checkpoints, worker deaths and the recovery of their trees) whose workers
are actors instead of child processes. Each actor runs the worker's own serving loop
(runtime/worker.py) on a thread of its own, fed through two queues: a call of `handle` puts one
message in and returns its one reply, and Ray runs an actor's calls in order, so the loop sees
the messages as a pipe would give them. An actor that dies, or whose node leaves the cluster,
fails the call in flight (`RayActorError`): the executor handles it as a worker that died (its
trees go to the recovery at once, runtime/recovery.py) and starts the actor again, where Ray
places it on the nodes that remain.

Deliveries between tasks of different actors travel from actor to actor: the serving loop
hands its blob for each other worker to `QueueConn.forward`, which pushes it to that worker's
actor (`push`, in a concurrency group of its own, so it lands while the actor is busy) under a
key, and the reply to the driver carries the key instead of the blob. The driver queues keys
as process mode queues blobs (counting them as outstanding, sending them in that worker's next
frame), and the receiving loop gets each blob back by its key (`resolve`). A key names the
start (generation) of the actor it was pushed to: a push to an actor that has died since is
dropped by the driver, whose recovery already took its trees.

Nodes of a cluster do not have the topology's files: the modules loaded in the driver that are
not installed ones (the topology module, and the modules of yours it imported, such as a
`ledger.py` beside it) travel by value with the bolts that use them (cloudpickle's
`register_pickle_by_value`). Installed packages must be installed on every node. An actor
works in the driver's working directory when its node has that directory (the driver's machine,
or a shared file system), so relative paths in bolts mean what they mean in process mode; and
it gets the driver's environment variables that its node does not set itself (`driver_environ`).

Ray is an optional dependency (`pip install 'consecution[ray]'`), imported when the mode starts.
`address` is what `ray.init` takes ("auto", "HOST:PORT"); None uses `RAY_ADDRESS`, else starts a
local Ray for the run (on 127.0.0.1) and stops it after. A Ray already initialized in this
process (tests share one) is used as it is, and left running.
"""
import collections
import os
import queue
import socket
import sys
import sysconfig
import threading
import time

from consecution.storage import encode

from .errors import ModeNotAvailable
from .process import ProcessExecutor, WorkerDied
from .worker import serve

INSTALL = "pip install 'consecution[ray]'"
ACTOR_CPUS = 0.01    # what an actor asks of a node
START_TIMEOUT = 60.0  # seconds an actor may take to be placed and prepare its tasks
BLOB_WAIT = 30.0      # seconds a worker waits for deliveries another actor pushed to it
START_TRIES = 8       # starts of an actor that died before it was ready, at most (pauses of 0.25 s doubling to 5 s)


class RayNotAvailable(ModeNotAvailable):
    """Ray mode was asked for, and Ray is not installed or the cluster cannot be reached."""


LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's processes use 127.0.0.1 as the node's address


def import_ray(local):
    """Ray, imported; `local`: a Ray of our own will be started, kept on loopback (Ray reads the
    variable when it is imported, and its processes inherit it)."""
    if local:
        os.environ.setdefault(LOOPBACK, "0")
    try:
        import ray
    except ImportError:
        raise RayNotAvailable(f"--mode ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def user_modules():
    """The modules loaded here that are not installed ones (not in the standard library or
    site-packages, not consecution): the topology module and the modules of yours it loaded,
    which the bolts' code may use and the nodes do not have."""
    installed = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path is None or name == "__main__" or name.split(".")[0] == "consecution":
            continue
        if not any(os.path.abspath(path).startswith(root + os.sep) for root in installed):
            found.append(module)
    return found


def driver_environ():
    """The driver's environment variables for its actors, which fill in those their node does not
    set (a bolt reading os.environ at run time finds what it finds in process mode; PATH, HOME
    and the like stay the node's own). Ray's own variables stay out."""
    return {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}


def _reachable(address, timeout=5.0):
    """Raise RayNotAvailable unless the cluster at HOST:PORT takes a connection (ray.init itself
    retries for minutes); "auto", "ray://..." and None are left to ray.init."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayNotAvailable(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class QueueConn:
    """The worker's end of an actor: the pipe methods the serving loop uses, on two queues; and
    the deliveries for other workers, sent to their actors directly (`forward`, `resolve`)."""

    def __init__(self, index):
        self.inbox, self.outbox = queue.SimpleQueue(), queue.SimpleQueue()
        self.index = index
        self.sent = 0
        self.peers = []          # per worker: (actor handle, generation), set by the driver
        self.restarted = []      # workers started again since the serving loop last looked (worker.py)
        self.blobs = {}          # (sender, number, generation) -> a blob another actor pushed here
        self.arrived = threading.Condition()

    def poll(self, timeout):
        try:
            self.pending = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return False
        return True

    def recv_bytes(self):
        return self.pending

    def send_bytes(self, data):
        self.outbox.put(bytes(data))

    def stuck(self, where):
        """The worker's watchdog: a call ran past task_timeout. The answer to the frame that
        waits says so (the driver then kills this actor)."""
        self.outbox.put(encode(["stuck", where]))

    def forward(self, events, acks, forwards):
        """Push each blob for another worker to its actor; the reply carries its key instead."""
        keyed = []
        for k, count, blob in forwards:
            actor, generation = self.peers[k]
            self.sent += 1
            key = [self.index, self.sent, generation]
            actor.push.options(concurrency_group="io").remote(key, blob)
            keyed.append([k, count, key])
        return events, acks, keyed

    def set_peers(self, peers):
        """Where the other actors are; a worker whose generation changed was started again."""
        before = self.peers
        self.restarted += [k for k, (_, generation) in enumerate(peers)
                           if k < len(before) and before[k][1] != generation]
        self.peers = peers

    def push(self, key, blob):
        with self.arrived:
            self.blobs[tuple(key)] = blob
            self.arrived.notify_all()

    def resolve(self, key):
        """The blob pushed under `key` (it may still be on its way)."""
        key = tuple(key)
        with self.arrived:
            if not self.arrived.wait_for(lambda: key in self.blobs, BLOB_WAIT):
                raise EOFError(f"deliveries {key} from worker {key[0]} did not arrive within {BLOB_WAIT:g} s")
            return self.blobs.pop(key)


class Worker:
    """The actor: the worker's serving loop on a thread, one message in and its reply out per
    call (`ready` takes the reply to the start: prepared, or the error of a `prepare`).
    `push` and `set_peers` run in a concurrency group of their own ("io"), beside a `handle`."""

    def __init__(self, index, topology, task_ids, settings, cwd, environ):
        if os.path.isdir(cwd):  # the driver's machine, or a directory shared with it
            os.chdir(cwd)       # relative paths in bolts mean what they mean in process mode
        for name, value in environ.items():  # the driver's variables the node does not set itself
            os.environ.setdefault(name, value)
        self.conn = QueueConn(index)
        self.thread = threading.Thread(target=self._serve, args=(topology, task_ids, settings),
                                       name="consecution-worker", daemon=True)
        self.thread.start()

    def _serve(self, topology, task_ids, settings):
        serve(self.conn, topology, task_ids, settings)
        self.ended = True
        self.conn.outbox.put(None)  # wakes a call waiting for a reply that will not come

    ended = False

    def ready(self):
        return self._reply()

    def node(self):
        import ray
        return ray.get_runtime_context().get_node_id()

    def set_peers(self, peers):
        self.conn.set_peers(peers)

    def push(self, key, blob):
        self.conn.push(key, blob)

    def handle(self, data):
        if self.ended:
            raise EOFError("the worker's loop has ended")
        self.conn.inbox.put(data)
        return self._reply()

    def _reply(self):
        reply = self.conn.outbox.get()
        if reply is None:
            raise EOFError("the worker's loop has ended")
        return reply


class ActorConn:
    """The driver's end of an actor: each message sent is a call, its reply the call's result,
    read in the order sent. A dead actor's call raises, read as a closed pipe (EOFError)."""

    def __init__(self, ray, actor):
        self.ray, self.actor = ray, actor
        self.calls = collections.deque([actor.ready.remote()])
        self.started = False

    def send_bytes(self, data):
        self.calls.append(self.actor.handle.remote(data))

    def recv_bytes(self):
        timeout = None if self.started else START_TIMEOUT  # no node may take the actor
        self.started = True
        try:
            return self.ray.get(self.calls.popleft(), timeout=timeout)
        except self.ray.exceptions.RayError as exc:  # the actor died, or its loop ended
            raise EOFError(str(exc)) from None

    def close(self):
        self.calls.clear()


class ActorProc:
    """What the executor asks of a worker process, for an actor."""

    exitcode = None

    def __init__(self, ray, actor):
        self.ray, self.actor = ray, actor
        self.alive = True

    def join(self, timeout=None):
        pass

    def is_alive(self):
        return self.alive

    def kill(self):
        self.alive = False
        try:
            self.ray.kill(self.actor)
        except Exception:  # noqa: BLE001 - gone already
            pass


class RayExecutor(ProcessExecutor):

    def __init__(self, core, workers, address):
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.ray = ray = import_ray(local=address is None)
        self.started_ray = False
        if not ray.is_initialized():
            self._init(address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        super().__init__(core, workers or cpus, None)
        # a token share of a CPU: actors go to nodes that offer CPUs (not to a head node started
        # with --num-cpus=0), and any number of them fits on the nodes that remain
        self.actor_class = ray.remote(num_cpus=ACTOR_CPUS, concurrency_groups={"io": 1})(Worker)
        self.nodes = [None] * self.n       # per worker: the id of the node its actor runs on
        self.generation = [0] * self.n     # per worker: how many times its actor was started
        self.pushed = 0                    # blobs actors pushed to each other (keys the driver queued)

    def _init(self, address):
        ray = self.ray
        _reachable(address)
        try:
            if address is None:  # a Ray of our own, for this run, on loopback only
                ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=True,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=True, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayNotAvailable(f"cannot reach the Ray cluster at {address}: {exc}") from None
        self.started_ray = True

    def start(self):
        for module in user_modules():
            self.ray.cloudpickle.register_pickle_by_value(module)
        super().start()

    def _start_workers(self):
        for k in range(self.n):  # each placed and told of the others before the next starts
            self._spawn(k)

    def _spawn(self, k):
        """Start worker k's actor; again after a pause if it died before it was ready (Ray may
        place it on a node that has just left the cluster, before it knows)."""
        for attempt in range(START_TRIES):
            try:
                super()._spawn(k)
                break
            except WorkerDied as exc:
                self.procs[k].kill()
                if attempt == START_TRIES - 1:
                    raise WorkerDied(f"worker actor {k} could not be started {START_TRIES} times: {exc}") from None
                pause = min(5.0, 0.25 * 2 ** attempt)
                self.core.logger.warning("worker.start_failed", topology=self.core.topology.name, worker=k,
                                         error=str(exc), retry_in=pause)
                time.sleep(pause)
        self.nodes[k] = self.ray.get(self.procs[k].actor.node.remote())
        self.core.logger.info("worker.placed", topology=self.core.topology.name, worker=k, node=self.nodes[k])
        self.generation[k] += 1
        self._introduce()

    def _introduce(self):
        """Tell every actor where the others are (and which start of each), so that they push
        their deliveries for each other directly."""
        ray = self.ray
        peers = [(proc.actor, self.generation[j]) if proc is not None else (None, 0)
                 for j, proc in enumerate(self.procs)]
        calls = [proc.actor.set_peers.options(concurrency_group="io").remote(peers)
                 for proc in self.procs if proc is not None]
        for call in calls:
            try:
                ray.get(call, timeout=START_TIMEOUT)
            except ray.exceptions.RayError:
                pass  # that actor died meanwhile: its death is found by its next call

    def _watch(self, k):
        pass  # an actor's replies are Ray object refs, waited for in _ready

    def _unwatch(self, k):
        pass

    def _died(self, k, cause=None):
        self.procs[k].kill()  # dead already, or hung past task_timeout
        super()._died(k, cause)

    def _restarted(self, k):
        pass  # each actor learns it from the new generation in `set_peers` (QueueConn.restarted)

    def _apply(self, events, acks, forwards):
        """As process mode; the deliveries a worker pushed to an actor that has died since are
        dropped (their trees went to the recovery with the death)."""
        generation = self.generation
        live = [f for f in forwards if f[2][2] == generation[f[0]]]
        self.pushed += len(live)
        super()._apply(events, acks, live)

    def _start_worker(self, k, ids, settings):
        settings.update(lock_fd=None, parent=None, fork=False)
        actor = self.actor_class.options(name=None, scheduling_strategy="SPREAD",
                                         max_restarts=0).remote(k, self.view, ids, settings, os.getcwd(), driver_environ())
        return ActorProc(self.ray, actor), ActorConn(self.ray, actor)

    def _ready(self, timeout):
        oldest = {self.conns[k].calls[0]: k for k in range(self.n) if self.sent[k]}
        if not oldest:
            return []
        refs = list(oldest)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout, fetch_local=False)
        if ready and len(refs) > 1:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        return [(oldest[ref], False) for ref in ready]

    def close(self):
        try:
            return self._stop_all()  # each actor is asked to stop, then killed
        finally:
            if self.started_ray:
                self.ray.shutdown()
