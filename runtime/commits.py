"""A commit's records on their way to their trees: what waits for the log's next commit
(`Unlogged`), a commit's records as columns (`columns`), and the roots their trees start with
(`tree_roots`; the class docstring of trees.TreeLifecycle says how a root is made).
"""
from itertools import repeat

from consecution.storage import Run
from consecution.topology.tuples import SEQ_SHIFT

START_MASK = (1 << SEQ_SHIFT) - 1  # the low bits of a tree's root: tree starts counted in this run


class Unlogged:
    """The records appended to the log since its last commit, in order: `Record`s (a spout's
    `emit`, a bolt's tuple with no input) and `Run`s (a spout's `next_batch`). `count`: the
    records in all; `origin`: the (component, task index, stream) every one of them came from,
    None when they came from more than one (or from a bolt)."""

    def __init__(self):
        self.entries, self.count, self.origin = [], 0, None

    def __bool__(self):
        return self.count > 0

    def add(self, entry, n, origin):
        if not self.count:
            self.origin = origin
        elif origin != self.origin:
            self.origin = None
        self.entries.append(entry)
        self.count += n

    def take(self):
        """(entries, origin), leaving it empty."""
        entries, origin = self.entries, self.origin
        self.entries, self.count, self.origin = [], 0, None
        return entries, origin


def columns(entries):
    """(seqs, values, holders) of a commit's records: each one's seq, its values and what
    `trees` keeps for it (its Record, or the Run that holds it). A lone Run gives its own
    columns, with no Record made."""
    if len(entries) == 1 and entries[0].__class__ is Run:
        run = entries[0]
        return run.seqs, run.values, repeat(run)
    seqs, values, holders = [], [], []
    for entry in entries:
        if entry.__class__ is Run:
            seqs += entry.seqs
            values += entry.values
            holders += repeat(entry, len(entry))
        else:
            seqs.append(entry.seq)
            values.append(entry.values)
            holders.append(entry)
    return seqs, values, holders


STEP = (1 << SEQ_SHIFT) + 1  # from one tree's root to the next's, for the next seq and the next start


def even_roots(seqs, start):
    """The root of the first tree started for `seqs` when the roots of all of them step evenly
    by STEP (a Run's seqs, a range, whose starts counted from `start` do not wrap around
    START_MASK), else None."""
    low = start & START_MASK
    if seqs.__class__ is range and low + len(seqs) <= START_MASK:
        return seqs.start << SEQ_SHIFT | low
    return None


def tree_roots(seqs, start):
    """The roots of the trees started for `seqs`, their starts counted from `start`: as every
    tree's root is made (the class docstring); made at C level where they step evenly."""
    first, n = even_roots(seqs, start), len(seqs)
    if first is not None:
        return list(range(first, first + n * STEP, STEP))
    return [seq << SEQ_SHIFT | start & START_MASK for seq, start in zip(seqs, range(start, start + n))]
