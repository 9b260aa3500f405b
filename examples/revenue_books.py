"""Revenue sharing split in two, first half: books every payment and hands the ledger entries
to another topology (examples/revenue_totals.py) through the named output "entries".

    payments
      | route by budget:  operating_budget
                          profit_distribution | partner_alice | partner_bob
      | entries                      (every ledger entry: output "entries")

The payments and the `books` sub-graph (the budget rule and the partners' takes) are
examples/revenue.py's, imported; see its docstring for the money flow. Run the pair as two processes, in either
order, from the same directory:

    consecution run examples/revenue_books.py      # state in .consecution/revenue_books
    consecution run examples/revenue_totals.py     # reads the entries from there, prints the report

The guarantee: each ledger entry is appended to the outbox in this topology's state directory
exactly once, in the transaction that completes the payment's tree, and revenue_totals reads
each exactly once; either process may be killed (SIGKILL included) and started again with the
same command. When this run completes, the output is closed and revenue_totals finishes once
it has read everything; its report is then revenue.py's, to the cent.

Environment (read at import): REVENUE_PAYMENTS (number of payments, default 2000) and
REVENUE_DELAY (seconds to sleep per payment in the budget nodes, default 0), as in revenue.py.
"""
import os

from consecution import IterableSpout, Topology, component
from revenue import ENTRY, books, payments

NAME = "revenue_books"
OUTPUT = "entries"


def entry(payment, account, cents):
    """One ledger entry, passed on as it is: the single component the output reads."""
    return (payment, account, cents)


def build(n=2000, delay=0.0):
    topology = Topology(
        NAME,  # max_pending: at most 100 payments in flight, so that checkpoints come often
        component(IterableSpout(payments(n), fields=("payment", "month", "cents", "revenue")), name="payments")
        | books(delay)                                                    # revenue.py's sub-graph
        | component(entry, name="entries", fields=ENTRY),                 # merge: every entry
        max_pending=100,
    )
    return topology.output(OUTPUT, "entries")


topology = build(int(os.environ.get("REVENUE_PAYMENTS", 2000)), float(os.environ.get("REVENUE_DELAY", 0)))
