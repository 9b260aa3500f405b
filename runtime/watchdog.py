"""What ends a run that user code holds: one call past `task_timeout`, a stop signal's grace.

User code that does not return cannot be stopped from outside its thread. Two things end it,
both as a crash ends a run, so that what the log committed is kept and the records in flight
become suspects, run again in isolation (runtime/recovery.py); a record that hangs its task
while it runs alone is charged like a record that crashes it:

- `task_timeout` (topology option, `--task-timeout`): one *call* that runs longer, that is one
  input through a bolt's `process` (with the steps fused to it) or one `next_tuple` of a spout.
  A `Watchdog` thread looks at the stacks of the threads that run user code every tenth of the
  limit (at most every second): the call a thread is in is the outermost frame of a generated
  chain (runtime/chains.py) or a `next_tuple` called by the spout driver, and the same frame
  object on two looks `limit` apart is the same call, unless it is a generated loop over
  several inputs (a commit's records, a batch, a run from another worker), which marks each
  in a cell of its globals, `INPUT` (an object of that input's own, or a count): then the same
  frame with the same mark (`input_of`). In a worker process (process mode) the
  worker's own watchdog ends the worker (exit status EXIT_TASK_TIMEOUT) and the run goes on, as
  with any worker that dies. In single and thread mode the whole process ends (`abandon`, exit
  status 4, log event `task.stuck` with the stack of the call); under systemd the restart runs
  the suspects isolated. The hot path pays nothing: the watchdog only reads stacks.
- A stop signal (cli.py): user code still running `grace` + ABANDON_AFTER seconds after the
  first signal ends the process the same way (`run.abandoned`).

Lifecycle calls (`prepare`, `flush`, `finish`, `cleanup`, `open`, `close`) have no limit.
"""
import os
import sys
import threading
import traceback

from .spout_driver import SpoutDriver

EXIT_ABANDONED = 4      # the process was ended because user code did not return
EXIT_TASK_TIMEOUT = 124  # a worker process ended itself: a call ran past task_timeout (as timeout(1) exits)
CHAIN_FILE = "<consecution chain "
ASK = SpoutDriver._ask.__code__


def abandon(scheduler, event, **fields):
    """End the process as a kill would: log `event`, kill worker processes, exit 4. What the log
    committed is kept, and the next run treats this one as a crash."""
    scheduler.logger.error(event, topology=scheduler.topology.name, **fields)
    scheduler.kill_workers()
    flush_std()
    os._exit(EXIT_ABANDONED)


def flush_std():
    for stream in (sys.stdout, sys.stderr):  # os._exit skips it: what user code printed would be lost
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def current_call(frame):
    """The frame of the call of user code a thread is in (see the module docstring), or None."""
    call = None
    while frame is not None:
        back = frame.f_back
        if frame.f_code.co_filename.startswith(CHAIN_FILE) or (back is not None and back.f_code is ASK):
            call = frame  # the outermost one wins
        frame = back
    return call


def input_of(call):
    """Which input a generated loop over several inputs is at (the mark it keeps in its
    globals, INPUT: compared by identity), None for any other call: with the frame, it names
    one call of user code."""
    cell = call.f_globals.get("INPUT")
    return cell[0] if cell.__class__ is list else None


def describe(call):
    name = call.f_code.co_filename
    if name.startswith(CHAIN_FILE):
        return f"bolt {name[len(CHAIN_FILE):-1]}"  # e.g. "bolt store[0] <- numbers/default"
    return f"spout {call.f_code.co_qualname}"


class Watchdog:
    """Looks at the calls of user code in `threads()` ({ident: name}) every so often; calls
    `on_stuck(where, stack)` for one that ran longer than `limit` seconds."""

    def __init__(self, limit, threads, on_stuck, clock):
        self.limit = limit
        self.threads = threads
        self.on_stuck = on_stuck
        self.clock = clock
        self.seen = {}  # thread ident -> (the call's frame, when it was first seen, its input_of)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="consecution-watchdog", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()

    def _watch(self):
        every = min(1.0, self.limit / 10)
        while not self.stopped.wait(every):
            found = self.look(self.clock())
            if found is not None and not self.stopped.is_set():
                self.on_stuck(*found)
                return

    def look(self, now):
        """(where, stack) of a call past the limit, or None; remembers the calls seen."""
        frames = sys._current_frames()
        seen = {}
        for ident, thread_name in self.threads().items():
            frame = frames.get(ident)
            call = current_call(frame) if frame is not None else None
            if call is None:
                continue
            at = input_of(call)
            before = self.seen.get(ident)
            since = before[1] if before is not None and before[0] is call and before[2] is at else now
            seen[ident] = (call, since, at)
            if now - since > self.limit:
                stack = "".join(traceback.format_stack(frame))
                return f"{describe(call)} on {thread_name}, for {now - since:.1f} s", stack
        self.seen = seen  # frames of calls that ended are let go
        return None
