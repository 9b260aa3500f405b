"""The state directory's lock: one run at a time.

An exclusive `flock` on `<state dir>/lock`, holding the pid of the run. The kernel drops it
when the process dies, however it dies, so a restart after `kill -9` never finds a stale lock.
The descriptor is not inherited by programs the run executes (close-on-exec); worker processes
that fork must close it (`StateLock.close_in_child`).
"""
import fcntl
import os

from .errors import StorageError


class StateDirInUse(StorageError):
    """Another process holds the state directory."""


class StateLock:
    def __init__(self, path):
        self.path = path
        self.file = os.path.join(path, "lock")
        self.fd = None

    def acquire(self):
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StorageError(f"cannot use {self.path!r} as a state directory: it is a file")
        try:
            os.makedirs(self.path, exist_ok=True)
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # a file in the way, no permission, a read-only file system
            raise StorageError(f"cannot use {self.path!r} as a state directory: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirInUse(
                f"state directory {self.path} is in use by a running topology (pid {holder(self.path)}); "
                "stop that run first, or give this one another --state-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    close_in_child = release

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def holder(path):
    """The pid of the run holding the state directory, or None if no run holds it."""
    file = os.path.join(path, "lock")
    if not os.path.exists(file):
        return None
    fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
