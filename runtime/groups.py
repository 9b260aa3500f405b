"""Record groups: the records of one log commit queued at once for a plain-function task in a
worker (process and ray mode), tracked by the acker as one tree.

Each record of a group keeps its own tree root: what its tuples carry, what a failure names,
what the record is found by (`core.trees`). The acker holds one entry for the whole group
(`Acker.init_group`), whose XOR everything done for its records settles:

  - a worker acks each part of a group it ran (a frame's share) once: the part's id XOR what
    its records queued (`Chains.run_roots`); a record that raises is failed alone, and what
    it queued before it raised is in that XOR all the same;
  - a worker that sends a group's tuples on through a crossing makes the group the ack
    target of their runs (`EventSink._runs`), so the receiver acks the group too;
  - any other ack of a member's root (a bolt that acks by hand, a tuple queued for a task
    that is not fused) is resolved to its group here (`resolve`), and a failed
    tuple's unacked XOR (`settle`, carried by the failure) goes to its group as well.

An ack that names several roots (a tuple anchored to several inputs) counts once per distinct
group or tree it resolves to: two members of one group must not cancel each other's ids out.

The group completes when its XOR returns to 0; its members still in `core.trees` complete
together (one that failed alone went to its retry or dead letter at once). A group that times
out fails every member still in flight; a dead worker fails all of them (the recovery runs
them again). The acker counts a group as its records, one less per member that failed alone
(`Acker.shrink`), so max_pending holds per record.

What this saves: the supervisor handles two or three acks per commit and worker instead of
one or two per record, and a commit's records leave the log together, in one delete.

The usual group, a spout's batch (one `Run`) whose roots step evenly (trees.tree_roots), is a
`RunGroup`: held in `core.trees` as one entry under its group id, not one per record, and its
members found by arithmetic on their roots, in the few groups in flight, where one fails
alone, is acked by hand or times out. Any other group (a commit of single records) keeps an
entry per member in `core.trees` and in `group_of`.
"""
from itertools import repeat

from consecution.acker import new_id
from consecution.storage.pending import drop
from consecution.topology.tuples import SEQ_SHIFT

from .commits import STEP

BLOCK = 9  # RunGroups are found by their seqs' blocks of 2**BLOCK (a spout's batch spans one or two)


def _blocks(run):
    """The blocks of seqs (`Groups.blocks`) that a Run's seqs fall in."""
    return range(run.first >> BLOCK, (run.first + len(run) - 1 >> BLOCK) + 1)


class RunGroup:
    """A record group of one Run, held as one entry in `core.trees` (under its group id): its
    members' roots are `first`, `first + STEP`, ... (the Run's seqs, their starts counted on;
    commits.tree_roots); `failed` holds those that failed alone (their records went their own
    way). Reads as a Record does where trees are counted by spout (`spout`, `task`)."""

    __slots__ = ("run", "first", "failed")

    def __init__(self, run, first):
        self.run, self.first, self.failed = run, first, set()

    @property
    def spout(self):
        return self.run.spout

    @property
    def task(self):
        return self.run.task

    def __len__(self):
        """Its members in flight."""
        return len(self.run) - len(self.failed)

    def seq_of(self, root):
        """The seq of member `root` (in flight, or failed alone), else None."""
        i, rest = divmod(root - self.first, STEP)
        if rest or not 0 <= i < len(self.run):
            return None
        return self.run.first + i

    def in_flight(self):
        """The seqs of its members in flight (a range when none failed alone)."""
        seqs = self.run.seqs
        if not self.failed:
            return seqs
        failed = {self.seq_of(root) for root in self.failed}
        return [seq for seq in seqs if seq not in failed]


class Groups:
    """The groups in flight: their members, and each member's group."""

    def __init__(self, acker):
        self.acker = acker
        self.members = {}   # group id -> [member root, ...]
        self.group_of = {}  # member root -> group id
        self.runs = {}      # group id -> RunGroup (the usual group: no entry per member)
        self.blocks = {}    # seq >> BLOCK -> [group id, ...]: the RunGroups with seqs in that block

    def start(self, roots, spout_task, now):
        """A new group of the trees `roots` (started already, in `core.trees`), from `spout_task`:
        its id, which is also the id of its first tuple (the acker's value at start)."""
        group = new_id()
        self.members[group] = roots
        self.group_of.update(zip(roots, repeat(group)))
        self.acker.init_group(group, len(roots), spout_task, now)
        return group

    def start_run(self, run, first, spout_task, now):
        """A new group of `run`'s records, whose trees' roots are first, first + STEP, ...: its
        id and its RunGroup (which the core keeps in `trees` under that id)."""
        group = new_id()
        entry = self.runs[group] = RunGroup(run, first)
        for block in _blocks(run):
            self.blocks.setdefault(block, []).append(group)
        self.acker.init_group(group, len(run), spout_task, now)
        return group, entry

    def run_of(self, root):
        """(group id, RunGroup, seq) of the RunGroup whose member `root` is, else None."""
        for group in self.blocks.get(root >> SEQ_SHIFT >> BLOCK, ()):
            entry = self.runs[group]
            seq = entry.seq_of(root)
            if seq is not None:
                return group, entry, seq
        return None

    def forget_run(self, group):
        """RunGroup `group`, which is forgotten (done, expired)."""
        entry = self.runs.pop(group)
        for block in _blocks(entry.run):
            groups = self.blocks[block]
            groups.remove(group)
            if not groups:
                del self.blocks[block]
        return entry

    def _target(self, root):
        """The group `root` is a member of (or is), else the root itself."""
        group = self.group_of.get(root)
        if group is not None:
            return group
        if self.runs and root not in self.runs:
            found = self.run_of(root)
            if found is not None:
                return found[0]
        return root

    def resolve(self, acks, several=()):
        """The acks [root, xor, ...] and [[roots, xor], ...] (acks naming several roots) as
        one flat [target, xor, ...] with one entry per tree or group: each member's root
        replaced by its group, an ack of several roots counted once on each distinct target.
        Combined before the acker sees them, so that no part of a worker's reply can bring a
        target to 0 that the rest of it takes away from 0 again."""
        target_of, runs, combined = self._target, self.runs, {}
        for roots, xor in several:
            for target in self.targets(roots):
                combined[target] = combined.get(target, 0) ^ xor
        for i in range(0, len(acks), 2):
            target = acks[i]
            if target not in runs:  # the usual ack: a worker's on a group
                target = target_of(target)
            combined[target] = combined.get(target, 0) ^ acks[i + 1]
        out = []
        for target, xor in combined.items():
            if xor:
                out += (target, xor)
        return out

    def targets(self, roots):
        """The distinct trees and groups that an ack of `roots` goes to, in order."""
        return list(dict.fromkeys(map(self._target, roots)))

    def settle(self, roots, xor):
        """[group, xor, ...] for the groups among `roots` (a failed tuple's XOR left unacked)."""
        out = []
        for target in self.targets(roots):
            if target in self.members or target in self.runs:
                out += (target, xor)
        return out

    def shrink(self, root):
        """Member `root` (of a group that keeps an entry per member) failed alone: its group
        counts one record less."""
        group = self.group_of.get(root)
        if group is not None:
            self.acker.shrink(group)

    def fail_member(self, group, entry, root):
        """Member `root` of RunGroup `entry` failed alone: it leaves the group in flight, which
        counts one record less."""
        entry.failed.add(root)
        self.acker.shrink(group)

    def expand(self, roots):
        """`roots` (completed or expired) with each group's id replaced by its members, the
        group forgotten."""
        out = []
        for root in roots:
            if root in self.members:
                out += self.forget(root)
            else:
                out.append(root)
        return out

    def forget(self, group):
        """The members of `group`, which is forgotten (done, failed or expired)."""
        roots = self.members.pop(group)
        drop(self.group_of, roots)
        return roots

    def fail_all(self):
        """Every group leaves the acker (a worker died: its records go to the recovery)."""
        for group in [*self.members, *self.runs]:
            self.acker.fail(group)
        self.members.clear()
        self.group_of.clear()
        self.runs.clear()
        self.blocks.clear()
