"""Errors in the description of a topology, raised when it is built or validated.

Each message names the place: the component, the stream, the field, and says what to do.
"""
from consecution.errors import ConsecutionError


class TopologyError(ConsecutionError):
    """The topology cannot run as declared (raised at build or validation time)."""


class DuplicateNameError(TopologyError):
    """Two components share one name."""


class UnknownSourceError(TopologyError):
    """A subscription names a component or a stream that does not exist."""


class CycleError(TopologyError):
    """The components form a cycle; tuples must flow one way only."""


class FieldError(TopologyError):
    """A field is not declared on the stream that should carry it, or a tuple does not fit
    the fields its stream declares."""


class ComponentError(TopologyError):
    """A component is not usable where it stands: a spout used as a bolt, a bad
    parallelism, an object that is neither spout, bolt, function nor iterable."""


class FieldsNotKnown(TopologyError):
    """The fields of a component that resolves them late (a spout with `resolve_fields()`, such
    as an `Output` spout without `fields=` whose producer has not declared the output yet) are
    not known yet. It is no mistake in the topology: `consecution run` and
    `consecution.run()` wait until they are known, `validate` and `show` say so.

    `component` is the component's name (set by the topology), `event` the log event a wait
    logs and `details` that event's key-values (what the component waits for)."""

    def __init__(self, message, event="fields.waiting", **details):
        super().__init__(message)
        self.component = None
        self.event = event
        self.details = details
