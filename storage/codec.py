"""msgpack: the one encoding of tuples, on the wire between processes and in the log.

Values that msgpack cannot encode raise `CodecError` naming the component, stream and field,
so the user sees where a bad value came from, not a bare TypeError from deep inside.
"""
import msgpack

from consecution.errors import ConsecutionError

SCALARS = frozenset((str, int, float, bool, type(None), bytes))  # pass through msgpack unchanged


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
    scalars = SCALARS
    for value in values:
        if value.__class__ not in scalars:
            break
    else:
        return values
    out = []
    for position, value in enumerate(values):
        if value.__class__ in scalars:
            out.append(value)
            continue
        try:
            out.append(decode(encode(value)))
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(
                f"{_where(component, stream, fields, position)}: {type(value).__name__} value "
                f"{value!r} cannot be encoded as msgpack ({exc}); use str, int, float, bool, None, "
                "bytes, lists and dicts of them") from None
    return tuple(out)
