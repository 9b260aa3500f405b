"""Words that cross between workers again and again travel as numbers (process and ray mode).

A crossing (runtime/events.py) whose deliveries are one value each sends, where every value is
a str, each one's number in the crossing's vocabulary instead. Both ends keep the vocabulary:
the sender's maps each word to its number, the receiver's each number back to its word. A small
int packs in about half the time of a word and unpacks without making a str; the receiver hands
on its own copy of the word, whose hash is already known, so a dict keyed by words (a counting
bolt's) finds it without hashing it again, in a values tuple made once per word. On W in process
mode with parallelism 2 (a million short words cross) that is 1-3% of the run's CPU (medians of
`python -m benchmarks.ab`), more for longer keys; on the wire a word takes 1-2 bytes.

Each coded blob carries what the receiver lacks:

    [generation, base, new words]   the receiver's vocabulary of this edge is of `generation`
                                    and held `base` words before these

A vocabulary starts over (a new generation, base 0) when it would hold more than VOCABULARY
words, and when the receiving worker was started again (`EventSink.restarted`): its new process
knows none. A receiver that holds another generation, or another count of words than a blob
says, cannot read it: the blob's deliveries fail (their trees run again) rather than reach a
task as other words (`Vocabularies.values` -> None). Only a blob made before its sender heard of
a restart meets that, and its trees went to the recovery with the dead worker.

A crossing whose values are mostly new (ids, timestamps) or not str stops coding (`on`): each
word would still travel once, and looking each up would cost more than it saves.
"""
from consecution.acker import new_id

from .routing import stable_hash

VOCABULARY = 1 << 16  # words a vocabulary holds at most before it starts over
PICKS = 4 * VOCABULARY  # picks a Numbered remembers (its tasks' words too) before it starts over
TRIAL = 4096          # values a vocabulary codes before it judges whether coding pays


class Vocabulary:
    """The sender's end, one per crossing of one-value deliveries. Its words are numbered at
    encoding (`code`), or, where the generated chain appends numbers itself (`numbered`: a
    fields grouping's pick gives them, `Numbered`), as they are picked (`learn`, `ship`)."""

    __slots__ = ("codes", "words", "generation", "shipped", "coded", "new", "on", "numbered", "pending", "pick")

    def __init__(self, pending=()):
        self.on = True
        self.coded = self.new = 0  # values coded, and of them new words, for `on`
        self.numbered = None  # True: the chain appends numbers; False: values; None: not yet known
        self.pick = None  # with `numbered`, the `Numbered` pick whose numbers the chain appends
        self.pending = pending  # the crossing's values: numbers in them are of this generation
        self.codes = {}
        self.start()

    def start(self):
        """A new generation, with no words (`codes` emptied in place: a generated chain holds it)."""
        self.codes.clear()
        self.words, self.generation, self.shipped = [], new_id(), 0

    def learn(self, word):
        """A new word's number (for `Numbered`)."""
        self.words.append(word)
        return len(self.words) - 1

    def ship(self, values, nested):
        """A numbered crossing's `values` for the wire: (values, [generation, base, new words]);
        with `nested` (values tuples appended among the numbers), each number's word instead,
        and None. A vocabulary grown past VOCABULARY starts over after it shipped."""
        if nested:
            words = self.words
            out = [words[v] if v.__class__ is int else v for v in values], None
        else:
            out = values, self._news()
        if len(self.words) > VOCABULARY or len(self.codes) > PICKS:
            self.start()
        return out

    def _news(self):
        """[generation, base, the words the receiver lacks]; from now on it holds them all."""
        base, self.shipped = self.shipped, len(self.words)
        return [self.generation, base, self.words[base:]]

    def code(self, values):
        """(the numbers of `values`, [generation, base, new words]); None when they travel as
        they are (a value that is no str, or a vocabulary that stopped coding)."""
        if not self.on:
            return None
        try:
            codes = list(map(self.codes.get, values))
        except TypeError:  # an unhashable value: no word
            self.on = False
            return None
        if None in codes:
            codes = self._learn(values, codes)
            if codes is None:
                self.on = False
                return None
        self.coded += len(values)
        if self.coded >= TRIAL and self.new * 2 > self.coded:
            self.on = False  # from the next blob: mostly new values
        return codes, self._news()

    def _learn(self, values, codes):
        """`codes` with a number for each value that had none (new words numbered in order);
        None if one is no str."""
        if len(self.words) + codes.count(None) > VOCABULARY:
            self.start()
            codes = [None] * len(values)
        index, words = self.codes, self.words
        before = len(words)
        for i, code in enumerate(codes):
            if code is None:
                value = values[i]
                code = index.get(value)
                if code is None:
                    if value.__class__ is not str:
                        return None
                    code = index[value] = len(words)
                    words.append(value)
                codes[i] = code
        self.new += len(words) - before
        return codes


class Numbered:
    """A fields grouping on a one-value str stream, picked in a generated chain of a worker
    whose one subscriber task elsewhere is fed through a crossing: a word's pick is `~task` for
    a task of this worker (a negative number), and for the task elsewhere the word's number in
    the crossing's vocabulary, which the chain appends as it is (no lookup at encoding). The
    picks are remembered in the vocabulary's `codes`, so they start over with it."""

    __slots__ = ("tasks", "remote", "vocabulary", "memo")

    def __init__(self, tasks, remote, vocabulary):
        self.tasks, self.remote, self.vocabulary = tasks, remote, vocabulary
        self.memo = vocabulary.codes

    def __call__(self, word):
        vocabulary = self.vocabulary
        if len(self.memo) >= PICKS and not vocabulary.pending:
            vocabulary.start()  # local picks alone fill it: nothing of this generation in flight
        task = self.tasks[stable_hash((word,)) % len(self.tasks)]
        pick = self.memo[word] = vocabulary.learn(word) if task == self.remote else ~task
        return pick


class Vocabularies:
    """The receiver's end: per edge (task, source, source task, stream), the generation it
    holds and its words, each as the values tuple of a delivery of it (made once per word, not
    once per delivery; a tuple is immutable, so deliveries share it)."""

    def __init__(self):
        self.held = {}

    def values(self, edge, vocabulary):
        """The values tuples to look a coded blob's numbers up in, the blob's new words added;
        None when the blob is out of step with what this end holds."""
        generation, base, new = vocabulary
        held = self.held.get(edge)
        if held is None or held[0] != generation:
            if base:
                return None
            held = self.held[edge] = (generation, [])
        values = held[1]
        if len(values) != base:
            return None
        values += zip(new)  # (word,) each
        return values
