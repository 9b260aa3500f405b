"""Where bolt tasks run: the one thing that differs between modes.

The scheduler core owns the acker, the log, retries, timeouts and the finish order, on one
thread. An executor takes deliveries (`submit(task_id, tup)`) and runs them:

    SingleExecutor   in the core's own thread, in order (the reference semantics)
    ThreadExecutor   on a pool of threads; a task runs on one thread at a time, its inputs in
                     order; what a task does (emits, acks, fails) is recorded in its
                     `EventSink` and applied by the core when the task hands its batch back
    ProcessExecutor  (runtime/process.py) on worker processes, the same events sent back as
                     msgpack frames (runtime/events.py)

Every executor offers: start(), send(task_id, values, stream, source, source task, id, roots,
fields) and submit(task_id, tup) for deliveries, busy(), queued(), has_room(), run_some(),
wait(timeout), call(task, method, *args) for prepare/flush/finish/cleanup, close(); and, called
only when nothing is in flight, checkpoint(stateful) -> [(task id, state changes)] and
rollback(stateful) for the `State` of stateful bolt tasks. An executor may offer
send_records(task_id, rows, stream, source, source task, roots, group) for a commit's
records in two columns, their values tuples and their roots (process and ray mode; `group`:
runtime/groups.py); without it they are sent one by one.
"""
import collections
import queue as queue_module
import threading

from consecution.topology import Tuple

from .events import apply

ROOM = 4096  # deliveries queued or running before the core stops asking spouts for more


class LocalState:
    """Stateful tasks in this process (single and thread mode): their `State` is at hand. The
    core calls these only when no task runs."""

    def checkpoint(self, stateful):
        """Every stateful task's changes, once every task's were checked (CodecError: none
        taken, every state as it was)."""
        for task in stateful.values():
            task.obj.state.check()
        return [(task_id, task.obj.state.changes()) for task_id, task in stateful.items()]

    def rollback(self, stateful):
        for task in stateful.values():
            task.obj.state.rollback()


class SingleExecutor(LocalState):
    """Runs every delivery in the core's thread, first in, first out."""

    concurrent = False

    def __init__(self, core):
        self.core = core
        self.queue = collections.deque()

    def start(self):
        for task in self.core.bolt_tasks_in_order:
            self.core.call_user(task, "prepare", task.context)

    def submit(self, task_id, tup):
        self.queue.append((self.core.tasks[task_id], tup))

    def send(self, task_id, values, stream, source, source_task, tid, roots, fields):
        self.queue.append((self.core.tasks[task_id], Tuple(values, stream, source, source_task, tid, roots, fields)))

    def busy(self):
        return bool(self.queue)

    def queued(self):
        return len(self.queue)

    def has_room(self):
        return True

    def run_some(self):
        queue = self.queue
        popleft = queue.popleft
        while queue:
            task, tup = popleft()
            task.execute(tup)

    def wait(self, timeout):
        pass

    def call(self, task, method, *args):
        return self.core.call_user(task, method, *args)

    def close(self):
        errors = []
        for task in self.core.bolt_tasks_in_order:
            try:
                self.core.call_user(task, "cleanup")
            except Exception as exc:  # noqa: BLE001 - reported after every task had its cleanup
                errors.append(exc)
        return errors


class Concurrent:
    """What thread and process executors share: `outstanding` deliveries (submitted, not yet
    handed back) tell whether they are busy and whether the core may ask spouts for more."""

    concurrent = True
    outstanding = 0

    def busy(self):
        return self.outstanding > 0

    def queued(self):
        return self.outstanding

    def has_room(self):
        return self.outstanding < ROOM


class ThreadExecutor(LocalState, Concurrent):
    """Bolt tasks on `workers` threads, each task pinned to one of them (task i of the bolts on
    thread i mod N), so that everything of a task (prepare, process, finish, cleanup) runs on
    one thread: a database connection opened in `prepare` can be used in `process` (sqlite3
    insists). Each task has a mailbox; a task with mail is put on its thread's run queue; the
    thread runs up to `batch` of its inputs, then hands the task's events to the core, which
    puts the task back on the run queue if more mail came."""

    def __init__(self, core, workers, batch=64):
        self.core = core
        self.workers = workers = max(1, min(workers, len(core.bolt_tasks_in_order)))  # no idle thread
        self.batch = batch
        self.home = {t.task_id: i % workers for i, t in enumerate(core.bolt_tasks_in_order)}
        self.mail = {}                  # task id -> deque of deliveries (see runtime/events.py)
        self.running = set()            # task ids on a thread or on a run queue
        self.runnable = [queue_module.SimpleQueue() for _ in range(workers)]
        self.done = queue_module.SimpleQueue()     # (task id, n, events, error)
        self.replies = queue_module.SimpleQueue()  # (result, error) of lifecycle calls
        self.threads = []

    def start(self):
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, args=(i,), name=f"consecution-worker-{i}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        for task in self.core.bolt_tasks_in_order:
            self.call(task, "prepare", task.context)

    def submit(self, task_id, tup):
        self.send(task_id, tup.values, tup.stream, tup.source, tup.task, tup.id, tup.roots, None)

    def send(self, task_id, values, stream, source, source_task, tid, roots, fields):
        self.outstanding += 1
        box = self.mail.get(task_id)
        if box is None:
            box = self.mail[task_id] = collections.deque()
        box.append((values, stream, source, source_task, tid, roots))
        if task_id not in self.running:
            self.running.add(task_id)
            self.runnable[self.home[task_id]].put(task_id)

    def _work(self, k):
        tasks, mail, batch, runnable = self.core.tasks, self.mail, self.batch, self.runnable[k]
        while True:
            item = runnable.get()
            if item is None:
                return
            if item.__class__ is tuple:  # a lifecycle call: (task, method, args)
                task, method, args = item
                try:
                    self.replies.put((self.core.call_user(task, method, *args), None))
                except BaseException as exc:  # handed to the core's thread, raised there
                    self.replies.put((None, exc))
                continue
            task, box = tasks[item], mail[item]
            run_of = task.chains.run
            n = 0
            try:
                while box and n < batch:
                    values, stream, source, source_task, tid, roots = box.popleft()
                    run_of(item, source, source_task, stream)(values, roots, tid)
                    n += 1
                error = None
            except BaseException as exc:  # execute catches user errors; this is the runtime's
                error = exc
            self.done.put((item, n, task.sink.take(), error))

    def run_some(self):
        self._apply(block=False)

    def wait(self, timeout):
        self._apply(block=True, timeout=timeout)

    def _apply(self, block, timeout=None):
        try:
            item = self.done.get(block, timeout) if block else self.done.get_nowait()
        except queue_module.Empty:
            return
        while True:
            task_id, n, events, error = item
            if error is not None:
                raise error
            self.outstanding -= n
            self._apply_events(events)
            if self.mail[task_id]:
                self.runnable[self.home[task_id]].put(task_id)
            else:
                self.running.discard(task_id)
            try:
                item = self.done.get_nowait()
            except queue_module.Empty:
                return

    def _apply_events(self, taken):
        events, acks, sends = taken
        apply(self.core, events, acks)
        for (task_id, source, source_task, stream), items in sends.items():
            for values, tid, roots in items:
                self.send(task_id, values, stream, source, source_task, tid, roots, None)

    def call(self, task, method, *args):
        """Run a lifecycle method on the task's own thread (the task is idle: the core calls
        this only when nothing is queued for it) and apply what it emitted."""
        self.runnable[self.home[task.task_id]].put((task, method, args))
        result, error = self.replies.get()
        self._apply_events(task.sink.take())
        if error is not None:
            raise error
        return result

    def close(self):
        errors = []
        if self.threads:
            for task in self.core.bolt_tasks_in_order:
                try:
                    self.call(task, "cleanup")
                except Exception as exc:  # noqa: BLE001 - every task gets its cleanup first
                    errors.append(exc)
        for runnable in self.runnable:
            runnable.put(None)
        for thread in self.threads:
            thread.join(timeout=5)
        return errors
