"""Waiting for fields resolved late, before a run: a consumer whose `Output` spout has no
`fields=` runs once its producer's log declares the output.

Decided here: `consecution run` and `consecution.run()` wait (`wait_for_fields`) before they
build the `Scheduler`; a `Scheduler` never waits: its constructor validates the topology, which
looks once and raises `FieldsNotKnown` while fields are not known. A library user who builds
a Scheduler calls `wait_for_fields(topology, stop=event)` first, with an event to stop it.
"""
import threading
import time

from .logs import logger

POLL = 0.5       # seconds between two looks
LOG_EVERY = 5.0  # seconds between two events of one wait


def wait_for_fields(topology, stop=None, waiting=None, poll=POLL, log_every=LOG_EVERY):
    """Resolve the late fields of `topology` (`Topology.resolve_fields`), looking every `poll`
    seconds until all are known; return True then, or False if `stop` (a `threading.Event`)
    was set first.

    While a component's fields are not known, its event is logged (`output.waiting` for an
    `Output` spout: state_dir, output, producer, outputs) at once and then every `log_every`
    seconds, with `topology`, `component` and `reason`; once found after a wait,
    `fields.resolved` with the fields. A topology whose fields are known returns at once and
    logs nothing. Errors other than "not known yet" (`fields=` that differ from the
    producer's) raise at once. `waiting`, if given, is called at each look that finds fields
    still unknown (the CLI tells systemd the start goes on)."""
    stop = stop if stop is not None else threading.Event()
    waited = set()
    next_log = 0.0
    while True:
        unknown = topology.resolve_fields(allow_unknown=True)
        still = {exc.component for exc in unknown}
        _log_resolved(topology, waited - still)
        waited &= still
        if not unknown:
            return True
        now = time.monotonic()
        if now >= next_log:
            for exc in unknown:
                logger().info(exc.event, topology=topology.name, component=exc.component, reason=str(exc),
                              **exc.details)
            next_log = now + log_every
        waited |= still
        if waiting is not None:
            waiting()
        if stop.wait(poll):
            return False


def _log_resolved(topology, names):
    for name in sorted(names):
        fields = topology.components[name].streams["default"]
        logger().info("fields.resolved", topology=topology.name, component=name,
                      fields=list(fields) if fields is not None else None)
