"""Finding the topology of `consecution run file.py[:name]`."""
import importlib.util
import os
import sys

from consecution.errors import ConsecutionError
from consecution.topology import Topology


class UsageError(ConsecutionError):
    """Bad command-line usage or a topology file that cannot be used (exit status 2)."""


def load(spec):
    """The `Topology` named by `file.py` (its module-level `topology`) or `file.py:name`."""
    path, _, name = spec.partition(":")
    if not path.endswith(".py"):
        raise UsageError(f"{spec}: give a Python file, as file.py or file.py:name")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    module = _import(path)
    attr = name or "topology"
    if not hasattr(module, attr):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, Topology))
        hint = f"; it defines {', '.join(found)}: name one as {path}:{found[0]}" if found else ""
        raise UsageError(f"{path} defines no {attr!r}{hint}")
    topology = getattr(module, attr)
    if callable(topology) and not isinstance(topology, Topology):
        topology = topology()  # a factory: file.py:make_topology
    if not isinstance(topology, Topology):
        raise UsageError(f"{path}:{attr} is a {type(topology).__name__}, not a consecution Topology")
    return topology


def _import(path):
    """Import the file as a module named after it, with its folder on sys.path, so that it can
    import its neighbours and worker processes can import it by name."""
    path = os.path.abspath(path)
    folder, filename = os.path.split(path)
    module_name = os.path.splitext(filename)[0]
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise UsageError(f"{exc.filename}:{exc.lineno}: {exc.msg}\n    {(exc.text or '').rstrip()}") from None
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
