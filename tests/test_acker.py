"""The acker: XOR tracking of tuple trees (consecution.acker), unit and property tests.

Ids in the unit tests are distinct powers of two, so no non-empty set of them XORs to 0 by
chance: a tree is complete exactly when every id has been XORed in twice.
"""
import doctest
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

import consecution.acker.tracker
from consecution.acker import Acker, new_id

ROOT, OTHER = 1000, 2000
S, A, B, C, D = 1, 2, 4, 8, 16  # tuple ids: S the spout tuple


def test_docstring_example_runs():
    assert doctest.testmod(consecution.acker.tracker).failed == 0


# -- new_id ----------------------------------------------------------------------------------

def test_new_id_is_never_zero_even_when_the_random_source_returns_zero(monkeypatch):
    draws = iter([0, 0, 42])
    monkeypatch.setattr(new_id, "__defaults__", (lambda bits: next(draws),))
    assert new_id() == 42


def test_new_id_asks_the_random_source_for_64_bits():
    asked = []
    assert new_id(lambda bits: asked.append(bits) or 7) == 7
    assert asked == [64]


def test_new_id_is_a_non_zero_64_bit_int():
    ids = [new_id() for _ in range(1000)]
    assert all(0 < i < 2**64 for i in ids)
    assert len(set(ids)) == 1000


# -- completion ------------------------------------------------------------------------------

def test_single_tuple_tree_completes_when_its_tuple_is_acked():
    acker = Acker()
    assert acker.init(ROOT, S, spout_task=3, now=0.0) is False
    assert ROOT in acker and acker.pending() == 1
    assert acker.ack(ROOT, S, now=1.0) is True
    assert ROOT not in acker and len(acker) == 0 and acker.pending() == 0


def test_chain_completes_only_when_its_last_tuple_is_acked():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    assert acker.ack(ROOT, S ^ A, 1.0) is False  # S processed, emitted A
    assert acker.ack(ROOT, A ^ B, 2.0) is False  # A processed, emitted B
    assert acker.ack(ROOT, B ^ C, 3.0) is False
    assert acker.ack(ROOT, C, 4.0) is True       # C processed, emitted nothing
    assert len(acker) == 0


def test_fan_out_completes_only_when_every_child_is_acked():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    assert acker.ack(ROOT, S ^ A ^ B ^ C, 1.0) is False
    assert acker.ack(ROOT, B, 2.0) is False
    assert acker.ack(ROOT, C, 3.0) is False
    assert acker.ack(ROOT, A, 4.0) is True


def test_spout_tuple_sent_to_several_tasks_inits_with_the_xor_of_their_ids():
    acker = Acker()
    acker.init(ROOT, A ^ B, 3, 0.0)
    assert acker.ack(ROOT, A, 1.0) is False
    assert acker.ack(ROOT, B, 2.0) is True


def test_children_acked_before_their_parent_complete_the_tree_with_the_parent():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    assert acker.ack(ROOT, A, 1.0) is False  # A's ack overtakes S's, which creates A
    assert acker.ack(ROOT, B, 2.0) is False
    assert acker.ack(ROOT, S ^ A ^ B, 3.0) is True


def test_tuple_anchored_to_several_parents_of_one_root_is_xored_once_per_root():
    # S -> A, B; D is anchored to both A and B (a join): D's id enters the root once on
    # creation (with B's ack, which emitted it while A was held) and once on its own ack.
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    assert acker.ack(ROOT, S ^ A ^ B, 1.0) is False
    assert acker.ack(ROOT, B ^ D, 2.0) is False
    assert acker.ack(ROOT, A, 3.0) is False      # the held anchor, acked after the join emitted
    assert acker.ack(ROOT, D, 4.0) is True


def test_tuple_anchored_to_parents_of_two_roots_is_needed_by_both_trees():
    # A belongs to ROOT, B to OTHER; D is anchored to both, so each tree waits for D's ack.
    acker = Acker()
    acker.init(ROOT, A, 3, 0.0)
    acker.init(OTHER, B, 4, 0.0)
    assert acker.ack(ROOT, A ^ D, 1.0) is False   # A processed: emitted D, holding B
    assert acker.ack(OTHER, B ^ D, 2.0) is False  # the held B acked; D created in its tree too
    assert acker.pending() == 2
    assert acker.ack(ROOT, D, 3.0) is True        # D's roots are both trees: one ack each
    assert acker.ack(OTHER, D, 3.0) is True
    assert acker.pending() == 0 and len(acker) == 0


# -- ack before init -------------------------------------------------------------------------

def test_init_after_acks_that_cancel_it_reports_the_tree_complete():
    acker = Acker()
    assert acker.ack(ROOT, S ^ A, 0.0) is False
    assert acker.ack(ROOT, A, 1.0) is False
    assert acker.init(ROOT, S, 3, 2.0) is True
    assert ROOT not in acker and acker.pending() == 0 and acker.pending(3) == 0


def test_init_after_some_acks_leaves_the_tree_pending():
    acker = Acker()
    acker.ack(ROOT, A, 0.0)
    assert acker.init(ROOT, S, 3, 1.0) is False
    assert acker.pending(3) == 1 and acker.spout_task(ROOT) == 3
    assert acker.ack(ROOT, S ^ A, 2.0) is True


def test_un_inited_entry_never_completes_on_its_own():
    acker = Acker()
    assert acker.ack(ROOT, A, 0.0) is False
    assert acker.ack(ROOT, A, 1.0) is False  # XOR back to 0, but no init yet
    assert ROOT in acker and len(acker) == 1
    assert acker.pending() == 0 and acker.spout_task(ROOT) is None


def test_init_twice_of_a_pending_tree_is_refused():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    try:
        acker.init(ROOT, A, 3, 1.0)
    except ValueError as e:
        assert "already started" in str(e)
    else:
        raise AssertionError("a second init was accepted")
    assert acker.pending() == 1


def test_init_with_a_zero_xor_is_complete_at_once():
    acker = Acker()
    assert acker.init(ROOT, 0, 3, 0.0) is True
    assert len(acker) == 0 and acker.pending() == 0


# -- fail ------------------------------------------------------------------------------------

def test_explicit_fail_removes_a_pending_tree():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    acker.ack(ROOT, S ^ A, 1.0)
    assert acker.fail(ROOT) is True
    assert ROOT not in acker and acker.pending() == 0 and acker.pending(3) == 0
    assert acker.fail(ROOT) is False


def test_explicit_fail_removes_an_un_inited_entry():
    acker = Acker()
    acker.ack(ROOT, A, 0.0)
    assert acker.fail(ROOT) is True
    assert len(acker) == 0 and acker.pending() == 0


def test_fail_of_unknown_root_returns_false_and_changes_nothing():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    assert acker.fail(OTHER) is False
    assert len(acker) == 1 and acker.pending() == 1


def test_late_ack_after_fail_does_not_complete_the_failed_tree():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    acker.ack(ROOT, S ^ A, 1.0)
    acker.fail(ROOT)
    assert acker.ack(ROOT, A, 2.0) is False  # the last ack of the tree, arriving too late
    assert acker.pending() == 0 and acker.spout_task(ROOT) is None
    assert acker.expire(now=100.0, timeout=10.0) == []
    assert len(acker) == 0


def test_late_ack_after_completion_does_not_complete_it_again():
    acker = Acker()
    acker.init(ROOT, S, 3, 0.0)
    assert acker.ack(ROOT, S, 1.0) is True
    assert acker.ack(ROOT, S, 2.0) is False  # a duplicate
    assert acker.ack(ROOT, S, 3.0) is False
    assert acker.pending() == 0


# -- timeouts --------------------------------------------------------------------------------

def test_expire_returns_inited_trees_started_at_or_before_the_limit_oldest_first():
    acker = Acker()
    for root, started in [(3, 0.0), (1, 1.0), (2, 2.0), (4, 3.0)]:
        acker.init(root, S, 7, started)
    assert acker.expire(now=10.5, timeout=10.0) == [3]
    assert acker.expire(now=12.0, timeout=10.0) == [1, 2]  # 2 started exactly at the limit
    assert acker.expire(now=12.0, timeout=10.0) == []
    assert list(acker.expire(now=99.0, timeout=10.0)) == [4]
    assert len(acker) == 0 and acker.pending() == 0


def test_acks_do_not_restart_the_timeout_clock():
    acker = Acker()
    acker.init(ROOT, S, 7, 0.0)
    acker.ack(ROOT, S ^ A, 9.0)
    assert acker.expire(now=10.0, timeout=10.0) == [ROOT]


def test_expire_drops_un_inited_entries_silently():
    acker = Acker()
    acker.ack(1, A, 0.0)        # an ack whose init never comes
    acker.init(2, S, 7, 1.0)
    acker.ack(3, B, 2.0)
    acker.init(4, S, 7, 20.0)
    assert acker.expire(now=12.0, timeout=10.0) == [2]
    assert acker.expire(now=25.0, timeout=10.0) == []
    assert len(acker) == 1 and 4 in acker and acker.pending() == 1


def test_init_starts_the_clock_of_an_entry_made_by_an_early_ack():
    acker = Acker()
    acker.ack(ROOT, A, 0.0)
    acker.init(OTHER, S, 7, 1.0)
    acker.init(ROOT, S, 7, 2.0)
    assert acker.expire(now=11.0, timeout=10.0) == [OTHER]
    assert acker.expire(now=12.0, timeout=10.0) == [ROOT]


# -- pending ---------------------------------------------------------------------------------

def test_pending_counts_per_spout_task_and_overall_through_init_ack_fail_expire():
    acker = Acker()
    acker.init(1, S, 7, 0.0)
    acker.init(2, S, 7, 1.0)
    acker.init(3, S, 8, 2.0)
    acker.init(4, S, 8, 3.0)
    acker.ack(5, A, 4.0)  # un-inited: counted by len() only
    assert (acker.pending(), acker.pending(7), acker.pending(8), acker.pending(9)) == (4, 2, 2, 0)
    assert len(acker) == 5
    acker.ack(1, S, 5.0)
    assert (acker.pending(), acker.pending(7), acker.pending(8)) == (3, 1, 2)
    acker.fail(3)
    assert (acker.pending(), acker.pending(7), acker.pending(8)) == (2, 1, 1)
    assert acker.expire(now=11.0, timeout=10.0) == [2]
    assert (acker.pending(), acker.pending(7), acker.pending(8)) == (1, 0, 1)
    acker.init(5, A, 7, 12.0)  # completes the early-acked entry 5 at once
    assert (acker.pending(), acker.pending(7), acker.pending(8)) == (1, 0, 1)
    assert acker.expire(now=99.0, timeout=10.0) == [4]
    assert (acker.pending(), acker.pending(7), acker.pending(8), len(acker)) == (0, 0, 0, 0)


def test_spout_task_is_known_only_for_inited_pending_trees():
    acker = Acker()
    acker.init(1, S, 7, 0.0)
    acker.ack(2, A, 0.0)
    assert acker.spout_task(1) == 7
    assert acker.spout_task(2) is None
    assert acker.spout_task(3) is None
    acker.ack(1, S, 1.0)
    assert acker.spout_task(1) is None


# -- properties ------------------------------------------------------------------------------
# A runtime in miniature: a tree is a DAG of tuples; every tuple has a main parent (the tuple
# being processed when it was emitted) and may have extra anchors (tuples held by that bolt).
# Its roots are the union of its anchors' roots. For each of its roots, a child's id is folded
# into the ack of one anchor in that root (the main parent if it is in it), as a runtime does
# when it acks the processed tuple: ack(root, t ^ c1 ^ ... ^ ck). Messages then arrive at the
# acker in any order, inits included.

@st.composite
def forests(draw, max_roots):
    """A list of messages ("init", root, xor, task) / ("ack", root, xor), in creation order."""
    rand = random.Random(draw(st.integers(0, 2**32))).getrandbits
    n_roots = draw(st.integers(1, max_roots))
    ids, roots_of = [], []   # per tuple
    firsts = {}               # root -> ids of its spout tuples
    for r in range(n_roots):
        root = new_id(rand)
        firsts[root] = []
        for _ in range(draw(st.integers(1, 3))):
            ids.append(new_id(rand))
            roots_of.append((root,))
            firsts[root].append(ids[-1])
    acks = {(t, root): ids[t] for t, roots in enumerate(roots_of) for root in roots}
    for _ in range(draw(st.integers(0, 20))):
        n = len(ids)
        anchors = [draw(st.integers(0, n - 1))]
        anchors += draw(st.lists(st.integers(0, n - 1), max_size=2))
        child = new_id(rand)
        roots = tuple(dict.fromkeys(r for a in anchors for r in roots_of[a]))
        for root in roots:
            holder = next(a for a in anchors if root in roots_of[a])
            acks[holder, root] ^= child
        ids.append(child)
        roots_of.append(roots)
        for root in roots:
            acks[len(ids) - 1, root] = child
    tasks = {root: draw(st.integers(0, 3)) for root in firsts}
    messages = []
    for root, first in firsts.items():
        xor = 0
        for i in first:
            xor ^= i
        messages.append(("init", root, xor, tasks[root]))
    messages += [("ack", root, xor) for (_, root), xor in acks.items()]
    return messages


def deliver(acker, message, now):
    if message[0] == "init":
        return acker.init(message[1], message[2], message[3], now)
    return acker.ack(message[1], message[2], now)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_tree_completes_exactly_when_its_last_message_arrives(data):
    messages = data.draw(st.permutations(data.draw(forests(max_roots=1))))
    acker = Acker()
    for step, message in enumerate(messages):
        done = deliver(acker, message, float(step))
        assert done is (step == len(messages) - 1)
    assert len(acker) == 0 and acker.pending() == 0


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_interleaved_trees_each_complete_at_their_last_message_with_pending_counts_right(data):
    messages = data.draw(st.permutations(data.draw(forests(max_roots=5))))
    left = Counter(m[1] for m in messages)   # messages still to arrive, per root
    task_of = {m[1]: m[3] for m in messages if m[0] == "init"}
    inited = set()
    acker = Acker()
    for step, message in enumerate(messages):
        root = message[1]
        done = deliver(acker, message, float(step))
        left[root] -= 1
        if message[0] == "init":
            inited.add(root)
        assert done is (left[root] == 0)
        if done:
            inited.discard(root)
            assert root not in acker
        expected = Counter(task_of[r] for r in inited)
        assert acker.pending() == len(inited)
        for task in range(4):
            assert acker.pending(task) == expected[task]
        assert all(acker.spout_task(r) == task_of[r] for r in inited)
    assert len(acker) == 0 and acker.pending() == 0


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_ack_all_of_a_frame_completes_exactly_what_the_same_acks_one_by_one_complete(data):
    messages = data.draw(st.permutations(data.draw(forests(max_roots=5))))
    cut = data.draw(st.integers(0, len(messages)))
    one_by_one, batched = Acker(), Acker()
    done_one = [m[1] for m in messages if deliver(one_by_one, m, 0.0)]
    done_batch = [m[1] for m in messages[:cut] if deliver(batched, m, 0.0)]
    frame = {}
    for message in messages[cut:]:  # the rest: inits one by one, acks combined per root
        if message[0] == "init":
            done_batch += [message[1]] if deliver(batched, message, 0.0) else []
        else:
            frame[message[1]] = frame.get(message[1], 0) ^ message[2]
    done_batch += batched.ack_all([x for root, xor in frame.items() for x in (root, xor)], 0.0)
    # every tree completes in both; in the batched acker those completed by the frame's acks
    # come back from ack_all (or at an init that came after acks cancelling it)
    assert sorted(done_one) == sorted(done_batch)
    assert len(batched) == 0 and batched.pending() == 0
