"""Word count with the builder API: lines -> split (2 tasks) -> count (2 tasks, grouped by
word) -> report (1 task), which prints the most frequent words when the input ends.

    consecution run examples/wordcount.py

Set WORDCOUNT_INPUT to a text file to count its words instead of the built-in text.
The run keeps its state (the spout's byte offset) in .consecution/wordcount: run it again
and it resumes after the last line, with nothing left to count; remove that folder (or give
another --state-dir) to count from the start.
"""
import os

from consecution import Bolt, Spout, Topology

TEXT = """\
It would be great if there was a way to implement the pipeline pattern in Python
without resorting to system pipes. The unix work flow of piping data between small
specialized programs has proven to be extremely robust. Users who adopt this work flow
conceptualize their computation as a stream of data flowing through a series, or
consecution, of processing nodes. Data flows in only one direction from inputs to
outputs and never loops back.
"""


class Lines(Spout):
    """One tuple per line of a text file (or of TEXT), resumable by byte offset."""

    fields = ("line",)

    def __init__(self, path=None):
        self.path = path

    def open(self, context):
        if self.path:
            self.f = open(self.path, "rb")
        else:
            import io
            self.f = io.BytesIO(TEXT.encode())

    def next_tuple(self):
        line = self.f.readline()
        if not line:
            raise StopIteration
        self.emit((line.decode("utf-8", "replace"),))

    def position(self):
        return self.f.tell()

    def seek(self, position):
        self.f.seek(position)

    def close(self):
        self.f.close()


class Split(Bolt):
    fields = ("word",)

    def process(self, tup):
        for word in tup["line"].split():
            word = word.strip(".,;:!?\"'()").lower()
            if word:
                self.emit((word,))


class Count(Bolt):
    fields = ("word", "count")

    def prepare(self, context):
        self.counts = {}

    def process(self, tup):
        word = tup["word"]
        self.counts[word] = self.counts.get(word, 0) + 1

    def finish(self):
        for word, n in sorted(self.counts.items()):
            self.emit((word, n))


class Report(Bolt):
    """Gathers the final counts and prints the top ones (to stdout)."""

    def __init__(self, top=10):
        self.top = top

    def prepare(self, context):
        self.counts = {}

    def process(self, tup):
        self.counts[tup["word"]] = tup["count"]

    def finish(self):
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for word, n in ranked[:self.top]:
            print(f"{n:5d} {word}", flush=True)
        print(f"{sum(self.counts.values())} words, {len(self.counts)} distinct", flush=True)


topology = Topology("wordcount")
topology.spout("lines", Lines(os.environ.get("WORDCOUNT_INPUT")))
topology.bolt("split", Split(), parallelism=2).shuffle_grouping("lines")
topology.bolt("count", Count(), parallelism=2).fields_grouping("split", "word")
topology.bolt("report", Report()).global_grouping("count")
