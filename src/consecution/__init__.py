"""consecution: a Storm-style topology runtime for Python with guaranteed processing.

    from consecution import Topology, Spout, Bolt

See the README for the guarantees, the command line and the pipe syntax.
"""
import importlib
from typing import TYPE_CHECKING

from .errors import ConsecutionError

__version__ = "0.1.0"

__all__ = [
    "Bolt", "CodecError", "ComponentError", "ConsecutionError", "CycleError", "DuplicateNameError",
    "FieldError", "FieldsNotKnown", "IterableSpout", "ModeNotAvailable", "RunResult", "Spout", "Topology",
    "TopologyContext", "TopologyError", "Tuple", "UnknownSourceError", "UserCodeError",
    "Window", "WindowedBolt", "broadcast", "chunk", "component", "merge", "route", "run", "session", "sliding", "tumbling",
]

# The public names load from their part on first use (PEP 562), so that importing one part
# (`consecution.acker`, say) runs this module without loading the runtime, LMDB or the others.
_SOURCES = {
    **dict.fromkeys(["Bolt", "ComponentError", "CycleError", "DuplicateNameError", "FieldError",
                     "FieldsNotKnown", "IterableSpout", "Spout", "Topology", "TopologyError", "Tuple",
                     "UnknownSourceError", "Window", "WindowedBolt", "broadcast", "chunk", "component", "merge",
                     "route", "session", "sliding", "tumbling"],
                    "consecution.topology"),
    "CodecError": "consecution.storage",
    **dict.fromkeys(["ModeNotAvailable", "RunResult", "TopologyContext", "UserCodeError", "run"],
                    "consecution.runtime"),
}
# `import consecution` then `consecution.runtime...` works too, as when this module loaded the parts.
_PARTS = ("topology", "acker", "storage", "runtime")


def __getattr__(name):
    if name in _SOURCES:
        value = getattr(importlib.import_module(_SOURCES[name]), name)
    elif name in _PARTS:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from consecution.runtime import ModeNotAvailable, RunResult, TopologyContext, UserCodeError, run
    from consecution.storage import CodecError
    from consecution.topology import (Bolt, ComponentError, CycleError, DuplicateNameError,
                                      FieldError, FieldsNotKnown, IterableSpout, Spout, Topology, TopologyError,
                                      Tuple, UnknownSourceError, Window, WindowedBolt, broadcast, chunk,
                                      component, merge, route, session, sliding, tumbling)
