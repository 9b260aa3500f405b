"""The XOR tuple-tree tracker (Storm's acker), as a pure data structure.

Every tuple of a tree has a random 64-bit id. Per tree (keyed by `root`) the acker keeps the
XOR of every id created and every id acked: each id enters twice, so the value returns to 0
exactly when every tuple has been acked (up to a 2**-64 chance of a false zero). Callers
pass pre-combined values: on emit the ids of new tuples, on ack the acked id XOR the ids of
the children just emitted from it.

No I/O, no threads, no clock: `now` is always passed in. Entries are kept in a dict ordered
by the start of their timeout clock, so `expire` costs only what it removes.
"""
import random

_MASK = (1 << 64) - 1


def new_id(rand=random.getrandbits):
    """A random non-zero 64-bit id."""
    i = rand(64)
    while not i:
        i = rand(64)
    return i


class Acker:
    """Tracks tuple trees: `init`, `ack`, `fail`, `reset_timeout`, `expire`, `pending`.

    An entry is [xor, spout_task, started]; spout_task None marks an entry created by an ack
    that arrived before its init (tolerated, as in Storm).
    """

    __slots__ = ("_trees", "_per_task", "_inited")

    def __init__(self):
        self._trees = {}      # root -> [xor, spout_task or None, started]
        self._per_task = {}   # spout task -> inited pending trees
        self._inited = 0

    def init(self, root, xor, spout_task, now):
        """Spout task `spout_task` started tree `root` whose first tuples XOR to `xor`.
        True if the tree is complete already (acks that came first cancelled it out)."""
        entry = self._trees.get(root)
        if entry is None:
            self._trees[root] = [xor, spout_task, now]
        else:
            if entry[1] is not None:
                raise ValueError(f"tree {root:#x} is already started")
            entry[0] ^= xor
            entry[1] = spout_task
            if not entry[0]:
                del self._trees[root]
                return True
        self._per_task[spout_task] = self._per_task.get(spout_task, 0) + 1
        self._inited += 1
        return False

    def ack(self, root, xor, now):
        """XOR `xor` into tree `root`. True when this completes an inited tree (it is removed)."""
        entry = self._trees.get(root)
        if entry is None:
            self._trees[root] = [xor, None, now]  # the ack came before the init
            return False
        value = entry[0] ^ xor
        entry[0] = value
        if value or entry[1] is None:
            return False
        del self._trees[root]
        self._forget(entry[1])
        return True

    def fail(self, root):
        """Remove tree `root`; True if it was pending."""
        entry = self._trees.pop(root, None)
        if entry is None:
            return False
        if entry[1] is not None:
            self._forget(entry[1])
        return True

    def reset_timeout(self, root, now):
        """Start the timeout clock of tree `root` again (no-op if unknown)."""
        entry = self._trees.pop(root, None)
        if entry is not None:
            entry[2] = now
            self._trees[root] = entry

    def expire(self, now, timeout):
        """Remove and return, oldest first, the inited trees whose clock started at or before
        `now - timeout`. Un-inited entries that old are dropped without being returned."""
        limit = now - timeout
        trees, expired = self._trees, []
        while trees:
            root = next(iter(trees))
            entry = trees[root]
            if entry[2] > limit:
                break
            del trees[root]
            if entry[1] is not None:
                self._forget(entry[1])
                expired.append(root)
        return expired

    def pending(self, spout_task=None):
        """Inited trees not yet complete: of one spout task, or of all."""
        if spout_task is None:
            return self._inited
        return self._per_task.get(spout_task, 0)

    def spout_task(self, root):
        entry = self._trees.get(root)
        return None if entry is None else entry[1]

    def _forget(self, spout_task):
        self._inited -= 1
        self._per_task[spout_task] -= 1

    def __len__(self):
        return len(self._trees)

    def __contains__(self, root):
        return root in self._trees
