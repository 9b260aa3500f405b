"""The live progress display of `consecution run` on a terminal (rich), an observer (observe.py).

What it shows, redrawn at most REDRAW times a second from the scheduler's thread: elapsed
time; per spout task a bar with an ETA when its `progress()` knows how far it is (a list, a
file: what it took, less its records whose trees are in flight, of its total); per component its tasks, tuples executed (a spout's: emitted), tuples/s over
the last seconds and failures; then pending trees, completed, failed, replayed and dead
letters.

It is drawn on stderr, and nothing else mixes with it: log events go through the display's
console (logs.py writes to whatever sys.stderr is), printed above it; and when stdout is the
terminal too, file descriptor 1 of the process becomes a pipe for the run, whose lines (from
the run's own prints, and from worker processes, which inherit it) a thread prints above the
display; the terminal's descriptor comes back when the run ends. With stdout not a terminal
(a pipe, a file) stdout is left alone. The final state stays on screen; the cursor is never
hidden, so even a SIGKILL leaves the terminal usable.
"""
import collections
import os
import sys
import threading

from .observe import Observer, snapshot

REDRAW = 4       # redraws a second at most
RATE_WINDOW = 3.0  # seconds over which tuples/s is measured


class LiveProgress(Observer):
    counts = True  # the run keeps a Meter: per-component counts

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = None
        self.due = 0.0
        self.history = []  # (clock, {component: executed}) over the last RATE_WINDOW seconds
        self.relay = None

    def opening(self, core):  # before worker processes start: they inherit the relay's pipe
        from rich.console import Console
        self.console = Console(file=self.stream, highlight=False)
        self._relay_stdout()

    def started(self, core):
        from rich.live import Live
        super().started(core)
        self.live = Live(self._render(core.clock()), console=self.console, auto_refresh=False, transient=False,
                         redirect_stdout=False, redirect_stderr=True)
        self.live.start(refresh=True)
        self.console.show_cursor(True)  # a kill cannot leave the terminal without its cursor

    def tick(self, now):
        if now >= self.due:
            self.due = now + 1 / REDRAW
            self.live.update(self._render(now), refresh=True)

    def finished(self, result):
        self.close()

    def close(self):
        try:
            self._end_relay()  # first: what was printed last goes above the display, not below it
        finally:
            if self.live is not None:
                try:
                    self.live.update(self._render(self.core.clock(), final=True), refresh=True)
                finally:
                    self.live.stop()
                    self.live = None

    # -- stdout while the display runs -------------------------------------------------------

    def _relay_stdout(self):
        try:
            if not os.isatty(1):
                return
        except OSError:
            return
        sys.stdout.flush()
        self.terminal = os.dup(1)
        read, write = os.pipe()
        os.dup2(write, 1)
        os.close(write)
        self.relay = threading.Thread(target=self._relay, args=(read,), name="consecution-stdout", daemon=True)
        self.relay.start()

    def _relay(self, fd):
        from rich.text import Text
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                self.console.print(Text(line.decode(errors="replace").rstrip("\n")), soft_wrap=True)

    def _end_relay(self):
        if self.relay is None:
            return
        sys.stdout.flush()
        os.dup2(self.terminal, 1)  # the pipe's last writer here closes: the relay reads to its end
        os.close(self.terminal)
        self.relay.join(timeout=2)  # a worker that outlives the run may still hold the pipe
        self.relay = None

    # -- what it draws -----------------------------------------------------------------------

    def _rates(self, now, executed):
        self.history.append((now, executed))
        while len(self.history) > 2 and now - self.history[1][0] >= RATE_WINDOW:
            self.history.pop(0)
        then, before = self.history[0]
        span = now - then
        return {name: (n - before.get(name, 0)) / span if span > 0 else 0.0 for name, n in executed.items()}

    def _render(self, now, final=False):
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text
        core = self.core
        meter = core.meter
        s = snapshot(core)
        per = {}  # component -> [tasks, executed (a spout's: emitted), failed, kind]
        for task in core.tasks:
            kind = "spout" if task in core.spout_tasks else "bolt"
            row = per.setdefault(task.component, [0, 0, 0, kind])
            row[0] += 1
            row[1] += meter.emitted[task.task_id] if kind == "spout" else meter.executed[task.task_id]
            row[2] += meter.failed[task.task_id]
        rates = self._rates(now, {name: row[1] for name, row in per.items()})
        state = "recovering" if s["recovering"] else "stopping" if core.stopping else "running"
        if final:
            state = core.result.status or "ended"
        title = Text.assemble((f"{core.topology.name}", "bold"), f"  {core.mode} mode  {state}  ",
                              f"elapsed {_clock(s['elapsed'])}")
        grid = Table.grid(padding=(0, 2))
        grid.add_row(title)
        in_flight = collections.Counter()
        for holder, n in core.in_flight():
            in_flight[holder.spout, holder.task] += n
        for task in core.spout_tasks:
            known = _progress(task.obj)
            if known is None:
                continue
            done, total, unit = known
            if unit == "records":  # those emitted whose trees are in flight are not done yet
                done = max(0, done - in_flight[task.component, task.context.task_index])
            eta = ""
            rate = rates.get(task.component, 0.0)
            if 0 < done < total and s["elapsed"] > 0:
                share = done / total
                eta = f"ETA {_clock(s['elapsed'] * (1 - share) / share)}"
            bar = Table.grid(padding=(0, 1))
            bar.add_row(f"{task.component}[{task.context.task_index}]", ProgressBar(total=total, completed=done, width=30),
                        f"{100 * done / total:5.1f}%", _amount(done, total, unit), eta if rate or not final else "")
            grid.add_row(bar)
        table = Table(box=None, padding=(0, 2), show_edge=False)
        for heading in ("component", "tasks", "tuples", "tuples/s", "failed"):
            table.add_column(heading, justify="left" if heading == "component" else "right")
        for name, (tasks, executed, failed, kind) in per.items():
            if name.startswith("__"):  # hidden writers of named outputs
                continue
            table.add_row(name + (" (spout)" if kind == "spout" else ""), str(tasks), f"{executed:,}",
                          f"{rates.get(name, 0.0):,.0f}", f"{failed:,}" if failed else "")
        grid.add_row(table)
        grid.add_row(Text(f"pending {s['pending_trees']:,}  completed {s['completed']:,}  failed {s['failed']:,}  "
                          f"replayed {s['replayed']:,}  dead letters {s['dead_letters']:,}"))
        return grid


def _progress(spout):
    try:
        known = spout.progress()
    except Exception:  # noqa: BLE001 - a display never ends a run
        return None
    if not known or known[1] <= 0:
        return None
    done, total, unit = known
    return min(done, total), total, unit


def _amount(done, total, unit):
    if unit != "bytes":
        return f"{done:,}/{total:,}"
    scale, name = next((s, n) for s, n in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"), (1, "B"))
                       if total >= s)
    return f"{done / scale:,.1f}/{total / scale:,.1f} {name}"


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
