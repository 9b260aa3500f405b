"""The topology model: tuples, the builder, groupings, validation, iterables and functions as
components, and the fingerprint. Nothing here runs a topology; see test_pipes.py and
test_runtime.py for where tuples go."""
import pytest

from consecution.errors import ConsecutionError
from consecution.topology import (DEFAULT, FAILURE_FIELDS, FAILURES, Bolt, ComponentError,
                                  CycleError, DuplicateNameError, FieldError, Fields,
                                  FunctionBolt, IterableSpout, Spout, Topology, TopologyError,
                                  Tuple, UnknownSourceError)


# -- components used below -----------------------------------------------------------------

class Lines(Spout):
    fields = ("line",)

    def next_tuple(self):
        raise StopIteration


class Events(Spout):
    streams = {"default": ("kind", "payload"), "errors": ("line", "reason")}

    def next_tuple(self):
        raise StopIteration


class Split(Bolt):
    fields = ("word",)

    def process(self, tup):
        for word in tup["line"].split():
            self.emit((word,))


class Count(Bolt):
    fields = ("word", "count")

    def process(self, tup):
        pass


class StatefulCount(Count):
    stateful = True


def upper(line):
    return line.upper()


def wordcount(name="wordcount", split_parallelism=2, count=None, count_parallelism=2,
              grouping="fields", split_fields=("word",)):
    """A fresh word-count topology; arguments change one thing at a time."""
    split = Split()
    split.fields = split_fields
    t = Topology(name)
    t.spout("lines", Lines())
    t.bolt("split", split, parallelism=split_parallelism).shuffle_grouping("lines")
    declarer = t.bolt("count", count if count is not None else Count(), parallelism=count_parallelism)
    if grouping == "fields":
        declarer.fields_grouping("split", "word")
    else:
        getattr(declarer, f"{grouping}_grouping")("split")
    return t


# -- Tuple ---------------------------------------------------------------------------------

def make_tuple():
    return Tuple(("hello", 3), stream="words", source="split", task=2, id=12345,
                 fields=Fields(("word", "count")))


def test_tuple_reads_a_field_by_name():
    tup = make_tuple()
    assert tup["word"] == "hello" and tup["count"] == 3


def test_tuple_reads_a_value_by_position_including_negative_positions():
    tup = make_tuple()
    assert tup[0] == "hello" and tup[1] == 3 and tup[-1] == 3


def test_tuple_exposes_values_fields_stream_source_and_id():
    tup = make_tuple()
    assert tup.values == ("hello", 3)
    assert tuple(tup.fields) == ("word", "count")
    assert tup.stream == "words"
    assert tup.source == "split"
    assert tup.id == 12345
    assert "word" in tup.fields and "line" not in tup.fields


def test_tuple_defaults_to_the_default_stream_and_no_id():
    tup = Tuple((1,))
    assert tup.stream == DEFAULT == "default" and tup.id is None


def test_unknown_field_raises_key_error_naming_the_field_and_the_source():
    tup = make_tuple()
    with pytest.raises(KeyError) as info:
        tup["line"]
    message = str(info.value)
    assert "'line'" in message and "'split'" in message
    assert "'words'" in message  # the stream, too


def test_position_out_of_range_is_an_index_error():
    with pytest.raises(IndexError):
        make_tuple()[2]


def test_undeclared_fields_name_a_one_value_tuple_value():
    tup = Tuple((42,), source="numbers")
    assert tuple(tup.fields) == ("value",)
    assert tup["value"] == 42 and tup[0] == 42


def test_undeclared_fields_leave_a_longer_tuple_positional():
    tup = Tuple((1, 2), source="pairs")
    assert tuple(tup.fields) == ()
    assert tup[0] == 1 and tup[-1] == 2
    with pytest.raises(KeyError, match="value"):
        tup["value"]


def test_fields_are_unique_non_empty_strings():
    assert Fields(("a", "b")).index == {"a": 0, "b": 1}
    for bad in (("a", "a"), ("",), (1,)):
        with pytest.raises(FieldError):
            Fields(bad)


# -- declaring -----------------------------------------------------------------------------

def test_spout_and_bolt_are_declared_with_their_name_object_and_parallelism():
    lines, split = Lines(), Split()
    t = Topology("wc")
    component = t.spout("lines", lines, parallelism=3)
    declarer = t.bolt("split", split, parallelism=4)
    assert component is t.components["lines"]
    assert component.kind == "spout" and component.obj is lines and component.parallelism == 3
    assert declarer.name == "split" and declarer.component is t.components["split"]
    assert declarer.component.kind == "bolt" and declarer.component.obj is split
    assert declarer.component.parallelism == 4
    assert [c.name for c in t.spouts] == ["lines"] and [c.name for c in t.bolts] == ["split"]


def test_parallelism_defaults_to_one():
    t = Topology("wc")
    assert t.spout("lines", Lines()).parallelism == 1
    assert t.bolt("split", Split()).component.parallelism == 1


def test_declared_fields_and_streams_become_the_components_streams():
    t = Topology("wc")
    assert t.spout("lines", Lines()).streams == {"default": ("line",)}
    events = t.spout("events", Events())
    assert events.streams == {"default": ("kind", "payload"), "errors": ("line", "reason")}
    assert t.bolt("upper", upper, fields=("line",)).component.streams == {"default": ("line",)}
    assert t.bolt("raw", upper).component.streams == {"default": None}  # undeclared


def test_fields_given_as_one_string_are_refused_naming_the_component():
    t = Topology("wc")
    with pytest.raises(FieldError, match="'upper'"):
        t.bolt("upper", upper, fields="line")


GROUPINGS = [
    # (method, extra positional args, the Grouping's kind, its fields)
    ("shuffle_grouping", (), "shuffle", ()),
    ("fields_grouping", ("word",), "fields", ("word",)),
    ("all_grouping", (), "all", ()),
    ("global_grouping", (), "global", ()),
    ("direct_grouping", (), "direct", ()),
    ("local_or_shuffle_grouping", (), "local_or_shuffle", ()),
    ("none_grouping", (), "none", ()),
]


@pytest.mark.parametrize("method, args, kind, fields", GROUPINGS)
def test_each_grouping_records_its_kind_source_and_the_default_stream(method, args, kind, fields):
    t = Topology("wc")
    t.spout("lines", Lines())
    t.bolt("split", Split()).shuffle_grouping("lines")
    declarer = t.bolt("count", Count())
    getattr(declarer, method)("split", *args)
    (grouping,) = t.components["count"].inputs
    assert (grouping.kind, grouping.source, grouping.stream, grouping.fields) == (kind, "split", "default", fields)
    t.validate()


@pytest.mark.parametrize("method, args, kind, fields", GROUPINGS)
def test_each_grouping_takes_a_stream(method, args, kind, fields):
    t = Topology("wc")
    t.spout("events", Events())
    declarer = t.bolt("handle", Count())
    field_args = ("line",) if args else ()
    getattr(declarer, method)("events", *field_args, stream="errors")
    (grouping,) = t.components["handle"].inputs
    assert (grouping.kind, grouping.source, grouping.stream) == (kind, "events", "errors")
    assert grouping.fields == field_args
    t.validate()


def test_custom_grouping_keeps_its_function_and_takes_a_stream():
    def pick(tup, n):
        return 0

    t = Topology("wc")
    t.spout("events", Events())
    t.bolt("a", Count()).custom_grouping("events", pick)
    t.bolt("b", Count()).custom_grouping("events", pick, stream="errors")
    (a,), (b,) = t.components["a"].inputs, t.components["b"].inputs
    assert (a.kind, a.source, a.stream, a.fn) == ("custom", "events", "default", pick)
    assert (b.kind, b.source, b.stream, b.fn) == ("custom", "events", "errors", pick)
    t.validate()


def test_custom_grouping_needs_a_function_naming_the_bolt():
    t = Topology("wc")
    t.spout("lines", Lines())
    with pytest.raises(ComponentError, match="'split'"):
        t.bolt("split", Split()).custom_grouping("lines", "not a function")


def test_fields_grouping_accepts_the_fields_as_one_list():
    t = Topology("wc")
    t.spout("events", Events())
    t.bolt("count", Count()).fields_grouping("events", ["kind", "payload"])
    assert t.components["count"].inputs[0].fields == ("kind", "payload")
    t.validate()


def test_fields_grouping_without_a_field_is_refused_naming_the_bolt():
    t = Topology("wc")
    t.spout("lines", Lines())
    with pytest.raises(FieldError, match="'count'"):
        t.bolt("count", Count()).fields_grouping("lines")


def test_groupings_chain_on_the_declarer():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.spout("events", Events())
    declarer = t.bolt("count", Count())
    assert declarer.shuffle_grouping("lines") is declarer
    declarer.all_grouping("events").global_grouping("events", stream="errors")
    kinds = [(g.kind, g.source, g.stream) for g in t.components["count"].inputs]
    assert kinds == [("shuffle", "lines", "default"), ("all", "events", "default"),
                     ("global", "events", "errors")]


def test_a_bolt_may_subscribe_to_several_sources_and_streams():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.spout("events", Events())
    t.bolt("split", Split()).shuffle_grouping("lines")
    (t.bolt("sink", Count())
        .shuffle_grouping("split")
        .fields_grouping("events", "kind")
        .shuffle_grouping("events", stream="errors"))
    t.validate()
    assert [c.name for c, _ in t.subscribers("events", "errors")] == ["sink"]
    assert [c.name for c, _ in t.subscribers("split")] == ["sink"]
    assert len(t.components["sink"].inputs) == 3


def test_a_grouping_names_its_source_by_name():
    t = Topology("wc")
    lines = t.spout("lines", Lines())
    with pytest.raises(UnknownSourceError, match="'split'"):
        t.bolt("split", Split()).shuffle_grouping(lines)


def test_failure_grouping_subscribes_to_the_tuples_given_up():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.bolt("split", Split()).shuffle_grouping("lines")
    t.bolt("alert", Count()).failure_grouping()
    (grouping,) = t.components["alert"].inputs
    assert (grouping.kind, grouping.source, grouping.stream) == ("failure", FAILURES, "default")
    assert "error" in FAILURE_FIELDS and "traceback" in FAILURE_FIELDS and "values" in FAILURE_FIELDS
    t.validate()  # the failure stream is no declared component, and that is fine


# -- any iterable is a spout, any function a bolt ------------------------------------------

def numbers():
    yield from (1, 2, 3)


@pytest.mark.parametrize("iterable", [[1, 2, 3], range(1, 4), numbers(), (1, 2, 3)],
                         ids=["list", "range", "generator", "tuple"])
def test_any_iterable_is_accepted_as_a_spout(iterable):
    t = Topology("it")
    component = t.spout("numbers", iterable)
    assert isinstance(component.obj, IterableSpout) and component.obj.iterable is iterable
    t.bolt("double", lambda x: x * 2).shuffle_grouping("numbers")
    t.validate()


def test_an_iterable_spout_takes_fields():
    t = Topology("it")
    assert t.spout("numbers", [1, 2], fields=("n",)).streams == {"default": ("n",)}


def test_a_plain_function_is_accepted_as_a_bolt():
    t = Topology("fn")
    t.spout("lines", ["a"])
    component = t.bolt("upper", upper).shuffle_grouping("lines").component
    assert isinstance(component.obj, FunctionBolt) and component.obj.fn is upper
    t.validate()


def test_function_bolt_takes_fields_from_the_functions_fields_attribute():
    def split(line):
        yield from line.split()
    split.fields = ("word",)

    t = Topology("fn")
    assert t.bolt("split", split).component.streams == {"default": ("word",)}


def run_iterable_spout(spout, n_calls):
    """Call next_tuple up to `n_calls` times with a stub `_emit`; return what it emitted."""
    got = []
    spout._emit = lambda values, stream, msg_id: got.append(values)
    for _ in range(n_calls):
        try:
            spout.next_tuple()
        except StopIteration:
            break
    return got


def test_iterable_spout_emits_one_tuple_per_item_a_tuple_item_gives_the_values():
    spout = IterableSpout([1, ("a", 2), "word"])
    spout.open(None)
    assert run_iterable_spout(spout, 10) == [(1,), ("a", 2), ("word",)]


def test_iterable_spout_raises_stop_iteration_when_exhausted():
    spout = IterableSpout([1])
    spout.open(None)
    spout._emit = lambda values, stream, msg_id: None
    spout.next_tuple()
    with pytest.raises(StopIteration):
        spout.next_tuple()


def test_iterable_spout_position_is_the_number_of_items_taken():
    spout = IterableSpout(range(10))
    spout.open(None)
    assert spout.position() == 0
    run_iterable_spout(spout, 3)
    assert spout.position() == 3
    run_iterable_spout(spout, 100)
    assert spout.position() == 10  # exhausted: every item taken, none counted twice


@pytest.mark.parametrize("make", [lambda: list(range(10)), lambda: range(10)], ids=["list", "range"])
def test_iterable_spout_seek_n_skips_n_items(make):
    spout = IterableSpout(make())
    spout.open(None)
    spout.seek(4)
    assert spout.position() == 4
    assert run_iterable_spout(spout, 2) == [(4,), (5,)]
    assert spout.position() == 6


def test_iterable_spout_seek_starts_the_iterable_again():
    spout = IterableSpout([10, 20, 30, 40])
    spout.open(None)
    run_iterable_spout(spout, 3)
    spout.seek(1)
    assert spout.position() == 1
    assert run_iterable_spout(spout, 10) == [(20,), (30,), (40,)]


def test_iterable_spout_resumes_after_a_restart_at_its_stored_position():
    first = IterableSpout(range(6))
    first.open(None)
    before = run_iterable_spout(first, 2)
    stored = first.position()
    again = IterableSpout(range(6))  # a new process: open, then seek to the stored position
    again.open(None)
    again.seek(stored)
    assert before + run_iterable_spout(again, 10) == [(i,) for i in range(6)]


def test_iterable_spout_seek_past_the_end_leaves_nothing():
    spout = IterableSpout([1, 2])
    spout.open(None)
    spout.seek(5)
    assert spout.position() == 2 and run_iterable_spout(spout, 3) == []


def test_iterable_spout_open_starts_from_the_beginning():
    spout = IterableSpout([1, 2, 3])
    spout.open(None)
    run_iterable_spout(spout, 2)
    spout.open(None)
    assert spout.position() == 0 and run_iterable_spout(spout, 1) == [(1,)]


def test_emit_outside_a_run_raises_a_component_error():
    with pytest.raises(ComponentError, match="Split"):
        Split().emit(("word",))
    with pytest.raises(ComponentError):
        Lines().emit(("line",))


# -- validation: each error has its class and names the place ------------------------------

def test_unknown_source_is_refused_naming_bolt_and_source():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.bolt("split", Split()).shuffle_grouping("lnes")
    with pytest.raises(UnknownSourceError) as info:
        t.validate()
    message = str(info.value)
    assert "'split'" in message and "'lnes'" in message
    assert "lines" in message  # what is declared, to spot the typo


def test_unknown_stream_is_refused_naming_bolt_stream_and_source():
    t = Topology("wc")
    t.spout("events", Events())
    t.bolt("handle", Count()).shuffle_grouping("events", stream="warnings")
    with pytest.raises(UnknownSourceError) as info:
        t.validate()
    message = str(info.value)
    assert "'handle'" in message and "'warnings'" in message and "'events'" in message
    assert "errors" in message  # the streams it does declare


def test_a_two_component_cycle_is_refused_naming_both():
    t = Topology("loop")
    t.spout("s", Lines())
    t.bolt("a", Split()).shuffle_grouping("s").shuffle_grouping("b")
    t.bolt("b", Split()).shuffle_grouping("a")
    with pytest.raises(CycleError) as info:
        t.validate()
    assert "a -> b -> a" in str(info.value) and "'loop'" in str(info.value)


def test_a_three_component_cycle_is_refused_naming_every_component_of_it():
    t = Topology("loop")
    t.spout("s", Lines())
    t.bolt("a", Split()).shuffle_grouping("s").shuffle_grouping("c")
    t.bolt("b", Split()).shuffle_grouping("a")
    t.bolt("c", Split()).shuffle_grouping("b")
    t.bolt("outside", Split()).shuffle_grouping("c")
    with pytest.raises(CycleError) as info:
        t.validate()
    message = str(info.value)
    assert "a -> c -> b -> a" in message or "a -> b -> c -> a" in message
    assert "outside" not in message and "s ->" not in message


def test_a_bolt_subscribing_to_itself_is_a_cycle():
    t = Topology("loop")
    t.spout("s", Lines())
    t.bolt("echo", Split()).shuffle_grouping("s").shuffle_grouping("echo")
    with pytest.raises(CycleError, match="echo -> echo"):
        t.validate()


def test_duplicate_name_is_refused_naming_it():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.bolt("split", Split()).shuffle_grouping("lines")
    with pytest.raises(DuplicateNameError, match="'split'"):
        t.bolt("split", Split())
    with pytest.raises(DuplicateNameError, match="'lines'"):
        t.bolt("lines", Split())  # a bolt may not take a spout's name either
    with pytest.raises(DuplicateNameError, match="'lines'"):
        t.spout("lines", Lines())


def test_undeclared_field_in_a_fields_grouping_is_refused_naming_bolt_field_source_and_stream():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.bolt("count", Count()).fields_grouping("lines", "word")
    with pytest.raises(FieldError) as info:
        t.validate()
    message = str(info.value)
    assert "'count'" in message and "'word'" in message and "'lines'" in message
    assert "'default'" in message and "'line'" in message  # what the stream does declare


def test_undeclared_field_on_another_stream_is_refused_naming_that_stream():
    t = Topology("wc")
    t.spout("events", Events())
    t.bolt("count", Count()).fields_grouping("events", "kind", stream="errors")
    with pytest.raises(FieldError) as info:
        t.validate()
    assert "'kind'" in str(info.value) and "'errors'" in str(info.value)


def test_fields_grouping_on_a_source_without_declared_fields_says_to_declare_them():
    t = Topology("wc")
    t.spout("numbers", [1, 2])
    t.bolt("count", Count()).fields_grouping("numbers", "n")
    with pytest.raises(FieldError) as info:
        t.validate()
    assert "'n'" in str(info.value) and "'numbers'" in str(info.value) and "fields=" in str(info.value)


def test_fields_grouping_on_value_of_an_undeclared_stream_is_accepted():
    t = Topology("wc")
    t.spout("numbers", [1, 2])
    t.bolt("count", Count()).fields_grouping("numbers", "value")
    t.validate()


@pytest.mark.parametrize("parallelism", [0, -1, "2", 1.5, True, None])
def test_bad_parallelism_is_refused_naming_component_and_value(parallelism):
    t = Topology("wc")
    with pytest.raises(ComponentError) as info:
        t.bolt("split", Split(), parallelism=parallelism)
    assert "'split'" in str(info.value) and repr(parallelism) in str(info.value)
    with pytest.raises(ComponentError, match="'lines'"):
        t.spout("lines", Lines(), parallelism=parallelism)
    assert t.components == {}  # nothing half-declared


def test_an_iterable_spout_with_parallelism_is_refused():
    t = Topology("wc")
    with pytest.raises(ComponentError, match="'numbers'"):
        t.spout("numbers", [1, 2, 3], parallelism=2)


def test_a_spout_passed_to_bolt_is_refused_naming_the_component():
    t = Topology("wc")
    with pytest.raises(ComponentError) as info:
        t.bolt("lines", Lines())
    assert "'lines'" in str(info.value) and "topology.spout()" in str(info.value)


def test_a_bolt_passed_to_spout_is_refused_naming_the_component():
    t = Topology("wc")
    with pytest.raises(ComponentError) as info:
        t.spout("split", Split())
    assert "'split'" in str(info.value) and "topology.bolt()" in str(info.value)


def test_a_function_passed_to_spout_is_refused_naming_the_component():
    t = Topology("wc")
    with pytest.raises(ComponentError) as info:
        t.spout("numbers", numbers)  # the generator function, not a generator
    assert "'numbers'" in str(info.value) and "function" in str(info.value)


def test_a_string_passed_as_a_spout_is_refused_naming_the_component():
    t = Topology("wc")
    with pytest.raises(ComponentError, match="'lines'"):
        t.spout("lines", "one\ntwo\n")
    with pytest.raises(ComponentError, match="list"):
        IterableSpout("one\ntwo\n")  # says to wrap it in a list


def test_an_object_that_is_neither_bolt_nor_function_is_refused_as_a_bolt():
    t = Topology("wc")
    with pytest.raises(ComponentError, match="'count'"):
        t.bolt("count", 42)
    with pytest.raises(ComponentError, match="topology.spout"):
        t.bolt("numbers", [1, 2, 3])  # an iterable is a spout


@pytest.mark.parametrize("reliability", ["replay ", "full", None, 3])
def test_bad_reliability_is_refused_naming_the_topology_and_the_levels(reliability):
    with pytest.raises(TopologyError) as info:
        Topology("wc", reliability=reliability)
    message = str(info.value)
    assert "'wc'" in message and repr(reliability) in message
    assert all(level in message for level in ("none", "confirm", "track", "replay"))


@pytest.mark.parametrize("reliability", ["none", "confirm", "track", "replay"])
def test_every_reliability_level_is_accepted(reliability):
    assert Topology("wc", reliability=reliability).reliability == reliability


def test_default_reliability_settings():
    t = Topology("wc")
    assert (t.reliability, t.max_retries, t.message_timeout, t.max_pending) == ("replay", 3, 30.0, None)


@pytest.mark.parametrize("setting, value", [("max_retries", -1), ("max_retries", 1.5),
                                            ("message_timeout", 0), ("message_timeout", "30"),
                                            ("message_timeout", float("nan")), ("retry_backoff", float("nan")),
                                            ("max_pending", 0), ("retry_backoff", -1)])
def test_bad_reliability_settings_are_refused_naming_the_setting(setting, value):
    with pytest.raises(TopologyError, match=setting):
        Topology("wc", **{setting: value})


def test_a_topology_without_spout_is_refused_naming_it():
    t = Topology("empty")
    with pytest.raises(TopologyError, match="'empty'.*no spout"):
        t.validate()


def test_a_bolt_with_no_inputs_is_refused_naming_it():
    t = Topology("wc")
    t.spout("lines", Lines())
    t.bolt("split", Split())
    with pytest.raises(UnknownSourceError) as info:
        t.validate()
    assert "'split'" in str(info.value) and "subscribes to nothing" in str(info.value)


@pytest.mark.parametrize("name", ["", "1st", "a b", "a/b", "__x", None])
def test_bad_component_names_are_refused(name):
    with pytest.raises(ComponentError):
        Topology("wc").spout(name, Lines())


@pytest.mark.parametrize("name", ["", "my topology", "../up", None])
def test_bad_topology_names_are_refused(name):
    with pytest.raises(TopologyError):
        Topology(name)


def test_every_topology_error_is_a_consecution_error():
    for cls in (ComponentError, CycleError, DuplicateNameError, FieldError, UnknownSourceError):
        assert issubclass(cls, TopologyError)
    assert issubclass(TopologyError, ConsecutionError)


def test_validate_returns_the_topology():
    t = wordcount()
    assert t.validate() is t


# -- fingerprint and order -----------------------------------------------------------------

def test_fingerprint_is_equal_for_two_separately_built_identical_topologies():
    a, b = wordcount(), wordcount()
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16 and int(a.fingerprint(), 16) >= 0


def test_fingerprint_does_not_depend_on_declaration_order():
    a = Topology("wc")
    a.spout("lines", Lines())
    a.spout("events", Events())
    a.bolt("sink", Count()).shuffle_grouping("lines").shuffle_grouping("events")
    b = Topology("wc")
    b.spout("events", Events())
    b.spout("lines", Lines())
    b.bolt("sink", Count()).shuffle_grouping("events").shuffle_grouping("lines")
    assert a.fingerprint() == b.fingerprint()


def test_fingerprint_changes_when_the_topology_name_changes():
    assert wordcount("wc").fingerprint() != wordcount("wc2").fingerprint()


def test_fingerprint_changes_when_a_component_name_changes():
    a = wordcount()
    b = Topology("wordcount")
    b.spout("lines", Lines())
    b.bolt("splitter", Split(), parallelism=2).shuffle_grouping("lines")
    b.bolt("count", Count(), parallelism=2).fields_grouping("splitter", "word")
    assert a.fingerprint() != b.fingerprint()


@pytest.mark.parametrize("grouping", ["shuffle", "all", "global"])
def test_fingerprint_changes_when_a_grouping_changes(grouping):
    assert wordcount(grouping="fields").fingerprint() != wordcount(grouping=grouping).fingerprint()


def test_fingerprint_changes_when_a_streams_fields_change():
    a = wordcount(split_fields=("word",))
    b = wordcount(split_fields=("word", "line"))
    assert a.fingerprint() != b.fingerprint()


def test_fingerprint_changes_when_a_stream_is_added():
    a = Topology("wc")
    a.spout("lines", Lines())
    b = Topology("wc")
    b.spout("lines", Lines(), streams={"errors": ("reason",)})
    assert a.fingerprint() != b.fingerprint()


def test_fingerprint_ignores_the_parallelism_of_a_non_stateful_bolt():
    assert wordcount(count_parallelism=2).fingerprint() == wordcount(count_parallelism=5).fingerprint()
    assert wordcount(split_parallelism=1).fingerprint() == wordcount(split_parallelism=8).fingerprint()


def test_fingerprint_changes_with_the_parallelism_of_a_stateful_bolt():
    two = wordcount(count=StatefulCount(), count_parallelism=2)
    three = wordcount(count=StatefulCount(), count_parallelism=3)
    assert two.fingerprint() != three.fingerprint()
    assert two.fingerprint() == wordcount(count=StatefulCount(), count_parallelism=2).fingerprint()


def test_fingerprint_ignores_reliability_settings():
    a = Topology("wc", max_retries=1, message_timeout=5)
    b = Topology("wc", max_retries=7, message_timeout=60)
    for t in (a, b):
        t.spout("lines", Lines())
    assert a.fingerprint() == b.fingerprint()


def test_topological_order_puts_sources_before_subscribers():
    t = Topology("wc")
    # declared in reverse: every bolt before the component it subscribes to
    t.bolt("count", Count()).fields_grouping("split", "word").shuffle_grouping("lines")
    t.bolt("split", Split()).shuffle_grouping("lines")
    t.spout("lines", Lines())
    t.validate()
    order = t.topological_order()
    assert sorted(order) == ["count", "lines", "split"]
    assert order.index("lines") < order.index("split") < order.index("count")


def test_topological_order_keeps_declaration_order_otherwise():
    t = wordcount()
    t.bolt("audit", Count()).shuffle_grouping("lines")
    assert t.topological_order() == ["lines", "split", "count", "audit"]
