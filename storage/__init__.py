"""Storage: the msgpack codec, the replay log's records, dead letters (and, with the durable
log, source positions, state checkpoints and run metadata in LMDB). Imports nothing of the
other parts."""
from .codec import CodecError, decode, encode, normalize
from .log import DeadLetter, MemoryLog, Record

__all__ = ["CodecError", "DeadLetter", "MemoryLog", "Record", "decode", "encode", "normalize"]
