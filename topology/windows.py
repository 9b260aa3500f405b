"""Windowed bolts: tumbling, sliding, session and count windows over event or processing time,
kept in exactly-once state.

    class Hourly(WindowedBolt):
        window = tumbling(seconds=3600)   # tumbling(count=100), sliding(seconds=600, every=60), session(gap=300)
        timestamp = "ts"                  # event time: this field, epoch seconds; None: processing time
        lateness = 60                     # watermark = the largest timestamp seen - lateness
        key = "partner"                   # optional: a window per value of this field
        fields = ("partner", "start", "cents")

        def process_window(self, window):   # window.start, .end, .key, .tuples
            self.emit((window.key, window.start, sum(t["cents"] for t in window.tuples)))

Time windows are aligned to multiples of their length (a sliding window's starts to multiples
of `every`) since the epoch; `start` and `end` are epoch seconds, a tuple at time t belongs to
the windows with start <= t < end. With event time a window closes when the watermark reaches
its end; a tuple whose windows all ended at or before the watermark is late: it goes out on the
bolt's `late` stream (its values as they came) and is counted in `self.late`. With processing
time the clock closes windows (checked at every input and at every tick). A count window closes
when it holds `count` tuples (per key); its start and end count the key's tuples. A session
(per key) holds tuples less than `gap` apart, from its first tuple's time to `gap` after its
last; a tuple between two sessions joins them.

The windows' tuples are kept in the bolt's exactly-once state (`stateful = True`), one state
entry per tuple: a window may last longer than `message_timeout` and hold more than
`max_pending` tuples, and after a crash it holds what the last checkpoint held, the inputs
since then replayed into it. A window's result is emitted when it closes, anchored to the
input that closed it (at the end of the input, from `finish`, and on a tick: trees of their
own), in the epoch whose checkpoint removes the window: a stateful bolt downstream adds each
result once. When a finite input ends, every open window closes, oldest first, before the
bolt's own `finish` (a subclass that defines `finish` calls `super().finish()` first).
"""
import math
import time

from .components import Bolt, ComponentError
from .tuples import Fields, Tuple

__all__ = ["Window", "WindowedBolt", "session", "sliding", "tumbling"]


class Spec:
    """What `tumbling` and `sliding` return: a window's shape."""

    def __init__(self, seconds=None, count=None, every=None, gap=None):
        self.seconds, self.count, self.every, self.gap = seconds, count, every, gap

    def starts(self, t):
        """The starts of the time windows that hold time `t`, oldest first."""
        if self.every is None:
            return [math.floor(t / self.seconds) * self.seconds]
        last = math.floor(t / self.every) * self.every
        first = last - (math.ceil(self.seconds / self.every) - 1) * self.every
        return [s for s in _range(first, last, self.every) if s <= t < s + self.seconds]

    def __repr__(self):
        if self.gap is not None:
            return f"session(gap={self.gap:g})"
        if self.count is not None:
            return f"tumbling(count={self.count})"
        if self.every is None:
            return f"tumbling(seconds={self.seconds:g})"
        return f"sliding(seconds={self.seconds:g}, every={self.every:g})"


def _range(first, last, step):
    out, s = [], first
    while s <= last:
        out.append(s)
        s += step
    return out


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ComponentError(f"{name} must be a positive number, got {value!r}")
    return value


def tumbling(seconds=None, count=None):
    """Windows of `seconds` one after the other, or of `count` tuples."""
    if (seconds is None) == (count is None):
        raise ComponentError("tumbling() takes seconds= or count=, one of them")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ComponentError(f"tumbling(count=...) must be a positive int, got {count!r}")
        return Spec(count=count)
    return Spec(seconds=_positive("tumbling(seconds=...)", seconds))


def sliding(seconds, every):
    """Windows of `seconds` starting every `every` seconds (a tuple is in about seconds/every)."""
    _positive("sliding(seconds=...)", seconds)
    _positive("sliding(every=...)", every)
    if every > seconds:
        raise ComponentError(f"sliding(seconds={seconds}, every={every}): every must not exceed seconds")
    return Spec(seconds=seconds, every=every)


def session(gap):
    """Windows of a key's tuples separated by less than `gap` seconds: a session starts at its
    first tuple's time and ends `gap` after its last; a tuple that falls between two sessions
    joins them into one."""
    return Spec(gap=_positive("session(gap=...)", gap))


class Window:
    """What `process_window` gets: `start`, `end`, `key` (None without `key`), `tuples` (in the
    order they came)."""

    def __init__(self, start, end, key, tuples):
        self.start, self.end, self.key, self.tuples = start, end, key, tuples

    def __repr__(self):
        return f"Window(start={self.start!r}, end={self.end!r}, key={self.key!r}, {len(self.tuples)} tuples)"


OPEN = ("window", "open")         # state: [[key, start, end], ...] of the open time windows
WATERMARK = ("window", "watermark")
FIELDS = ("window", "fields")     # the input's fields, to make the tuples of a window again


class WindowedBolt(Bolt):
    """See the module docstring. Define `window`, `process_window(window)`, and as needed
    `timestamp`, `lateness`, `key` and `fields` (of what it emits on the default stream)."""

    stateful = True
    late_takes_input_fields = True  # validation gives the late stream the input's fields
    window = None
    timestamp = None
    lateness = 0
    key = None
    clock = staticmethod(time.time)  # processing time (tests give another)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.streams is None:  # `fields` name the default stream; the late one takes the input as it is
            cls.streams, cls.fields = {"default": cls.fields, "late": None}, None
        elif "late" not in cls.streams:
            cls.streams = {**cls.streams, "late": None}
        spec = cls.__dict__.get("window")
        if spec is not None and not isinstance(spec, Spec):
            raise ComponentError(f"{cls.__name__}.window must be tumbling(...), sliding(...) or session(...), "
                                 f"got {spec!r}")
        if cls.timestamp is None and spec is not None and spec.count is None and cls.tick_every is None:
            cls.tick_every = min(1.0, (spec.every or spec.seconds or spec.gap) / 10)  # the clock closes windows

    def prepare(self, context):
        if self.window is None:
            raise ComponentError(f"{type(self).__name__}: set window = tumbling(...) or sliding(...)")
        self.late = 0

    def process_window(self, window):
        raise NotImplementedError(f"{type(self).__name__} must define process_window(self, window)")

    # -- inputs ------------------------------------------------------------------------------

    def process(self, tup):
        state = self.state
        if FIELDS not in state:
            state[FIELDS] = list(tup.fields)
        key = tup[self.key] if self.key is not None else None
        if self.window.count is not None:
            self._count(key, list(tup.values))
            return
        t = float(tup[self.timestamp]) if self.timestamp is not None else self.clock()
        watermark = state.get(WATERMARK)
        if self.window.gap is not None:
            self._session(tup, key, t, watermark)
            return
        starts = self.window.starts(t)
        kept = [s for s in starts if watermark is None or s + self._length() > watermark]
        if not kept:
            self.late += 1
            self.emit(tuple(tup.values), stream="late")
        values = list(tup.values)
        opened = []
        for start in kept:
            n = state.get(("window", "n", key, start), 0)
            if n == 0:
                opened.append([key, start, start + self._length()])
            state[("window", "t", key, start, n)] = values
            state[("window", "n", key, start)] = n + 1
        if opened:
            state[OPEN] = state.get(OPEN, []) + opened
        if self.timestamp is not None:
            mark = t - self.lateness
            if watermark is None or mark > watermark:
                state[WATERMARK] = mark
                self._close(mark)
        else:
            self._close(self.clock())

    def tick(self):
        if self.timestamp is None and self.window.count is None:
            self._close_now(self.clock())

    def _close_now(self, until):
        if self.window.gap is not None:
            self._close_sessions(until)
        else:
            self._close(until)

    def finish(self):
        """The input ended: every open window closes, oldest first."""
        self._close_now(math.inf)
        if self.window.count is not None:
            for key in list(self.state.get(("window", "count keys"), [])):
                self._close_count(key)

    # -- closing -----------------------------------------------------------------------------

    def _length(self):
        return self.window.seconds

    def _close(self, until):
        """Close the time windows that end at or before `until`, oldest first."""
        state = self.state
        windows = state.get(OPEN, [])
        due = sorted((w for w in windows if w[2] <= until), key=lambda w: (w[2], w[1], str(w[0])))
        if not due:
            return
        state[OPEN] = [w for w in windows if w[2] > until]
        for key, start, end in due:
            n = state.pop(("window", "n", key, start), 0)
            tuples = [self._tuple(state.pop(("window", "t", key, start, i))) for i in range(n)]
            self.process_window(Window(start, end, key, tuples))

    # -- sessions: per key [[start, last, id], ...] in state; a session's tuples under its id --

    def _session(self, tup, key, t, watermark):
        state = self.state
        gap = self.window.gap
        sessions = state.get(("window", "sessions", key), [])
        near = [s for s in sessions if s[0] - gap < t < s[1] + gap]
        if not near and watermark is not None and t + gap <= watermark:
            self.late += 1  # it would make a session that has ended already
            self.emit(tuple(tup.values), stream="late")
        else:
            if near:
                into = min(near, key=lambda s: s[0])
                for other in near:
                    if other is not into:
                        self._move(key, other[2], into[2])
                into[0], into[1] = min([into[0], t] + [s[0] for s in near]), max([into[1], t] + [s[1] for s in near])
                sessions = [s for s in sessions if s is into or s not in near]
            else:
                number = state.get(("window", "next session"), 0)
                state[("window", "next session")] = number + 1
                into = [t, t, number]
                sessions = sessions + [into]
                keys = state.get(("window", "session keys"), [])
                if key not in keys:
                    state[("window", "session keys")] = keys + [key]
            n = state.get(("window", "sn", key, into[2]), 0)
            state[("window", "st", key, into[2], n)] = list(tup.values)
            state[("window", "sn", key, into[2])] = n + 1
            state[("window", "sessions", key)] = sessions
        if self.timestamp is not None:
            mark = t - self.lateness
            if watermark is None or mark > watermark:
                state[WATERMARK] = mark
                self._close_sessions(mark)
        else:
            self._close_sessions(self.clock())

    def _move(self, key, source, target):
        """The tuples of session `source` go to the end of session `target`'s."""
        state = self.state
        n = state.pop(("window", "sn", key, source), 0)
        m = state.get(("window", "sn", key, target), 0)
        for i in range(n):
            state[("window", "st", key, target, m + i)] = state.pop(("window", "st", key, source, i))
        state[("window", "sn", key, target)] = m + n

    def _close_sessions(self, until):
        """Close the sessions that end (last + gap) at or before `until`, oldest first."""
        state = self.state
        gap = self.window.gap
        due = []
        for key in state.get(("window", "session keys"), []):
            sessions = state.get(("window", "sessions", key), [])
            ended = [s for s in sessions if s[1] + gap <= until]
            if ended:
                state[("window", "sessions", key)] = [s for s in sessions if s[1] + gap > until]
                due += [(s[1] + gap, s[0], key, s[2]) for s in ended]
        for end, start, key, number in sorted(due, key=lambda d: (d[0], d[1], str(d[2]))):
            n = state.pop(("window", "sn", key, number), 0)
            tuples = [self._tuple(state.pop(("window", "st", key, number, i))) for i in range(n)]
            self.process_window(Window(start, end, key, tuples))

    def _count(self, key, values):
        state = self.state
        n = state.get(("window", "n", key), 0)
        if n == 0:
            keys = state.get(("window", "count keys"), [])
            if key not in keys:
                state[("window", "count keys")] = keys + [key]
        state[("window", "t", key, n)] = values
        state[("window", "n", key)] = n + 1
        if n + 1 >= self.window.count:
            self._close_count(key)

    def _close_count(self, key):
        state = self.state
        n = state.pop(("window", "n", key), 0)
        if not n:
            return
        done = state.get(("window", "done", key), 0)
        tuples = [self._tuple(state.pop(("window", "t", key, i))) for i in range(n)]
        state[("window", "done", key)] = done + n
        self.process_window(Window(done, done + n, key, tuples))

    def _tuple(self, values):
        fields = self.state.get(FIELDS)
        return Tuple(tuple(values), fields=Fields(fields) if fields is not None else None)
