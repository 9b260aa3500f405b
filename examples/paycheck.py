"""Deductions from a paycheck, in pipe syntax: the paycheck comes in as a stream of dollars,
one branch per deduction takes its share of each dollar, and every branch joins back into
the net-pay aggregator.

    dollars | [gross, federal_tax, state_tax, social_security, medicare, retirement] | net_pay | report

    consecution run examples/paycheck.py

Money flow, in integer cents:
- The gross pay (GROSS, $4,615.38: $120,000 a year, paid every two weeks) arrives as one
  tuple per dollar, 100 cents each, and a last tuple with the odd cents.
- `gross` passes each dollar on as a positive "gross" entry.
- Each deduction is a share of the gross in basis points (DEDUCTIONS) and enters as a negative
  entry. A share of one dollar is no whole number of cents (1.45% of $1.00 is 1.45 cents), so
  a deduction node is stateful: it keeps the gross it has seen and withholds, per dollar, the
  rise of the rounded-down share of that running total (`ledger.running_share`). Over the
  paycheck each deduction is exactly its share of the gross, rounded down to the cent, however
  the dollars are ordered; the cents that rounding leaves stay in the net pay.
- `net_pay` adds every entry by line, and its derived line `net_pay` is the sum of them all:
  gross minus every deduction.

PAYCHECK_GROSS (cents) sets another gross pay; PAYCHECK_REPORT a path for the JSON report.
"""
import os

from consecution import Bolt, IterableSpout, Topology, component
from ledger import Report, Totals, dollars, running_share

GROSS = 4_615_38
DEDUCTIONS = {  # basis points of the gross pay (1% = 100)
    "federal_tax": 12_00,
    "state_tax": 5_00,
    "social_security": 6_20,
    "medicare": 1_45,
    "retirement": 6_00,
}
ENTRY = ("line", "cents")


def dollars_of(gross):
    """`gross` cents as dollars: 100 cents each, then what is left (if anything)."""
    whole, odd = divmod(gross, 100)
    return [100] * whole + ([odd] if odd else [])


def gross(cents):
    return ("gross", cents)


gross.fields = ENTRY


class Withholding(Bolt):
    """Withholds `basis_points` of every dollar, rounded on the running gross (see above)."""

    stateful = True
    fields = ENTRY

    def __init__(self, line, basis_points):
        self.line = line
        self.basis_points = basis_points

    def process(self, tup):
        seen = self.state.get("gross", 0)
        self.state["gross"] = seen + tup["cents"]
        self.emit((self.line, -running_share(seen, tup["cents"], self.basis_points)))


class NetPay(Totals):
    """Every entry by line; derived: the net pay, which is all of them added up."""

    def derived(self):
        return [("net_pay", sum(self.totals().values()))]


def build(gross_cents=GROSS, report_path=None):
    deductions = [component(Withholding(line, bp), name=line) for line, bp in DEDUCTIONS.items()]
    return Topology(
        "paycheck",
        component(IterableSpout(dollars_of(gross_cents), fields=("cents",)), name="dollars")
        | [component(gross, name="gross"), *deductions]  # a bare function first would make a route
        | component(NetPay(by=("line",)), name="net_pay")
        | component(Report(f"paycheck: gross {dollars(gross_cents)}", report_path), name="report"),
    )


topology = build(int(os.environ.get("PAYCHECK_GROSS", GROSS)), os.environ.get("PAYCHECK_REPORT"))
