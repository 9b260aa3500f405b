"""The one LMDB environment of a state directory's log, shared by its stores.

Follows py-lmdb's rules: one Environment per file per process (the log opens it once and
hands it to each store), never carried across fork, short write transactions, no long-lived
readers, and a map that grows on MapFullError instead of failing.
"""
import os

import lmdb

from .errors import StorageError

DURABILITY = ("kill", "power")
INITIAL_MAP = 64 << 20
MAX_DBS = 8


class DamagedLog(StorageError):
    """The log's file is damaged: it cannot be read without losing what it holds."""

    def __init__(self, file, why):
        super().__init__(f"the log {file} is damaged: {why}. Restore it from a backup, or move the state "
                         "directory away to start afresh (its pending records, dead letters, positions and "
                         "state are then lost)")
        self.file = file


class LogEnvironment:
    """`<state dir>/log`, opened once. `lmdb` is the py-lmdb Environment itself."""

    def __init__(self, state_dir, durability="kill", readonly=False, map_size=INITIAL_MAP):
        """Raises StorageError, naming the directory, for an unknown durability, a read-only
        open of a directory that holds no log, or a log that LMDB cannot open."""
        if durability not in DURABILITY:
            raise StorageError(f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}")
        self.state_dir = state_dir
        self.readonly = readonly
        data = os.path.join(state_dir, "log")
        if readonly:
            try:
                os.stat(os.path.join(data, "data.mdb"))
            except FileNotFoundError:
                raise StorageError(f"{state_dir} holds no consecution state (no {data}/data.mdb)") from None
            except OSError as exc:  # not that it is missing: that it cannot be looked at
                raise StorageError(f"cannot read the state in {state_dir}: {exc.strerror or exc} "
                                   f"({data}/data.mdb)") from None
        try:
            os.makedirs(data, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot use {state_dir!r} as a state directory: {exc.strerror or exc}") from None
        sync = durability == "power"  # "kill": writes reach the OS before commit returns
        file = os.path.join(data, "data.mdb")
        if os.path.exists(file) and os.path.getsize(file) == 0:  # LMDB would start afresh on it
            raise DamagedLog(file, "it is empty (truncated)")
        try:
            self.lmdb = lmdb.open(data, map_size=map_size, max_dbs=MAX_DBS, subdir=True, sync=sync,
                                  metasync=sync, readonly=readonly, lock=True, readahead=False)
        except lmdb.Error as exc:
            raise StorageError(f"cannot open the log in {data}: {exc}") from None
        # LMDB maps the file and trusts its meta page: pages past the end of a truncated file
        # would kill the process with SIGBUS when read. Compare the two before any read.
        used = (self.lmdb.info()["last_pgno"] + 1) * self.lmdb.stat()["psize"]
        size = os.path.getsize(file)
        if size < used:
            self.lmdb.close()
            raise DamagedLog(file, f"it holds {size} bytes where its own header says {used} (truncated)")

    def database(self, name, optional=False):
        """The handle of database `name`, created unless read-only. `optional`: None when a
        read-only log lacks it (written by a version without this database)."""
        try:
            return self.lmdb.open_db(name, create=not self.readonly)
        except lmdb.NotFoundError:
            if optional:
                return None
            raise

    def reading(self):
        """A read transaction, for a `with` block. A reader in another process (the `Output`
        spout reads the producer's log) sees the map grow when the writer resizes it: adopt
        the new size."""
        try:
            return self.lmdb.begin()
        except lmdb.MapResizedError:
            self.lmdb.set_mapsize(0)
            return self.lmdb.begin()

    def write(self, fill):
        """Run `fill(txn)` in one write transaction and commit it; all or nothing. When the map
        is full the transaction is dropped, the map doubled and `fill` called again on a fresh
        transaction, so `fill` must write from what it was given, not from what it wrote."""
        while True:
            try:
                with self.lmdb.begin(write=True) as txn:
                    fill(txn)
                return
            except lmdb.MapFullError:
                self.lmdb.set_mapsize(self.lmdb.info()["map_size"] * 2)
            except lmdb.Error as exc:
                if "commit" not in str(exc) and not isinstance(exc, lmdb.DiskError):
                    raise  # not the write of the commit: the caller's error, or a damaged log
                raise StorageError(f"cannot write the log in {self.state_dir} ({exc}): the disk may be full or "
                                   "failing. This commit was not written; everything committed before it is "
                                   "kept and replayed: free some space and run again") from None

    def clear_stale_readers(self):
        """Free the reader slots of processes that died."""
        self.lmdb.reader_check()

    def close(self):
        self.lmdb.close()
