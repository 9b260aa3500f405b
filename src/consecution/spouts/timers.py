"""Interval and Cron: call a function on a schedule and emit what it returns.

Both run `fn` on the scheduler thread when it is due (keep it short; or emit a trigger and do
the work in a bolt), never block, and use the function-bolt rule for what `fn` returns: `None`
emits nothing, a generator emits each item, anything else is one tuple (a non-tuple value is a
1-tuple). Output fields: `fields=`, or a `fields` attribute of `fn`, else `value`.

The position is the scheduled time (UTC epoch seconds) of the last tick, stored with what the
tick emitted. After a restart the schedule goes on from there: a tick that fell due while the
run was down fires once at start (several missed ticks fire once, not once each), and a tick
that already fired does not fire again. What a tick emitted is logged before it is processed.
"""
import datetime
import random
import time
import zoneinfo
from types import GeneratorType

from croniter import croniter

from consecution.topology import ComponentError, Spout

__all__ = ["Interval", "Cron"]


def _seconds(value, name):
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ComponentError(f"{name} must be a number of seconds or a timedelta, at least 0; got {value!r}")
    return float(seconds)


class Tick(Spout):
    """What Interval and Cron share: `fn`, jitter, the position and the emit rule."""

    def __init__(self, fn, jitter, fields):
        if not callable(fn):
            raise ComponentError(f"{type(self).__name__}: {fn!r} is not callable")
        self.fn = fn
        self.jitter = _seconds(jitter, "jitter")
        self.fields = fields if fields is not None else getattr(fn, "fields", None)

    def open(self, context):
        self.last = None       # scheduled time of the last tick (epoch seconds)
        self.reported = None
        self._plan(after=None)

    def seek(self, position):
        if isinstance(position, (int, float)):
            self.last = self.reported = float(position)
            self._plan(after=self.last)

    def position(self):
        if self.last == self.reported:
            return None  # unchanged: nothing to store
        self.reported = self.last
        return self.last

    def _plan(self, after):
        """Set `self.due` (scheduled) and `self.fire_at` (with jitter) for the next tick."""
        self.due = self.next_due(after, time.time())
        self.fire_at = self.due + (random.uniform(0, self.jitter) if self.jitter else 0.0)

    def next_tuple(self):
        if time.time() < self.fire_at:
            return
        self.last = self.due
        self._plan(after=self.due)
        result = self.fn()
        if result is None:
            return
        for item in (result if result.__class__ is GeneratorType else (result,)):
            self.emit(item if item.__class__ is tuple else (item,))


class Interval(Tick):
    """`fn()` every `every` (seconds or a timedelta), each tick delayed by a random 0..`jitter`.

    The first tick fires at start, unless the stored position says the last one was less than
    `every` ago (then at last + `every`). Ticks keep to their schedule (no drift); ticks missed
    while the process was busy or down fire once.
    """

    def __init__(self, every, fn, jitter=0, fields=None):
        super().__init__(fn, jitter, fields)
        self.every = _seconds(every, "every")
        if self.every <= 0:
            raise ComponentError(f"Interval: every must be more than 0 seconds, got {every!r}")

    def next_due(self, after, now):
        if after is None:
            return now
        due = after + self.every
        if due < now:  # missed: the latest slot, so it fires once now and the next is ahead
            due = after + (now - after) // self.every * self.every
        return due

    def __repr__(self):
        return f"Interval({self.every:g}, {getattr(self.fn, '__qualname__', self.fn)})"


class Cron(Tick):
    """`fn()` on a cron schedule (`"*/5 * * * *"`; six fields add seconds at the end), parsed by
    `croniter`, each tick delayed by a random 0..`jitter`.

    Time zone: the expression is read in `tz`, an IANA name (`"Europe/Berlin"`) or a tzinfo;
    the default `None` is the machine's local time, as crontab does. Daylight saving follows
    croniter: a time that does not exist that day is skipped, a repeated one fires once. The
    first tick is the first scheduled time after start; a tick missed while the run was down
    fires once at start.
    """

    def __init__(self, expression, fn, jitter=0, tz=None, fields=None):
        super().__init__(fn, jitter, fields)
        if not isinstance(expression, str) or not croniter.is_valid(expression):
            raise ComponentError(f"Cron: {expression!r} is not a valid cron expression")
        self.expression = expression
        self.tz = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz

    def _zone(self):
        return self.tz if self.tz is not None else datetime.datetime.now().astimezone().tzinfo

    def next_due(self, after, now):
        zone = self._zone()
        due = croniter(self.expression, datetime.datetime.fromtimestamp(now if after is None else after, zone)
                       ).get_next(float)
        if due < now:  # missed: the latest slot, so it fires once now and the next is ahead
            due = croniter(self.expression, datetime.datetime.fromtimestamp(now, zone)).get_prev(float)
        return due

    def __repr__(self):
        return f"Cron({self.expression!r}, {getattr(self.fn, '__qualname__', self.fn)})"
