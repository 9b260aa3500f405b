"""Revenue sharing split in two, second half: reads the ledger entries that
examples/revenue_books.py outputs and sums them as examples/revenue.py does.

    Output(<revenue_books state dir>, "entries")
      | received
      | broadcast:  company
                    route by account:  alice | bob | revenue
      | report

The `totals` sub-graph (the aggregators) and the report are revenue.py's, imported. Run the pair as two
processes, in either order, from the same directory:

    consecution run examples/revenue_totals.py     # waits for the entries
    consecution run examples/revenue_books.py      # books the payments

The guarantee: each entry of the output is read exactly once (this topology keeps its position
in its own log, committed with the entries it read), so the totals and their counts are
exact even when either process is killed (SIGKILL included) and started again with the same
command. This run waits for entries until revenue_books has completed its run, then finishes
and prints revenue.py's report (only the title differs).

Environment (read at import): REVENUE_BOOKS_STATE (revenue_books' state directory; default
where `consecution run` puts it: $STATE_DIRECTORY/revenue_books under systemd, else
./.consecution/revenue_books), REVENUE_DELAY (seconds to sleep per entry in `received`, default
0: a slow run to kill in crash tests) and REVENUE_REPORT (a path: the report is also written
there as JSON), as in revenue.py.
"""
import os
import time

from consecution import Bolt, Topology, component
from consecution.cli import default_state_dir
from consecution.spouts import Output
from ledger import Report
from revenue import ENTRY, totals
from revenue_books import NAME as BOOKS, OUTPUT


class Received(Bolt):
    """Passes each entry on as it is (sleeping `delay` seconds first)."""

    fields = ENTRY

    def __init__(self, delay=0.0):
        self.delay = delay

    def process(self, tup):
        if self.delay:
            time.sleep(self.delay)
        self.emit(tup.values)


def build(books_state_dir, delay=0.0, report_path=None):
    return Topology(
        "revenue_totals",  # max_pending: as in revenue.py, so that checkpoints come often
        component(Output(books_state_dir, OUTPUT, fields=ENTRY), name="entries")
        | component(Received(delay), name="received")
        | totals()                                                        # revenue.py's sub-graph
        | component(Report(f"revenue: the entries of {BOOKS}", report_path, ["revenue", "company", "alice", "bob"]),
                    name="report"),
        max_pending=100,
    )


topology = build(os.environ.get("REVENUE_BOOKS_STATE") or default_state_dir(BOOKS),
                 float(os.environ.get("REVENUE_DELAY", 0)), os.environ.get("REVENUE_REPORT"))
