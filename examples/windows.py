"""Revenue per partner per hour, in event time, exactly once.

    consecution run examples/windows.py      # WINDOWS_PAYMENTS=20000 WINDOWS_REPORT=hourly.json

Payments carry their own time (`ts`, epoch seconds, a little out of order as real feeds are).
`Hourly` sums them per partner per hour in tumbling event-time windows, waiting 10 minutes of
lateness for stragglers; a payment later than that goes to the `late` stream. `Totals`, a
stateful bolt, adds the hourly results up per partner: its state and the windows' state are
checkpointed with the log, so however often the run is killed and restarted, each hour is
added once. At the end it writes the totals (cents per partner, and the hours summed) to
WINDOWS_REPORT and prints them.
"""
import json
import os
import random
import time

from consecution import Bolt, Topology, WindowedBolt, tumbling

N = int(os.environ.get("WINDOWS_PAYMENTS", "20000"))
DELAY = float(os.environ.get("WINDOWS_DELAY", "0"))
REPORT = os.environ.get("WINDOWS_REPORT", "hourly.json")
START = 1_767_225_600  # 2026-01-01 00:00 UTC
PARTNERS = ("alice", "bob", "carol")


def payments(n):
    """n payments over about n/4 minutes, each up to 5 minutes out of order (under the lateness)."""
    rng = random.Random(42)
    for i in range(n):
        ts = START + i * 15 + rng.randint(-300, 300)
        yield rng.choice(PARTNERS), ts, rng.randint(100, 10_000)


class Hourly(WindowedBolt):
    window = tumbling(seconds=3600)
    timestamp = "ts"
    lateness = 600
    key = "partner"
    fields = ("partner", "start", "cents")

    def process_window(self, window):
        if DELAY:
            time.sleep(DELAY)
        self.emit((window.key, window.start, sum(t["cents"] for t in window.tuples)))


class Totals(Bolt):
    stateful = True

    def process(self, tup):
        partner = tup["partner"]
        self.state[partner] = self.state.get(partner, 0) + tup["cents"]
        self.state["hours"] = self.state.get("hours", 0) + 1

    def finish(self):
        report = {"cents": {p: self.state.get(p, 0) for p in PARTNERS}, "hours": self.state.get("hours", 0)}
        with open(REPORT + ".tmp", "w") as f:
            json.dump(report, f, sort_keys=True)
        os.replace(REPORT + ".tmp", REPORT)
        print(json.dumps(report, sort_keys=True))


def expected(n):
    """The report of a run without crashes."""
    cents, hours = dict.fromkeys(PARTNERS, 0), set()
    for partner, ts, amount in payments(n):
        cents[partner] += amount
        hours.add((partner, (ts // 3600) * 3600))
    return {"cents": cents, "hours": len(hours)}


def slow(partner, ts, cents):
    if DELAY:
        time.sleep(DELAY)
    return partner, ts, cents


slow.fields = ("partner", "ts", "cents")

topology = Topology("windows")
topology.spout("payments", list(payments(N)), fields=("partner", "ts", "cents"))
topology.bolt("slow", slow).shuffle_grouping("payments")
topology.bolt("hourly", Hourly(), parallelism=2).fields_grouping("slow", "partner")
topology.bolt("totals", Totals()).global_grouping("hourly")
