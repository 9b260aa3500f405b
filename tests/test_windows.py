"""Windowed bolts (topology/windows.py) in every mode, against plain-Python references; a SIGKILL
loop over an event-time pipeline with a stateful sum downstream."""
import collections
import json
import math
import os
import random

import pytest

from consecution import Bolt, ComponentError, Topology, WindowedBolt, session, sliding, tumbling
from consecution.testing import run_local
from support import EXAMPLES, run_killing

MODES = ["single", "thread", "process", "ray"]


def run(topology, mode):
    return run_local(topology, mode=mode, workers=2)


class TumblingSums(WindowedBolt):
    window = tumbling(seconds=10)
    timestamp = "ts"
    lateness = 5
    key = "k"
    fields = ("k", "start", "end", "total", "count")

    def process_window(self, w):
        self.emit((w.key, w.start, w.end, sum(t["v"] for t in w.tuples), len(w.tuples)))


def events(n, seed, disorder=3.0):
    """(k, ts, v): keys a-d, timestamps rising with some disorder (less than the lateness)."""
    rng = random.Random(seed)
    return [(rng.choice("abcd"), round(i * 0.5 + rng.uniform(-disorder, disorder), 3), rng.randint(1, 9))
            for i in range(n)]


def reference_tumbling(items, length, lateness):
    """What one task sees with a watermark: windows by key and start; late tuples aside."""
    windows, late, watermark = collections.defaultdict(list), [], None
    for k, ts, v in items:
        start = math.floor(ts / length) * length
        if watermark is not None and start + length <= watermark:
            late.append((k, ts, v))
            continue
        windows[k, start].append(v)
        watermark = ts - lateness if watermark is None else max(watermark, ts - lateness)
    return {(k, s, s + length, sum(vs), len(vs)) for (k, s), vs in windows.items()}, late


@pytest.mark.parametrize("mode", MODES)
def test_tumbling_event_time_windows_take_out_of_order_events_and_send_late_ones_aside(mode):
    items = events(400, seed=1)
    items[200:200] = [("a", 3.0, 50), ("b", 7.5, 60)]  # far behind the watermark by then: late
    t = Topology("tumbling")
    t.spout("events", items, fields=("k", "ts", "v"))
    t.bolt("sums", TumblingSums()).global_grouping("events")
    result = run(t, mode)
    expected, late = reference_tumbling(items, 10, 5)
    assert set(result.emitted("sums")) == expected and len(result.emitted("sums")) == len(expected)
    assert sorted(result.emitted("sums", "late")) == sorted(late) and ("a", 3.0, 50) in late
    assert tuple(t.components["sums"].streams["late"]) == ("k", "ts", "v")  # the input's fields


class Big(WindowedBolt):
    window = tumbling(count=600)
    fields = ("n", "total")

    def process_window(self, w):
        self.emit((len(w.tuples), sum(t["v"] for t in w.tuples)))


@pytest.mark.parametrize("mode", ["single", "process"])
def test_a_window_holds_more_tuples_than_max_pending(mode):
    """Its inputs are acked as they are kept in state: 600 tuples in a window, 50 pending at most."""
    t = Topology("big", max_pending=50)
    t.spout("numbers", [(i,) for i in range(1200)], fields=("v",))
    t.bolt("big", Big()).global_grouping("numbers")
    result = run(t, mode)
    assert sorted(result.emitted("big")) == [(600, sum(range(600))), (600, sum(range(600, 1200)))]


@pytest.mark.parametrize("mode", MODES)
def test_keyed_windows_under_a_fields_grouping_with_parallelism_2(mode):
    """Each task keeps its own keys' windows (and its own watermark); in time order no tuple is
    late, so the results are the plain per-key sums."""
    items = sorted(events(300, seed=2, disorder=0), key=lambda e: e[1])
    t = Topology("keyed")
    t.spout("events", items, fields=("k", "ts", "v"))
    t.bolt("sums", TumblingSums(), parallelism=2).fields_grouping("events", "k")
    result = run(t, mode)
    sums = collections.defaultdict(list)
    for k, ts, v in items:
        sums[k, math.floor(ts / 10) * 10].append(v)
    assert sorted(result.emitted("sums")) == sorted((k, s, s + 10, sum(vs), len(vs)) for (k, s), vs in sums.items())
    assert result.emitted("sums", "late") == []


class SlidingCounts(WindowedBolt):
    window = sliding(seconds=6, every=2)
    timestamp = "ts"
    lateness = 0
    fields = ("start", "end", "count")

    def process_window(self, w):
        self.emit((w.start, w.end, len(w.tuples)))


@pytest.mark.parametrize("mode", ["single", "process"])
def test_sliding_windows_hold_each_event_in_every_window_it_falls_in(mode):
    times = sorted(random.Random(3).uniform(0, 60) for _ in range(200))
    t = Topology("sliding")
    t.spout("events", [(ts,) for ts in times], fields=("ts",))
    t.bolt("counts", SlidingCounts()).global_grouping("events")
    result = run(t, mode)
    expected = collections.Counter()
    for ts in times:
        for start in range(math.floor(ts / 2) * 2 - 4, math.floor(ts / 2) * 2 + 1, 2):
            if start <= ts < start + 6:
                expected[start] += 1
    assert sorted(result.emitted("counts")) == sorted((s, s + 6, n) for s, n in expected.items())


class Batches(WindowedBolt):
    window = tumbling(count=4)
    key = "k"
    fields = ("k", "start", "values")

    def process_window(self, w):
        self.emit((w.key, w.start, [t["v"] for t in w.tuples]))


@pytest.mark.parametrize("mode", ["single", "thread"])
def test_count_windows_close_when_full_and_the_last_partial_one_at_the_end(mode):
    t = Topology("counted")
    t.spout("events", [("x" if i % 3 else "y", i) for i in range(14)], fields=("k", "v"))
    t.bolt("batches", Batches()).global_grouping("events")
    result = run(t, mode)
    xs = [i for i in range(14) if i % 3]
    ys = [i for i in range(14) if not i % 3]
    assert sorted(result.emitted("batches")) == sorted(
        [("x", 0, xs[0:4]), ("x", 4, xs[4:8]), ("x", 8, xs[8:]), ("y", 0, ys[0:4]), ("y", 4, ys[4:])])


NOW = [0.0]


class ByClock(WindowedBolt):
    window = tumbling(seconds=10)
    fields = ("start", "values")
    clock = staticmethod(lambda: NOW[0])

    def process_window(self, w):
        self.emit((w.start, [t["v"] for t in w.tuples]))


class Advancing(Bolt):
    """Sets the injected clock from each event, then passes the value on."""

    fields = ("v",)

    def process(self, tup):
        NOW[0] = tup["at"]
        self.emit((tup["v"],))


def test_processing_time_windows_close_by_the_clock_which_a_test_injects():
    NOW[0] = 0.0
    t = Topology("clock")
    t.spout("events", [(at, v) for v, at in enumerate([1, 2, 9, 11, 12, 25, 31])], fields=("at", "v"))
    t.bolt("advance", Advancing()).shuffle_grouping("events")
    t.bolt("windows", ByClock()).global_grouping("advance")
    result = run(t, "single")
    assert result.emitted("windows") == [(0, [0, 1, 2]), (10, [3, 4]), (20, [5]), (30, [6])]


def test_a_window_spec_is_checked_where_it_is_written():
    with pytest.raises(ComponentError, match="tumbling\\(\\) takes seconds= or count="):
        tumbling()
    with pytest.raises(ComponentError, match="every must not exceed seconds"):
        sliding(seconds=5, every=10)
    with pytest.raises(ComponentError, match="must be tumbling"):
        class Wrong(WindowedBolt):
            window = 10


REVENUE = os.path.join(EXAMPLES, "windows.py")


def test_the_windows_example_killed_at_random_moments_sums_each_hour_exactly_once(tmp_path):
    """examples/windows.py (revenue per partner per hour, event time, summed downstream in
    exactly-once state) SIGKILLed at random moments and restarted: the totals equal a run
    without crashes."""
    env = {"WINDOWS_PAYMENTS": "3000", "WINDOWS_DELAY": "0.003", "WINDOWS_REPORT": str(tmp_path / "report.json")}
    args = ["run", REVENUE, "--mode", "process", "--workers", "2", "--log-format", "json"]
    killed = run_killing({"windows": args}, tmp_path, env, 4, random.Random(), timeout=180)
    assert killed["windows"] == 4
    report = json.loads((tmp_path / "report.json").read_text())
    import importlib.util
    spec = importlib.util.spec_from_file_location("windows_example", REVENUE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert report == example.expected(3000)


class Sessions(WindowedBolt):
    window = session(gap=5)
    timestamp = "ts"
    lateness = 20
    key = "k"
    fields = ("k", "start", "end", "values")

    def process_window(self, w):
        self.emit((w.key, w.start, w.end, sorted(t["v"] for t in w.tuples)))


def reference_sessions(items, gap):
    """Per key, runs of times less than `gap` apart (all tuples in time order)."""
    out = []
    for key in sorted({k for k, _, _ in items}):
        mine = sorted((ts, v) for k, ts, v in items if k == key)
        run = [mine[0]]
        for ts, v in mine[1:]:
            if ts - run[-1][0] < gap:
                run.append((ts, v))
            else:
                out.append((key, run[0][0], run[-1][0] + gap, sorted(v for _, v in run)))
                run = [(ts, v)]
        out.append((key, run[0][0], run[-1][0] + gap, sorted(v for _, v in run)))
    return sorted(out)


@pytest.mark.parametrize("mode", ["single", "process"])
def test_session_windows_against_a_reference_and_one_event_that_joins_two_sessions(mode):
    rng = random.Random(4)
    items, ts = [], 0.0
    for i in range(150):
        ts += rng.choice([1.0, 2.0, 3.0, 8.0, 12.0])
        items.append((rng.choice("xy"), ts, i))
    # out of order within the lateness: y's sessions at 1000 and 1008 are joined by an event at 1004
    items += [("y", 1000.0, 900), ("y", 1008.0, 901), ("y", 1004.0, 902), ("x", 1100.0, 903)]
    t = Topology("sessions")
    t.spout("events", items, fields=("k", "ts", "v"))
    t.bolt("sessions", Sessions()).global_grouping("events")
    result = run(t, mode)
    assert sorted(result.emitted("sessions")) == reference_sessions(items, 5)
    assert ("y", 1000.0, 1013.0, [900, 901, 902]) in result.emitted("sessions")
