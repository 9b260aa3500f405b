"""The cyclic garbage collector while a run runs (runtime/collector.py): its youngest generation
is collected every YOUNG_GC allocations in the supervisor and in every worker, and the
process's own thresholds come back when the run ends."""
import gc

import pytest

from consecution import Topology
from consecution.runtime import Scheduler
from consecution.runtime.collector import YOUNG_GC


@pytest.fixture
def defaults():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, whatever an earlier test left
    yield
    gc.set_threshold(*before)


def thresholds_topology():
    """A spout that reads the threshold where spouts run (the supervisor), and a bolt that adds
    the one where its task runs (a worker process in process mode)."""
    def read(n):  # the spout's generator runs as the run asks it for tuples
        for _ in range(n):
            yield gc.get_threshold()[0]

    t = Topology("gc")
    t.spout("supervisor", read(3))
    t.bolt("both", lambda seen: (seen, gc.get_threshold()[0])).shuffle_grouping("supervisor")
    return t


@pytest.mark.parametrize("mode", ["single", "thread", "process"])
def test_a_run_collects_its_young_objects_less_often_and_restores_the_thresholds(mode, defaults):
    result = Scheduler(thresholds_topology(), mode=mode, workers=2, collect=True).run()
    assert result.emitted("both") == [(YOUNG_GC, YOUNG_GC)] * 3
    assert gc.get_threshold() == (700, 10, 10)


def test_a_process_that_asked_for_rarer_collections_keeps_them(defaults):
    gc.set_threshold(50_000, 20, 20)
    result = Scheduler(thresholds_topology(), collect=True).run()
    assert result.emitted("both") == [(50_000, 50_000)] * 3
    assert gc.get_threshold() == (50_000, 20, 20)
