"""The money pieces the scenario examples share: integer cents, explicit rounding rules,
stateful totals and a report.

Money is an int of cents everywhere; no float ever holds an amount. The rounding rules:
- Percentages are integer basis points (1% = 100 bp), and a share of an amount is rounded
  *down* to the cent (`share`); whoever splits money gives the remainder of that rounding to
  a named account, so that the parts always add up to the whole.
- A share of a stream of amounts is taken on the running total (`running_share`): each amount
  gets the difference of the rounded-down shares of the totals before and after it, so the
  shares of the stream add up to exactly the rounded-down share of its total, in whatever
  order the amounts come.
- Interest is a balance times a rate held as an exact `Fraction`, rounded to the nearest
  cent, halves up (`rounded`).

`Totals` is a stateful aggregator (its sums live in `self.state`, so they are exactly-once
under crashes and replays) that emits one row per key in `finish`; `Report` gathers those rows,
prints them as a table and writes them as JSON (atomically) when given a path. Both are safe to
run again: `finish` only reads the state, and the report keeps the last row per key.

    from ledger import Totals, Report, share
"""
import json
import math
import os
from fractions import Fraction

from consecution import Bolt

ROW = ("aggregator", "key", "cents", "count")  # what aggregators emit in finish


def share(cents, basis_points):
    """`basis_points` / 10,000 of `cents`, rounded down to the cent (toward minus infinity)."""
    return cents * basis_points // 10_000


def running_share(before, cents, basis_points):
    """The share of `cents` that comes after a running total of `before`: summed over a
    stream, exactly `share(total, basis_points)`."""
    return share(before + cents, basis_points) - share(before, basis_points)


def rounded(cents):
    """A `Fraction` of cents (interest: a balance times a rate) rounded to the nearest cent,
    halves up."""
    return math.floor(cents + Fraction(1, 2))


def in_order(state, key, number, item):
    """The items of the sequence `key` (numbered 1, 2, 3...) that are due now, in order: `item`
    and any held ones that follow it, or nothing if `item` came early. An early item is held
    in `state` (a stateful bolt's `self.state`) until the ones before it have come, so a
    calculation that must see a sequence in order (a balance, compound interest) gets it in
    order however the tuples arrive (replays after a failure may come late)."""
    expected = state.get(("next", key), 1)
    if number != expected:
        state[("held", key, number)] = item
        return []
    due = [item]
    expected += 1
    while ("held", key, expected) in state:
        due.append(state.pop(("held", key, expected)))
        expected += 1
    state[("next", key)] = expected
    return due


def dollars(cents):
    """Cents as text: 123456 -> '$1,234.56', -5 -> '-$0.05'."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{part:02d}"


class Totals(Bolt):
    """Sums the `cents` field of every tuple by the values of the fields `by` (or all into the
    one key `into`), with a count of tuples, in `self.state`. In `finish` it emits one row
    (aggregator, key, cents, count) per key, sorted by key, then the rows of `derived()`.

    Keys with several fields are shown joined by a space ("2026-01 rent").
    """

    stateful = True
    fields = ROW

    def __init__(self, by=("account",), into=None):
        self.by = tuple(by)
        self.into = into

    def prepare(self, context):
        self.name = context.component

    def process(self, tup):
        key = self.into or " ".join(str(tup[field]) for field in self.by)
        cents, count = self.state.get(key, (0, 0))
        self.state[key] = (cents + tup["cents"], count + 1)

    def totals(self):
        """{key: cents} of everything summed so far."""
        return {key: value[0] for key, value in self.state.items()}

    def derived(self):
        """Extra (key, cents) rows computed from `totals()`, emitted with a count of None
        (they count no tuples); none by default."""
        return []

    def finish(self):
        for key in sorted(self.state):
            cents, count = self.state[key]
            self.emit((self.name, key, cents, count))
        for key, cents in self.derived():
            self.emit((self.name, key, cents, None))


class Report(Bolt):
    """Gathers the rows of the aggregators; in `finish` prints them as a table (stdout) and, if
    `path` is set, writes {aggregator: {key: {"cents", "count"}}} there as JSON, atomically
    (a temporary file, then `os.replace`). Aggregators appear in the order of `order`, the
    others after them by name; within one, its keys by name, then its derived rows (count
    None). Run it as one task (a global grouping, or parallelism 1)."""

    def __init__(self, title, path=None, order=()):
        self.title = title
        self.path = path
        self.order = list(order)

    def prepare(self, context):
        self.rows = {}

    def process(self, tup):
        self.rows.setdefault(tup["aggregator"], {})[tup["key"]] = {"cents": tup["cents"], "count": tup["count"]}

    def _rank(self, name):
        return (self.order.index(name), "") if name in self.order else (len(self.order), name)

    def finish(self):
        names = sorted(self.rows, key=self._rank)
        report = {name: dict(sorted(self.rows[name].items(), key=_derived_last)) for name in names}
        lines = [self.title, f"  {'aggregator':<21} {'key':<22} {'amount':>16} {'tuples':>7}"]
        for name, rows in report.items():
            for key, row in rows.items():
                count = "" if row["count"] is None else f"{row['count']:,}"
                lines.append(f"  {name:<21} {key:<22} {dollars(row['cents']):>16} {count:>7}".rstrip())
        print("\n".join(lines), flush=True)
        if self.path:
            tmp = f"{self.path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump({"title": self.title, "totals": report}, f, indent=1)
            os.replace(tmp, self.path)


def _derived_last(item):
    key, row = item
    return (row["count"] is None, key)
