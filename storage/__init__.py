"""Storage: the msgpack codec, the replay log (in memory, or durable in LMDB), dead letters,
source positions, run metadata and the state directory's lock. Imports nothing of the other
parts; all LMDB code lives here. `ReplayLog` (log.py) is the log's protocol."""
from .codec import CodecError, decode, encode, normalize
from .durable import (DURABILITY, DurableLog, StorageError, TopologyMismatch, consumer_positions,
                      describe_change, register_consumer)
from .env import DamagedLog
from .lock import StateDirInUse, StateLock, holder
from .log import DeadLetter, MemoryLog, Record, ReplayLog, Run

__all__ = ["CodecError", "DURABILITY", "DamagedLog", "DeadLetter", "DurableLog", "MemoryLog", "Record", "ReplayLog", "Run",
           "StateDirInUse", "StateLock", "StorageError", "TopologyMismatch", "consumer_positions", "decode",
           "describe_change", "encode", "holder", "normalize", "register_consumer"]
