"""Finding the topology of `consecution run file.py[:name]`."""
import importlib.util
import os
import sys

from consecution.errors import ConsecutionError
from consecution.topology import Topology


class UsageError(ConsecutionError):
    """Bad command-line usage or a topology file that cannot be used (exit status 2)."""


def load(spec, spawn=False):
    """The `Topology` named by `file.py` (its module-level `topology`) or `file.py:name`.
    `spawn`: worker processes will be spawned, so they must import the file by its name."""
    path, _, name = spec.partition(":")
    if not path.endswith(".py"):
        raise UsageError(f"{spec}: give a Python file, as file.py or file.py:name")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    stem = os.path.splitext(os.path.basename(path))[0]
    if spawn and _shadows(stem, os.path.abspath(path)):
        raise UsageError(f"{path}: its name is that of the module {stem!r}, which spawned worker processes would "
                         "import instead: rename the file, or use --start-method fork")
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
    import its neighbours and worker processes can import it by name. A file named like a
    module that exists (`copy.py`, `socket.py`, `consecution.py`) is imported under a name of
    its own, `consecution_topology_<name>`, so that it hides nothing: forked workers inherit
    it (spawned ones cannot import it, see `load`)."""
    path = os.path.abspath(path)
    folder, filename = os.path.split(path)
    module_name = os.path.splitext(filename)[0]
    if _shadows(module_name, path):
        module_name = f"consecution_topology_{module_name}"
        while module_name in sys.modules:
            module_name += "_"
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


def _shadows(name, path):
    """Whether importing the file at `path` as `name` would hide another module of that name
    (already imported, standard, installed, or the `consecution` package itself)."""
    if not name.isidentifier() or name in sys.stdlib_module_names or name == "consecution":
        return True
    if name in sys.modules:  # imported already: shadowed unless it is this file, loaded before
        return getattr(sys.modules[name], "__file__", None) != path
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return found is not None and found.origin is not None and os.path.abspath(found.origin) != path
