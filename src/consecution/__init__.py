"""consecution: a Storm-style topology runtime for Python with guaranteed processing.

    from consecution import Topology, Spout, Bolt

See the README for the guarantees, the command line and the pipe syntax.
"""
from .errors import ConsecutionError
from consecution.topology import (Bolt, ComponentError, CycleError, DuplicateNameError, FieldError,
                                  FieldsNotKnown, IterableSpout, Spout, Topology, TopologyError, Tuple,
                                  UnknownSourceError, broadcast, chunk, component, merge, route)
from consecution.storage import CodecError
from consecution.runtime import ModeNotAvailable, RunResult, TopologyContext, UserCodeError, run

__version__ = "0.1.0"

__all__ = [
    "Bolt", "CodecError", "ComponentError", "ConsecutionError", "CycleError", "DuplicateNameError",
    "FieldError", "FieldsNotKnown", "IterableSpout", "ModeNotAvailable", "RunResult", "Spout", "Topology",
    "TopologyContext", "TopologyError", "Tuple", "UnknownSourceError", "UserCodeError",
    "broadcast", "chunk", "component", "merge", "route", "run",
]
