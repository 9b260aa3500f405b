"""The XOR tuple-tree tracker (Storm's acker), as a pure data structure.

Every tuple of a tree has a random 64-bit id (`new_id`). Per tree, keyed by its `root`, the
acker keeps the XOR of every id created and every id acked: each id enters twice, so the value
returns to 0 exactly when every tuple has been acked (up to a 2**-64 chance of a false zero).
Callers pass pre-combined values: `init` gets the XOR of the spout tuple's ids, `ack` the acked
id XOR the ids of the children just emitted from it, once per root the acked tuple belongs to.

No I/O, no threads, no clock: `now` is always passed in and must never decrease from one call
to the next. Entries live in an OrderedDict in the order their timeout clock started, so
`expire` costs what it removes (a plain dict would rescan the holes that completed trees leave
at its front), and every other call is O(1).

>>> acker = Acker()
>>> a, b = 0x1, 0x2                   # ids of two tuples sent by spout task 7
>>> acker.init(root=99, xor=a ^ b, spout_task=7, now=0.0)
False
>>> acker.ack(99, a, now=1.0)         # `a` processed, emitted nothing
False
>>> acker.pending(7), acker.pending()
(1, 1)
>>> acker.ack(99, b, now=2.0)         # the last tuple: the tree is complete and forgotten
True
>>> acker.pending(7), len(acker)
(0, 0)
"""
import random
from collections import OrderedDict

# An entry is a list [xor, spout_task, started, weight] indexed by literals (cheaper than named
# constants on the per-tuple path); spout_task None marks an entry created by an ack that
# arrived before its init. `weight` is how many records the entry stands for in `pending`:
# 1 for a tree, n for a group of n records tracked as one XOR (`init_group`).


def new_id(rand=random.getrandbits) -> int:
    """A random 64-bit tuple or root id, never 0 (0 means "complete" to the acker)."""
    i = rand(64)
    while not i:
        i = rand(64)
    return i


class Acker:
    """Tracks tuple trees through Storm's closed message set: `init`, `ack`, `fail`,
    `reset_timeout`, plus `expire` for the timeout. A tree is complete when it was inited and
    its XOR is 0; it is then removed and reported exactly once, by the call that completed it.
    Removed trees are forgotten: a late ack for one only makes an un-inited entry, which never
    completes on its own and is dropped silently by `expire`.
    """

    __slots__ = ("_trees", "_per_task", "_inited")

    def __init__(self) -> None:
        self._trees = OrderedDict()  # root -> [xor, spout_task or None, started, weight], oldest first
        self._per_task = {}          # spout task -> number of its inited pending records
        self._inited = 0

    def init(self, root: int, xor: int, spout_task: int, now: float) -> bool:
        """Spout task `spout_task` started tree `root`, whose first tuples XOR to `xor`.

        The tree's timeout clock starts now. True if the tree is complete already (acks that
        arrived first cancelled `xor` out); it is then removed. Raises ValueError if `root` was
        inited before and is still pending: that is a caller bug.
        """
        trees = self._trees
        entry = trees.get(root)
        if entry is None:
            if not xor:
                return True
            trees[root] = [xor, spout_task, now, 1]
        else:
            if entry[1] is not None:
                raise ValueError(f"tree {root:#x} is already started by spout task {entry[1]}")
            value = entry[0] ^ xor
            if not value:
                del trees[root]
                return True
            entry[0], entry[1], entry[2] = value, spout_task, now
            trees.move_to_end(root)
        self._per_task[spout_task] = self._per_task.get(spout_task, 0) + 1
        self._inited += 1
        return False

    def init_own(self, roots, spout_task: int, now: float) -> None:
        """`init` of new trees whose first tuple's id is the root itself (a batch of records
        queued at once: no id to draw per record). None of `roots` may be known yet."""
        trees = self._trees
        for root in roots:
            trees[root] = [root, spout_task, now, 1]
        self._per_task[spout_task] = self._per_task.get(spout_task, 0) + len(roots)
        self._inited += len(roots)

    def init_group(self, group: int, weight: int, spout_task: int, now: float) -> None:
        """`init` of a group of `weight` records tracked as one tree: its first tuple's id is
        `group` itself (the records go out together), and it counts as `weight` records in
        `pending` until it completes, fails or expires (`shrink` takes one off)."""
        self._trees[group] = [group, spout_task, now, weight]
        self._per_task[spout_task] = self._per_task.get(spout_task, 0) + weight
        self._inited += weight

    def shrink(self, group: int) -> None:
        """One record of pending group `group` is no longer counted (it failed alone)."""
        entry = self._trees.get(group)
        if entry is not None and entry[1] is not None and entry[3] > 0:
            entry[3] -= 1
            self._per_task[entry[1]] -= 1
            self._inited -= 1

    def ack(self, root: int, xor: int, now: float) -> bool:
        """XOR `xor` into tree `root`. True when this completes an inited tree (it is removed).

        An unknown root gets an un-inited entry whose clock starts now: the ack came before
        its init (or after its tree was failed or expired, and then no init ever comes).
        """
        entry = self._trees.get(root)
        if entry is None:
            self._trees[root] = [xor, None, now, 1]
            return False
        value = entry[0] ^ xor
        entry[0] = value
        if value or entry[1] is None:
            return False
        del self._trees[root]
        self._inited -= entry[3]
        self._per_task[entry[1]] -= entry[3]
        return True

    def ack_all(self, acks, now: float) -> list[int]:
        """`ack` for a flat list [root, xor, root, xor, ...] (a worker's acks of one frame,
        one per root); returns the roots of the inited trees it completed, in order."""
        trees, per_task, completed, weight = self._trees, self._per_task, [], 0
        for i in range(0, len(acks), 2):
            root = acks[i]
            entry = trees.get(root)
            if entry is None:
                trees[root] = [acks[i + 1], None, now, 1]
                continue
            value = entry[0] ^ acks[i + 1]
            entry[0] = value
            if value or entry[1] is None:
                continue
            del trees[root]
            per_task[entry[1]] -= entry[3]
            weight += entry[3]
            completed.append(root)
        self._inited -= weight
        return completed

    def fail(self, root: int) -> bool:
        """Remove tree `root`, inited or not. True if it was there, False if unknown."""
        entry = self._trees.pop(root, None)
        if entry is None:
            return False
        if entry[1] is not None:
            self._inited -= entry[3]
            self._per_task[entry[1]] -= entry[3]
        return True

    def expire(self, now: float, timeout: float) -> list[int]:
        """Remove the entries whose clock started at or before `now - timeout`; return the roots
        of the inited ones among them, oldest first. Un-inited ones are dropped silently."""
        limit = now - timeout
        trees, per_task, expired = self._trees, self._per_task, []
        while trees:
            root = next(iter(trees))
            entry = trees[root]
            if entry[2] > limit:
                break
            del trees[root]
            task = entry[1]
            if task is not None:
                per_task[task] -= entry[3]
                self._inited -= entry[3]
                expired.append(root)
        return expired

    def pending(self, spout_task: int | None = None) -> int:
        """Number of records in inited trees not yet complete, failed or expired (a tree counts
        one, a group its weight): of one spout task, or of all when `spout_task` is None."""
        if spout_task is None:
            return self._inited
        return self._per_task.get(spout_task, 0)

    def spout_task(self, root: int) -> int | None:
        """The spout task that inited pending tree `root`; None if unknown or not inited."""
        entry = self._trees.get(root)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        """Number of entries, inited or not."""
        return len(self._trees)

    def __contains__(self, root: object) -> bool:
        """Whether `root` has an entry, inited or not."""
        return root in self._trees
