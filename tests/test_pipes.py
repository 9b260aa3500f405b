"""The pipe syntax: what graph an expression compiles to (names, groupings), and, by running
it in single mode, where the tuples actually go."""
import pytest

from consecution.testing import emitted, run_local
from support import Numbers
from consecution.topology import (Bolt, ChunkBolt, ComponentError, DuplicateNameError,
                                  IterableSpout, Topology, TopologyError, Tuple, broadcast, chunk,
                                  component, merge, route)


# -- components used below -----------------------------------------------------------------

class Tag(Bolt):
    """Emits (tag, *input values): shows which branch a tuple went through."""

    def __init__(self, tag):
        self.tag = tag

    def process(self, tup):
        self.emit((self.tag,) + tuple(tup.values))


class Echo(Bolt):
    def process(self, tup):
        self.emit(tuple(tup.values))


class WordCount(Bolt):
    fields = ("word", "count")

    def prepare(self, context):
        self.counts = {}

    def process(self, tup):
        self.counts[tup["word"]] = self.counts.get(tup["word"], 0) + 1

    def finish(self):
        for word, n in sorted(self.counts.items()):
            self.emit((word, n))




def split(line):
    yield from line.split()


split.fields = ("word",)


def double(x):
    return x * 2


def increment(x):
    return x + 1


def graph(topology):
    """{component: [(grouping kind, source)]}: the compiled graph, without the objects."""
    return {name: [(g.kind, g.source) for g in c.inputs] for name, c in topology.components.items()}


def values_of(rows):
    return sorted(v for row in rows for v in row)


# -- a | b ---------------------------------------------------------------------------------

def test_a_pipe_b_subscribes_b_to_a():
    t = Topology("p", IterableSpout(range(3)) | double)
    assert graph(t) == {"range": [], "double": [("shuffle", "range")]}
    assert t.components["range"].kind == "spout" and t.components["double"].kind == "bolt"
    assert emitted(t, "double") == [(0,), (2,), (4,)]


def test_a_longer_pipe_is_a_chain():
    t = Topology("p", IterableSpout(["a b", "b"]) | split | WordCount())
    assert graph(t) == {"list": [], "split": [("shuffle", "list")], "word_count": [("shuffle", "split")]}
    assert emitted(t, "word_count") == [("a", 1), ("b", 2)]


def test_a_pipe_compiles_to_the_same_graph_as_the_builder():
    lines = ["a b", "b"]
    piped = Topology("wc", IterableSpout(lines) | split | WordCount())
    built = Topology("wc")
    built.spout("list", lines)
    built.bolt("split", split).shuffle_grouping("list")
    built.bolt("word_count", WordCount()).shuffle_grouping("split")
    assert piped.fingerprint() == built.fingerprint()


def test_a_spout_subclass_starts_a_pipe():
    t = Topology("p", Numbers(3) | double)
    assert graph(t) == {"numbers": [], "double": [("shuffle", "numbers")]}
    assert emitted(t, "double") == [(0,), (2,), (4,)]


def test_function_bolts_get_the_values_as_positional_arguments():
    t = Topology("p", IterableSpout([(1, 2), (3, 4)]) | component(lambda a, b: a * 10 + b, name="join"))
    assert emitted(t, "join") == [(12,), (34,)]


def test_function_bolt_returning_none_emits_nothing_a_generator_each_item_a_value_one_tuple():
    def evens(x):
        return x if x % 2 == 0 else None

    def twice(x):
        yield x
        yield x

    def pair(x):
        return (x, -x)

    # a broadcast: a list starting with a function would be a route
    result = run_local(Topology("p", IterableSpout(range(3)) | broadcast(evens, twice, pair)))
    assert result.emitted("evens") == [(0,), (2,)]
    assert result.emitted("twice") == [(0,), (0,), (1,), (1,), (2,), (2,)]
    assert result.emitted("pair") == [(0, 0), (1, -1), (2, -2)]


# -- names ---------------------------------------------------------------------------------

def test_names_come_from_class_and_function_names():
    t = Topology("p", IterableSpout(["a"]) | split | WordCount())
    assert list(t.components) == ["list", "split", "word_count"]


def test_names_of_iterables_lambdas_and_chunks():
    def numbers():
        yield 1

    t = Topology("p", IterableSpout(numbers()) | (lambda x: x) | chunk(2))
    assert list(t.components) == ["numbers", "lambda", "chunk"]
    assert list(Topology("q", IterableSpout(range(2)) | double).components) == ["range", "double"]


def test_repeated_names_are_made_unique():
    t = Topology("p", IterableSpout(["a b"]) | split | component(split) | component(split))
    assert list(t.components) == ["list", "split", "split_2", "split_3"]
    assert graph(t)["split_2"] == [("shuffle", "split")]
    assert graph(t)["split_3"] == [("shuffle", "split_2")]


def test_names_are_made_unique_against_components_already_declared():
    t = Topology("p")
    t.spout("double", [1])
    (IterableSpout([2]) | double).compile_into(t)
    assert sorted(t.components) == ["double", "double_2", "list"]


def test_component_sets_name_parallelism_and_group_by():
    words = ["a", "b", "a", "c", "a", "b"]
    t = Topology("p", IterableSpout(words, fields=("word",))
                 | component(WordCount(), name="counter", parallelism=3, group_by=("word",)))
    counter = t.components["counter"]
    assert counter.parallelism == 3
    assert [(g.kind, g.source, g.fields) for g in counter.inputs] == [("fields", "list", ("word",))]
    # each word goes to one task, so every task's count is the word's total
    assert sorted(emitted(t, "counter")) == [("a", 3), ("b", 2), ("c", 1)]


def test_group_by_applies_to_every_edge_into_the_component():
    t = Topology("p", IterableSpout(["x"], fields=("word",))
                 | [component(Echo(), fields=("word",)), component(Tag("t"), fields=("tag", "word"))]
                 | component(WordCount(), group_by=("word",)))
    assert [(g.kind, g.fields) for g in t.components["word_count"].inputs] == [
        ("fields", ("word",)), ("fields", ("word",))]
    t.validate()


def test_an_explicit_name_before_a_generated_one_leaves_the_generated_one_to_be_renamed():
    t = Topology("p", IterableSpout([1]) | component(increment, name="double") | double)
    assert list(t.components) == ["list", "double", "double_2"]
    assert t.components["double"].obj.fn is increment


def test_an_explicit_name_wins_over_a_generated_one_wherever_it_stands():
    t = Topology("p", IterableSpout([1]) | double | component(increment, name="double"))
    assert t.components["double"].obj.fn is increment
    assert sorted(t.components) == ["double", "double_2", "list"]


def test_two_components_given_the_same_name_raise_a_duplicate_name_error():
    with pytest.raises(DuplicateNameError, match="'step'"):
        Topology("p", IterableSpout([1]) | component(double, name="step") | component(increment, name="step"))


def test_two_components_given_the_same_name_are_refused_naming_it():
    with pytest.raises(TopologyError, match="'step'"):
        Topology("p", IterableSpout([1]) | component(double, name="step") | component(increment, name="step"))


def test_group_by_a_single_string_is_not_split_into_characters():
    try:
        t = Topology("p", IterableSpout(["x"], fields=("word",)) | component(WordCount(), group_by="word"))
    except TopologyError as exc:  # refusing it clearly is as good as grouping on "word"
        assert "group_by" in str(exc)
    else:
        assert t.components["word_count"].inputs[0].fields == ("word",)


# -- broadcast -----------------------------------------------------------------------------

@pytest.mark.parametrize("branches", [lambda b, c: [b, c], lambda b, c: broadcast(b, c)],
                         ids=["list", "broadcast"])
def test_broadcast_sends_every_tuple_to_every_branch(branches):
    t = Topology("p", IterableSpout(range(4)) | branches(Tag("b"), Tag("c")))
    assert graph(t) == {"range": [], "tag": [("shuffle", "range")], "tag_2": [("shuffle", "range")]}
    result = run_local(t)
    assert result.emitted("tag") == [("b", i) for i in range(4)]
    assert result.emitted("tag_2") == [("c", i) for i in range(4)]
    assert result.completed == 4 and result.exit_code == 0


def test_a_list_with_a_function_and_one_branch_broadcasts_to_both():
    # a route needs a function and at least two branches: [fn, b] is two bolts
    t = Topology("p", IterableSpout(range(3)) | [double, Tag("b")])
    assert graph(t) == {"range": [], "double": [("shuffle", "range")], "tag": [("shuffle", "range")]}
    result = run_local(t)
    assert result.emitted("double") == [(0,), (2,), (4,)]
    assert result.emitted("tag") == [("b", 0), ("b", 1), ("b", 2)]


def test_a_list_whose_first_item_is_a_bolt_broadcasts():
    t = Topology("p", IterableSpout(range(2)) | [Tag("a"), double, increment])
    assert {g.kind for c in t.bolts for g in c.inputs} == {"shuffle"}
    result = run_local(t)
    assert result.emitted("tag") == [("a", 0), ("a", 1)]
    assert result.emitted("double") == [(0,), (2,)] and result.emitted("increment") == [(1,), (2,)]


# -- route ---------------------------------------------------------------------------------

@pytest.mark.parametrize("branches", [lambda fn, b, c: [fn, b, c], lambda fn, b, c: route(fn, b, c)],
                         ids=["list", "route"])
def test_route_sends_each_tuple_to_the_branch_its_function_picks(branches):
    calls = []

    def parity(tup):
        calls.append(tup)
        return tup["n"] % 2

    t = Topology("p", Numbers(6) | branches(parity, Tag("even"), Tag("odd")))
    assert graph(t) == {"numbers": [], "tag": [("route", "numbers")], "tag_2": [("route", "numbers")]}
    assert "parity" not in t.components  # the router is part of the edge
    result = run_local(t)
    assert result.emitted("tag") == [("even", 0), ("even", 2), ("even", 4)]
    assert result.emitted("tag_2") == [("odd", 1), ("odd", 3), ("odd", 5)]
    assert len(calls) == 6  # once per tuple, not once per branch
    assert all(isinstance(tup, Tuple) for tup in calls)
    assert [tup["n"] for tup in calls] == list(range(6))
    assert {tup.source for tup in calls} == {"numbers"}


def test_route_after_a_bolt_gets_the_bolts_tuples():
    calls = []

    def big(tup):
        calls.append(tup.source)
        return 0 if tup[0] >= 4 else 1

    result = run_local(Topology("p", IterableSpout(range(4)) | double | [big, Tag("big"), Tag("small")]))
    assert result.emitted("tag") == [("big", 4), ("big", 6)]
    assert result.emitted("tag_2") == [("small", 0), ("small", 2)]
    assert calls == ["double"] * 4


def test_route_with_more_branches_and_pipes_as_branches():
    def by_three(tup):
        return tup[0] % 3

    t = Topology("p", IterableSpout(range(6))
                 | route(by_three, component(double), component(increment) | Tag("inc"), Tag("rest")))
    assert graph(t)["double"] == [("route", "range")]
    assert graph(t)["increment"] == [("route", "range")]
    assert graph(t)["tag"] == [("shuffle", "increment")]
    assert graph(t)["tag_2"] == [("route", "range")]
    result = run_local(t)
    assert result.emitted("double") == [(0,), (6,)]
    assert result.emitted("tag") == [("inc", 2), ("inc", 5)]
    assert result.emitted("tag_2") == [("rest", 2), ("rest", 5)]


def test_nested_routes_call_each_function_once_per_tuple_that_reaches_it():
    outer_calls, inner_calls = [], []

    def outer(tup):
        outer_calls.append(tup[0])
        return 0 if tup[0] < 4 else 1

    def inner(tup):
        inner_calls.append(tup[0])
        return tup[0] % 2

    t = Topology("p", IterableSpout(range(6)) | route(outer, route(inner, Tag("e"), Tag("o")), Tag("hi")))
    result = run_local(t)
    assert result.emitted("tag") == [("e", 0), ("e", 2)]
    assert result.emitted("tag_2") == [("o", 1), ("o", 3)]
    assert result.emitted("tag_3") == [("hi", 4), ("hi", 5)]
    assert outer_calls == list(range(6)) and inner_calls == [0, 1, 2, 3]


def test_route_without_a_function_is_round_robin():
    t = Topology("p", IterableSpout(range(6)) | route(Tag("b"), Tag("c")))
    assert graph(t) == {"range": [], "tag": [("route", "range")], "tag_2": [("route", "range")]}
    result = run_local(t)
    assert result.emitted("tag") == [("b", 0), ("b", 2), ("b", 4)]
    assert result.emitted("tag_2") == [("c", 1), ("c", 3), ("c", 5)]


def test_round_robin_route_over_three_branches_sends_each_tuple_once():
    result = run_local(Topology("p", IterableSpout(range(7)) | route(Tag("a"), Tag("b"), Tag("c"))))
    rows = result.emitted("tag") + result.emitted("tag_2") + result.emitted("tag_3")
    assert sorted(n for _, n in rows) == list(range(7))
    assert [len(result.emitted(n)) for n in ("tag", "tag_2", "tag_3")] == [3, 2, 2]


def test_round_robin_route_gives_the_same_split_on_every_run():
    t = Topology("p", IterableSpout(range(3)) | route(Tag("b"), Tag("c")))
    first, second = run_local(t), run_local(t)
    assert first.emitted("tag") == second.emitted("tag") == [("b", 0), ("b", 2)]
    assert first.emitted("tag_2") == second.emitted("tag_2") == [("c", 1)]


def test_route_with_a_function_and_one_branch_is_refused():
    with pytest.raises(TopologyError, match="one branch"):
        route(double, Tag("b"))


def test_route_function_returning_an_out_of_range_index_fails_that_tuple_after_a_bolt():
    def pick(tup):
        return 5 if tup[0] == 2 else 0

    t = Topology("p", IterableSpout(range(4)) | increment | [pick, Tag("a"), Tag("b")],
                 reliability="confirm")
    result = run_local(t)
    assert result.emitted("tag") == [("a", 1), ("a", 3), ("a", 4)]  # 2 (from 1) was failed
    assert result.given_up == 1 and result.completed == 3 and result.exit_code == 3
    (letter,) = result.failures
    assert letter.record.values == (1,)  # the spout tuple whose tree failed
    assert "pick" in letter.error and "5" in letter.error and "range(2)" in letter.error


def test_route_function_returning_an_out_of_range_index_fails_that_tuple_after_a_spout():
    def pick(tup):
        return 5 if tup[0] == 2 else 0

    t = Topology("p", IterableSpout(range(4)) | [pick, Tag("a"), Tag("b")], reliability="confirm")
    result = run_local(t)
    assert result.emitted("tag") == [("a", 0), ("a", 1), ("a", 3)]
    assert result.given_up == 1 and result.exit_code == 3
    assert result.failures[0].record.values == (2,) and "pick" in result.failures[0].error


def test_route_function_that_raises_fails_that_tuple():
    def pick(tup):
        if tup[0] == 3:
            raise ValueError("no branch for 3")
        return 0

    t = Topology("p", IterableSpout(range(4)) | double | component(increment)
                 | route(pick, Tag("a"), Tag("b")), reliability="confirm")
    # values after double|increment: 1, 3, 5, 7; pick raises for 3 (the input 1)
    result = run_local(t)
    assert result.emitted("tag") == [("a", 1), ("a", 5), ("a", 7)]
    assert result.given_up == 1 and "no branch for 3" in result.failures[0].error


# -- merge ---------------------------------------------------------------------------------

@pytest.mark.parametrize("merged", [lambda b, c, d: [b, c] | d, lambda b, c, d: merge(b, c) | d],
                         ids=["list", "merge"])
def test_merge_feeds_every_branch_into_what_follows(merged):
    t = Topology("p", merged(IterableSpout([1, 2]), IterableSpout(range(10, 12)), Echo()))
    assert graph(t) == {"list": [], "range": [], "echo": [("shuffle", "list"), ("shuffle", "range")]}
    assert sorted(emitted(t, "echo")) == [(1,), (2,), (10,), (11,)]


def test_merge_of_pipes_connects_each_end():
    t = Topology("p", merge(IterableSpout([1]) | double, IterableSpout([5]) | increment) | Echo())
    assert graph(t)["echo"] == [("shuffle", "double"), ("shuffle", "increment")]
    assert sorted(emitted(t, "echo")) == [(2,), (6,)]


def test_several_ends_connect_to_what_follows():
    t = Topology("p", IterableSpout(range(2)) | [Tag("b"), Tag("c")] | Echo())
    assert graph(t)["echo"] == [("shuffle", "tag"), ("shuffle", "tag_2")]
    assert sorted(emitted(t, "echo")) == [("b", 0), ("b", 1), ("c", 0), ("c", 1)]


def test_routed_branches_merge_again():
    def parity(tup):
        return tup[0] % 2

    t = Topology("p", IterableSpout(range(4)) | [parity, Tag("e"), Tag("o")] | Echo())
    result = run_local(t)
    assert sorted(result.emitted("echo")) == [("e", 0), ("e", 2), ("o", 1), ("o", 3)]


def test_nested_branches_connect_only_the_ends_to_what_follows():
    t = Topology("p", IterableSpout([1, 2])
                 | broadcast(Tag("b") | Tag("c"), Tag("d") | Tag("e")) | Echo())
    # names: tag (b), tag_2 (c), tag_3 (d), tag_4 (e)
    assert graph(t) == {
        "list": [],
        "tag": [("shuffle", "list")], "tag_2": [("shuffle", "tag")],
        "tag_3": [("shuffle", "list")], "tag_4": [("shuffle", "tag_3")],
        "echo": [("shuffle", "tag_2"), ("shuffle", "tag_4")],
    }
    result = run_local(t)
    assert sorted(result.emitted("echo")) == [("c", "b", 1), ("c", "b", 2), ("e", "d", 1), ("e", "d", 2)]
    assert result.completed == 2 and result.exit_code == 0


# -- a pipe is a value ---------------------------------------------------------------------

def test_the_same_expression_used_twice_in_branches_gives_two_components():
    twice = component(double) | Tag("x")
    t = Topology("p", IterableSpout([1, 2]) | broadcast(twice, twice))
    assert sorted(t.components) == ["double", "double_2", "list", "tag", "tag_2"]
    result = run_local(t)
    assert result.emitted("tag") == result.emitted("tag_2") == [("x", 2), ("x", 4)]


def test_the_same_expression_used_in_two_topologies_gives_each_its_components():
    steps = component(double) | Tag("x")
    a = Topology("a", IterableSpout([1]) | steps)
    b = Topology("b", IterableSpout([2]) | steps)
    assert emitted(a, "tag") == [("x", 2)] and emitted(b, "tag") == [("x", 4)]


def test_composing_never_changes_its_operands():
    head = IterableSpout([1]) | double
    nodes, edges, ends = list(head.nodes), list(head.edges), list(head.ends)
    longer = head | increment
    assert head.nodes == nodes and head.edges == edges and head.ends == ends
    assert len(longer.nodes) == 3
    assert list(Topology("p", head).components) == ["list", "double"]


def test_the_same_expression_used_twice_in_a_chain_gives_two_components():
    step = component(double)
    t = Topology("p", IterableSpout([1, 2]) | step | step)
    assert list(t.components) == ["list", "double", "double_2"]
    assert emitted(t, "double_2") == [(4,), (8,)]


# -- chunk ---------------------------------------------------------------------------------

def test_chunk_n_emits_batches_of_n_and_the_last_partial_batch_at_the_end():
    t = Topology("p", IterableSpout(range(7)) | chunk(3) | Echo())
    assert graph(t) == {"range": [], "chunk": [("shuffle", "range")], "echo": [("shuffle", "chunk")]}
    assert t.components["chunk"].streams == {"default": ("batch",)}
    result = run_local(t)
    assert result.emitted("echo") == [([[0], [1], [2]],), ([[3], [4], [5]],), ([[6]],)]
    assert result.completed == 7 and result.exit_code == 0


def test_chunk_batch_is_one_tuple_with_field_batch_listing_each_inputs_values():
    seen = []

    class Look(Bolt):
        def process(self, tup):
            seen.append((tuple(tup.fields), tup["batch"]))

    run_local(Topology("p", IterableSpout([(1, "a"), (2, "b")]) | chunk(2) | Look()))
    assert seen == [(("batch",), [[1, "a"], [2, "b"]])]


def test_chunk_whose_size_divides_the_input_emits_no_empty_batch():
    rows = emitted(Topology("p", IterableSpout(range(4)) | chunk(2) | Echo()), "echo")
    assert rows == [([[0], [1]],), ([[2], [3]],)]


def test_chunk_partial_batch_comes_before_any_finish():
    class Total(Bolt):
        def prepare(self, context):
            self.batches = []

        def process(self, tup):
            self.batches.append(len(tup["batch"]))

        def finish(self):
            self.emit((self.batches,))

    assert emitted(Topology("p", IterableSpout(range(5)) | chunk(2) | Total()), "total") == [([2, 2, 1],)]


def test_chunk_fn_batches_runs_of_consecutive_inputs_with_equal_keys():
    keys = []

    def first_letter(tup):
        keys.append(type(tup))
        return tup[0][0]

    t = Topology("p", IterableSpout(["apple", "avocado", "banana", "cherry", "cranberry", "apricot"])
                 | chunk(first_letter) | Echo())
    assert emitted(t, "echo") == [
        ([["apple"], ["avocado"]],), ([["banana"]],), ([["cherry"], ["cranberry"]],), ([["apricot"]],)]
    assert set(keys) == {Tuple}


@pytest.mark.parametrize("bad", [0, -2, "3", None, True])
def test_chunk_needs_a_positive_size_or_a_function(bad):
    with pytest.raises(ComponentError):
        chunk(bad)


def test_chunk_is_one_bolt_holding_its_inputs():
    (node,) = chunk(5).nodes
    assert isinstance(node.obj, ChunkBolt) and node.obj.size == 5 and node.obj.auto_ack is False


def test_a_failed_batch_replays_every_input_of_that_batch_and_the_output_is_complete():
    seen = []

    def watch(n):
        seen.append(n)
        return n

    class FailFirstBatch(Bolt):
        def __init__(self):
            self.failed = False

        def process(self, tup):
            if not self.failed:
                self.failed = True
                raise RuntimeError("first batch")
            self.emit((tup["batch"],))

    spout = Numbers(7)
    t = Topology("p", spout | watch | chunk(3) | FailFirstBatch(), reliability="replay",
                 retry_backoff=0, max_retries=3)
    result = run_local(t)
    # the first batch held 0, 1 and 2: each of their spout tuples came again, nothing else did
    assert sorted(seen) == [0, 0, 1, 1, 2, 2, 3, 4, 5, 6]
    assert result.replayed == 3 and result.given_up == 0
    outputs = [item for (batch,) in result.emitted("fail_first_batch") for (item,) in batch]
    assert sorted(outputs) == list(range(7))
    assert sorted(spout.acked) == list(range(7)) and spout.failed == []
    assert result.completed == 7 and result.exit_code == 0


def test_a_batch_tree_is_complete_only_when_the_batch_is_processed():
    acked_before_batch = []

    class Look(Bolt):
        def process(self, tup):
            acked_before_batch.append(sorted(spout.acked))

    spout = Numbers(4)
    run_local(Topology("p", spout | chunk(2) | Look(), reliability="confirm"))
    # when a batch arrives, none of its own inputs is acked yet
    assert acked_before_batch == [[], [0, 1]]
    assert sorted(spout.acked) == [0, 1, 2, 3]


# -- errors --------------------------------------------------------------------------------

def test_a_topology_that_starts_with_a_bolt_runs_only_once_fed_naming_its_entry():
    open_topology = Topology("p", Echo() | double)  # a reusable sub-graph (see test_compose.py)
    with pytest.raises(TopologyError) as info:
        open_topology.validate()
    assert "'echo'" in str(info.value) and "producer | topology" in str(info.value)
    with pytest.raises(TopologyError, match="'double'.*producer \\| topology"):
        run_local(Topology("p", component(double) | Echo()))


def test_an_open_topology_can_be_validated_for_show_but_a_bolt_without_input_still_cannot():
    open_topology = Topology("p", Echo() | double)
    assert open_topology.validate(allow_open=True) is open_topology
    open_topology.bolt("stray", double)
    with pytest.raises(TopologyError, match="'stray' subscribes to nothing"):
        open_topology.validate(allow_open=True)


def test_a_bolt_at_the_head_of_a_pipe_fed_to_a_topology_is_refused_naming_it():
    with pytest.raises(TopologyError) as info:
        (Echo() | double).compile_into(Topology("p"))
    assert "'echo'" in str(info.value) and "no input" in str(info.value)


def test_a_spout_in_the_middle_is_refused_naming_it_and_its_source():
    with pytest.raises(TopologyError) as info:
        Topology("p", IterableSpout([1]) | double | Numbers(3))
    assert "'numbers'" in str(info.value) and "double" in str(info.value)


def test_an_iterable_in_the_middle_is_refused_as_a_spout():
    with pytest.raises(TopologyError, match="'range'.*spout"):
        Topology("p", IterableSpout([1]) | double | range(3))


def test_nothing_can_be_piped_into_a_spout_from_a_list():
    with pytest.raises(ComponentError, match="spout"):
        [Echo(), Echo()] | Numbers(1)


def test_a_tuple_in_a_pipe_is_refused_as_ambiguous():
    with pytest.raises(TopologyError, match="ambiguous"):
        IterableSpout([1]) | (Echo(), Echo())


def test_an_object_that_is_no_component_is_refused_in_a_pipe():
    with pytest.raises(ComponentError):
        IterableSpout([1]) | 42


def test_empty_branches_are_refused():
    for make in (broadcast, merge, route):
        with pytest.raises(TopologyError):
            make()
