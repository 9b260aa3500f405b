"""msgpack: the one encoding of tuples, on the wire between processes and in the log.

Values that msgpack cannot encode raise `CodecError` naming the component, stream and field,
so the user sees where a bad value came from, not a bare TypeError from deep inside.
"""
import reprlib

import msgpack

from consecution.errors import ConsecutionError

SCALARS = frozenset((str, float, bool, type(None), bytes))  # pass through msgpack unchanged, any value
INT_MIN, INT_MAX = -2**63, 2**64 - 1  # an int passes too when msgpack can hold it: in this range


def scalar(value):
    """Whether `value` passes through msgpack unchanged (a str, an int msgpack can hold, ...)."""
    cls = value.__class__
    return cls in SCALARS or cls is int and INT_MIN <= value <= INT_MAX


def all_scalars(values):
    """Whether every one of `values` passes through msgpack unchanged (`scalar`, inlined)."""
    for value in values:
        if value.__class__ not in SCALARS and not (value.__class__ is int and INT_MIN <= value <= INT_MAX):
            return False
    return True


class CodecError(ConsecutionError):
    """A value cannot travel as msgpack."""


def encode(obj):
    return msgpack.packb(obj, use_bin_type=True)


def decode(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _where(component, stream, fields, position):
    name = fields[position] if fields is not None and position < len(fields) else f"#{position}"
    return f"component {component!r}, stream {stream!r}, field {name!r}"


def normalize(values, component, stream="default", fields=None):
    """`values` as a tuple, each value as it comes back from msgpack (a tuple inside a value
    becomes a list). Scalars pass through untouched: the common case costs one type check."""
    if values.__class__ is not tuple:
        if not isinstance(values, (list, tuple)):
            raise CodecError(
                f"component {component!r}, stream {stream!r}: values must be a tuple or list, "
                f"got {type(values).__name__} {values!r}")
        values = tuple(values)
    if all_scalars(values):
        return values
    out = []
    for position, value in enumerate(values):
        if scalar(value):
            out.append(value)
            continue
        try:
            out.append(decode(encode(value)))
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise CodecError(
                f"{_where(component, stream, fields, position)}: {type(value).__name__} value "
                f"{reprlib.repr(value)} cannot be encoded as msgpack ({exc}); use str, int (of at most "
                "64 bits), float, bool, None, bytes, lists and dicts of them") from None
    return tuple(out)
