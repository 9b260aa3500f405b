"""Helpers for users' own tests: run a topology in-process and get its tuples back.

    >>> from consecution import Topology
    >>> from consecution.testing import emitted
    >>> def double(x):
    ...     return x * 2
    >>> t = Topology("double")
    >>> t.spout("numbers", [1, 2, 3])
    Component('numbers', spout, parallelism=1)
    >>> t.bolt("double", double).shuffle_grouping("numbers")  # doctest: +ELLIPSIS
    <consecution.topology.builder.BoltDeclarer object at ...>
    >>> emitted(t, "double")
    [(2,), (4,), (6,)]
"""
from consecution.runtime import Scheduler


def run_local(topology, mode="single", **options):
    """Run `topology` (single mode by default) collecting what every bolt emits; return the
    `RunResult` (`result.emitted("component")`)."""
    options.setdefault("collect", True)
    return Scheduler(topology, mode=mode, **options).run()


def emitted(topology, component, stream="default", **options):
    """Run `topology` and return the values `component` emitted on `stream`, in order."""
    return run_local(topology, **options).emitted(component, stream)
