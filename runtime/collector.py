"""The cyclic garbage collector while a run runs (the supervisor's core and each worker).

CPython collects its youngest generation whenever 700 more container objects were made than
freed. A run keeps thousands of records, trees and frames in flight for a while by design
(up to `ROOM` deliveries, a commit's records, the frames to and from each worker), so at 700
nearly every commit set off a collection that found them all alive and moved them on to be
scanned again by the next generation's: on W in process mode with parallelism 2, 230 young
and 20 middle collections took 0.05 of the supervisor's 0.38 CPU-seconds. Collected every
YOUNG_GC allocations instead, the objects of a commit are mostly freed before the collector
looks. Cycles are still found, a little later; nothing else changes.
"""
import gc

YOUNG_GC = 10_000


def young_gc():
    """Collect the youngest generation every YOUNG_GC allocations (never more often than the
    process asked for); the thresholds as they were, for `gc.set_threshold` to restore."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], YOUNG_GC), *thresholds[1:])
    return thresholds
