"""Values msgpack cannot hold (ints over 64 bits, nesting deeper than it packs): one outcome
in every mode, a CodecError naming the place, and nothing else lost (issue 14)."""
import pytest

from consecution import Bolt, Spout, Topology, UserCodeError
from consecution.runtime import Scheduler
from consecution.storage import CodecError
from consecution.runtime.state import State

MODES = ["single", "thread", "process", "ray"]
BIG = 2**70


class Scale(Bolt):
    fields = ("n", "scaled")

    def process(self, tup):
        n = tup[0]
        self.emit((n, BIG if n == 3 else n * 10))


class Keep(Bolt):
    fields = ("n",)

    def process(self, tup):
        self.emit((tup[0],))


@pytest.mark.parametrize("mode", MODES)
def test_a_bolt_emitting_an_int_over_64_bits_fails_only_that_tuple_naming_the_field(mode, tmp_path):
    t = Topology("big", max_retries=0, retry_backoff=0)
    t.spout("numbers", range(6))
    t.bolt("scale", Scale(), parallelism=2).shuffle_grouping("numbers")
    t.bolt("keep", Keep(), parallelism=2).fields_grouping("scale", "n")
    result = Scheduler(t, mode=mode, workers=2, collect=True, state_dir=str(tmp_path / "s")).run()
    assert sorted(v[0] for v in result.emitted("keep")) == [0, 1, 2, 4, 5]
    assert result.completed == 5 and result.given_up == 1
    from consecution.storage import DurableLog
    log = DurableLog(str(tmp_path / "s"), readonly=True)
    [letter] = log.dead_letters()
    log.close()
    assert letter.component == "scale" and "field 'scaled'" in letter.error and "64 bits" in letter.error


class BigSpout(Spout):
    fields = ("n",)

    def open(self, context):
        self.n = 0

    def next_tuple(self):
        self.n += 1
        if self.n > 3:
            raise StopIteration
        self.emit((BIG if self.n == 2 else self.n,))


@pytest.mark.parametrize("mode", MODES)
def test_a_spout_emitting_an_int_over_64_bits_gets_a_codec_error_naming_the_field(mode, tmp_path):
    t = Topology("bigspout")
    t.spout("numbers", BigSpout())
    t.bolt("keep", Keep()).shuffle_grouping("numbers")
    with pytest.raises(UserCodeError) as info:
        Scheduler(t, mode=mode, workers=2, state_dir=str(tmp_path / "s")).run()
    assert isinstance(info.value.__cause__ or info.value.error, CodecError) or "CodecError" in str(info.value)
    assert "field 'n'" in str(info.value) and "msg_id" not in str(info.value)


def test_state_refuses_an_int_over_64_bits_where_it_is_set():
    state = State(where="state of 'totals' (task 0)")
    state["ok"] = 2**64 - 1
    with pytest.raises(CodecError, match=r"state of 'totals' \(task 0\)\['x'\].*71 bits"):
        state["x"] = BIG
    with pytest.raises(CodecError, match="71 bits"):
        state["y"] = [1, BIG]
    with pytest.raises(CodecError, match="state key must be"):
        state[2**80] = 1
    assert "x" not in state and "y" not in state and state["ok"] == 2**64 - 1


def deep(n):
    value = []
    for _ in range(100_000):
        value = [value]
    return (n, value if n == 1 else n)


@pytest.mark.parametrize("mode", MODES)
def test_a_value_nested_too_deep_fails_its_tuple_with_a_codec_error(mode, tmp_path):
    t = Topology("deep", max_retries=0, retry_backoff=0)
    t.spout("numbers", range(3))
    t.bolt("deep", deep, fields=("n", "v")).shuffle_grouping("numbers")
    result = Scheduler(t, mode=mode, workers=2, collect=True, state_dir=str(tmp_path / "s")).run()
    assert sorted(v[0] for v in result.emitted("deep")) == [0, 2] and result.given_up == 1
    from consecution.storage import DurableLog
    log = DurableLog(str(tmp_path / "s"), readonly=True)
    [letter] = log.dead_letters()
    log.close()
    assert letter.error.startswith("CodecError") and "field 'v'" in letter.error and "recursion" in letter.error
