"""The description of a topology: spouts, bolts, tuples, groupings, the builder, the pipe
syntax, validation and the fingerprint. Imports nothing of the other parts."""
from .builder import (FAILURES, FAILURE_FIELDS, OUTPUT_PREFIX, RELIABILITY_LEVELS, BoltDeclarer, Component,
                      Grouping, Topology, check_task_timeout)
from .components import (DEFAULT, Bolt, ChunkBolt, FunctionBolt, IterableSpout, OutputBolt, Spout)
from .errors import (ComponentError, CycleError, DuplicateNameError, FieldError, FieldsNotKnown, TopologyError,
                     UnknownSourceError)
from .pipes import Pipe, Router, broadcast, chunk, component, merge, route
from .tuples import Fields, Tuple
from .windows import Window, WindowedBolt, session, sliding, tumbling

__all__ = [
    "Bolt", "BoltDeclarer", "ChunkBolt", "Component", "ComponentError", "CycleError", "DEFAULT",
    "DuplicateNameError", "FAILURES", "FAILURE_FIELDS", "FieldError", "Fields", "FieldsNotKnown", "FunctionBolt",
    "Grouping", "IterableSpout", "OUTPUT_PREFIX", "OutputBolt", "Pipe", "RELIABILITY_LEVELS", "Router", "Spout", "Topology",
    "TopologyError", "Tuple", "UnknownSourceError", "broadcast", "chunk",
    "check_task_timeout", "component", "merge", "route", "Window", "WindowedBolt", "session", "sliding", "tumbling",
]
