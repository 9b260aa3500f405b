"""Stdin and File: one tuple per line, read without ever blocking the scheduler."""
import os
import select
import sys
import time

from consecution.errors import ConsecutionError
from consecution.topology import Spout

__all__ = ["Stdin", "File"]

CHUNK = 1 << 16


class SourceError(ConsecutionError):
    """A source cannot be read: the message names it (the file, the line)."""


def _decode(raw, encoding, errors, where, offset=None):
    """A line without its line break, decoded; an error names `where` (with `offset`: the
    file, and the line's byte offset in it)."""
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    try:
        return raw.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        if offset is not None:
            where = f"{where}: line at byte {offset}"
        raise SourceError(f"{where}: not valid {encoding} ({exc.reason} at byte {exc.start}); "
                          "pass errors='replace' to read it anyway") from None


class Stdin(Spout):
    """The standard input (a unix pipe: `producer | consecution run etl.py`), one tuple per
    line (field `line`, without its line break). At end of input the spout is exhausted and a
    finite run finishes.

    Guarantee: a line is in a committed log transaction before any bolt sees it. A pipe cannot
    be read twice, so what the spout has read from the pipe and not yet committed when the
    process dies is lost: at most the lines of one 64 KiB read plus one group commit. The pipe
    is read only when the runtime asks for a tuple, so under backpressure the producer blocks
    on its full pipe. `stream=` reads another binary file object or descriptor (tests, sockets).
    """

    fields = ("line",)

    def __init__(self, stream=None, encoding="utf-8", errors="strict"):
        self.stream = stream
        self.encoding, self.errors = encoding, errors

    def open(self, context):
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        self.fd = stream if isinstance(stream, int) else stream.fileno()
        self.buffer = b""
        self.lines = []
        self.number = 0
        self.eof = False

    def next_tuple(self):
        if not self.lines and not self._read():
            return
        raw = self.lines.pop()
        self.number += 1
        self.emit((_decode(raw, self.encoding, self.errors, f"stdin line {self.number}"),))

    def _read(self):
        """Read what the pipe has now; True if a line is waiting. Raises StopIteration at the end."""
        if self.eof:
            raise StopIteration
        if not select.select([self.fd], [], [], 0)[0]:
            return False
        data = os.read(self.fd, CHUNK)
        if not data:
            self.eof = True
            rest, self.buffer = self.buffer, b""
            if not rest:
                raise StopIteration
            self.lines = [rest]
            return True
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        self.lines = [line + b"\n" for line in reversed(lines)]  # popped from the end
        return bool(self.lines)


class File(Spout):
    """The lines of a file, one tuple each (field `line`, without its line break).

    The position is the byte offset after the last emitted line (with the file's inode), so a
    restart resumes exactly after the last line whose tuple was committed: nothing lost, nothing
    read twice. With `follow=False` the spout is exhausted at the end of the file (a last line
    without a line break is emitted too). With `follow=True` it tails the file like `tail -F`:
    it waits for more lines (checking every `poll` seconds), emits only complete lines, and
    survives rotation: when another file appears under `path` (rename and create) it reads the
    old one to its end and goes on with the new one from its start; a file truncated in place
    is read again from its start. If the file was replaced while the run was down (another
    inode, or shorter than the stored offset), the new file is read from its start; lines
    appended to the old file after the last commit are then not read.

    A missing file is an error at `open`.
    """

    fields = ("line",)

    def __init__(self, path, follow=False, poll=0.1, encoding="utf-8", errors="strict"):
        self.path = os.fspath(path)
        self.follow = follow
        self.poll = poll
        self.encoding, self.errors = encoding, errors

    def open(self, context):
        try:
            self.f = open(self.path, "rb")
        except OSError as exc:
            raise SourceError(f"File({self.path!r}): cannot open it: {exc.strerror}") from None
        self.inode = os.fstat(self.f.fileno()).st_ino
        self.offset = 0
        self.reported = None
        self.idle_until = 0.0
        self.rotated = False

    def seek(self, position):
        if not isinstance(position, dict):
            return
        size = os.fstat(self.f.fileno()).st_size
        if position.get("inode") == self.inode and position.get("offset", 0) <= size:
            self.offset = position["offset"]
            self.f.seek(self.offset)
        self.reported = position

    def progress(self):
        """Bytes read and the file's size (none when it follows the file: no end)."""
        if self.follow or getattr(self, "f", None) is None:
            return None
        return self.offset, os.fstat(self.f.fileno()).st_size, "bytes"

    def position(self):
        position = {"inode": self.inode, "offset": self.offset}
        if position == self.reported:
            return None  # unchanged: nothing to store
        self.reported = position
        return position

    def next_tuple(self):
        rows = self.next_batch(1)
        if rows:
            self.emit(rows[0])

    def next_batch(self, limit):
        """Up to `limit` lines, as many as the file has now (see Spout.next_batch)."""
        rows, readline, encoding, errors = [], self.f.readline, self.encoding, self.errors
        while len(rows) < limit:
            if self.follow and not self.rotated and time.monotonic() < self.idle_until:
                break
            line = readline()
            if line.endswith(b"\n") or (line and (not self.follow or self.rotated)):
                rows.append((_decode(line, encoding, errors, self.path, self.offset),))
                self.offset += len(line)
                continue
            if not self.follow:
                if rows:
                    break
                raise StopIteration
            if self.rotated:  # the old file is read to its end: go on with the new one
                self._reopen()
                readline = self.f.readline
                continue
            self.f.seek(self.offset)  # a partial line: read it again once it is complete
            self.idle_until = time.monotonic() + self.poll
            self._check_rotation()
            break
        return rows

    def _check_rotation(self):
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return  # renamed away, the new one not there yet
        if current.st_ino != self.inode:
            self.rotated = True
        elif current.st_size < self.offset:  # truncated in place
            self.f.seek(0)
            self.offset = 0

    def _reopen(self):
        self.f.close()
        self.f = open(self.path, "rb")
        self.inode = os.fstat(self.f.fileno()).st_ino
        self.offset = 0
        self.rotated = False

    def close(self):
        f = getattr(self, "f", None)
        if f is not None:
            f.close()
