"""An amortised mortgage, with the builder API: 360 monthly payments of $1,000.00 pay property
tax, insurance, interest and principal; the interest earns a tax refund.

    payments --> escrow --tax-------> property_tax (aggregator)      \\
                        --insurance-> insurance (aggregator)          \\
                        --P&I-------> principal_calculator             > master (aggregator) --> report
                                        --interest--> tax_refund ---> /
                                        --principal-----------------> /

    consecution run examples/mortgage.py

Money flow, in integer cents:
- `escrow` splits each $1,000.00 payment: $150.00 property tax, $50.00 insurance, and the
  rest, $800.00, pays principal and interest (P&I).
- `principal_calculator` is a stateful bolt that starts from the initial principal and applies
  the payments in month order (an early one waits in its state: `ledger.in_order`). Each
  month's interest is the balance times RATE / 12, rounded to the nearest cent, halves up; the
  rest of the P&I pays principal. The last payment pays the remaining balance exactly and
  its interest is the rest of the P&I: it absorbs the drift of 359 roundings (a few cents).
- The initial principal is the closed-form present value of 360 P&I payments,
  PRINCIPAL = P&I * (1 - (1 + r)^-360) / r with r = RATE / 12, computed exactly (Fraction)
  and rounded to the nearest cent. Since the last payment clears the balance, the principal
  paid is PRINCIPAL and the total interest is, to the cent, the closed form's
  360 * P&I - PRINCIPAL.
- `tax_refund` refunds REFUND_RATE of the interest, rounded down on the running interest
  (`ledger.running_share`): in total, the rounded-down share of all interest paid.
- `master` sums every leg by account; derived lines: everything paid (360 * $1,000.00, to the
  cent) and the interest after the refund.

MORTGAGE_REPORT names a path for the JSON report.
"""
import os
from fractions import Fraction

from consecution import Bolt, IterableSpout, Topology
from ledger import Report, Totals, dollars, in_order, rounded, running_share

MONTHS = 360
PAYMENT = 1_000_00
PROPERTY_TAX = 150_00       # a month, paid from escrow
INSURANCE = 50_00           # a month, paid from escrow
PRINCIPAL_AND_INTEREST = PAYMENT - PROPERTY_TAX - INSURANCE
RATE = Fraction(65, 1000)   # 6.5% a year, compounded monthly
REFUND_RATE = 22_00         # basis points of the interest paid: a 22% marginal tax rate
ENTRY = ("month", "account", "cents")


def loan_amount(payment=PRINCIPAL_AND_INTEREST, months=MONTHS, rate=RATE):
    """The principal that `months` payments of `payment` amortise at `rate` a year (closed
    form, exact until the final rounding to the cent)."""
    r = rate / 12
    return rounded(payment * (1 - (1 + r) ** -months) / r)


PRINCIPAL = loan_amount()


class Escrow(Bolt):
    """Splits each payment into property tax, insurance and the P&I that goes on."""

    streams = {"default": ENTRY, "tax": ENTRY, "insurance": ENTRY}

    def process(self, tup):
        month = tup["month"]
        self.emit((month, "property_tax", PROPERTY_TAX), stream="tax")
        self.emit((month, "insurance", INSURANCE), stream="insurance")
        self.emit((month, "principal_and_interest", tup["cents"] - PROPERTY_TAX - INSURANCE))


class PrincipalCalculator(Bolt):
    """Splits each P&I payment into interest and principal against the balance in its state."""

    stateful = True
    streams = {"interest": ENTRY, "principal": ENTRY, "default": ("aggregator", "key", "cents", "count")}

    def __init__(self, principal=PRINCIPAL, months=MONTHS, rate=RATE):
        self.principal = principal
        self.months = months
        self.monthly_rate = rate / 12

    def prepare(self, context):
        self.name = context.component

    def process(self, tup):
        for month, cents in in_order(self.state, "loan", tup["month"], [tup["month"], tup["cents"]]):
            balance = self.state.get("balance", self.principal)
            if month == self.months:
                interest = cents - balance  # the last payment clears the balance
            else:
                interest = rounded(balance * self.monthly_rate)
            principal = cents - interest
            if not 0 <= principal <= balance:
                raise ValueError(f"month {month}: a payment of {cents} cents does not fit a balance of {balance}")
            self.state["balance"] = balance - principal
            self.emit((month, "interest", interest), stream="interest")
            self.emit((month, "principal", principal), stream="principal")

    def finish(self):
        applied = self.state.get(("next", "loan"), 1) - 1
        self.emit((self.name, "balance", self.state.get("balance", self.principal), applied))


class TaxRefund(Bolt):
    """Refunds `basis_points` of the interest, rounded down on the running interest."""

    stateful = True
    fields = ENTRY

    def __init__(self, basis_points=REFUND_RATE):
        self.basis_points = basis_points

    def process(self, tup):
        seen = self.state.get("interest", 0)
        self.state["interest"] = seen + tup["cents"]
        self.emit((tup["month"], "tax_refund", running_share(seen, tup["cents"], self.basis_points)))


class Master(Totals):
    """Every leg by account; derived: all that was paid, and the interest after the refund."""

    def derived(self):
        t = self.totals()
        paid = sum(t.get(account, 0) for account in ("property_tax", "insurance", "interest", "principal"))
        return [("paid", paid), ("interest_after_refund", t.get("interest", 0) - t.get("tax_refund", 0))]


def build(report_path=None):
    t = Topology("mortgage")
    payments = [(month, PAYMENT) for month in range(1, MONTHS + 1)]
    t.spout("payments", IterableSpout(payments, fields=("month", "cents")))
    t.bolt("escrow", Escrow()).shuffle_grouping("payments")
    t.bolt("property_tax", Totals()).shuffle_grouping("escrow", stream="tax")
    t.bolt("insurance", Totals()).shuffle_grouping("escrow", stream="insurance")
    t.bolt("principal_calculator", PrincipalCalculator()).shuffle_grouping("escrow")
    t.bolt("tax_refund", TaxRefund()).shuffle_grouping("principal_calculator", stream="interest")
    master = t.bolt("master", Master())
    master.shuffle_grouping("escrow", stream="tax").shuffle_grouping("escrow", stream="insurance")
    master.shuffle_grouping("principal_calculator", stream="interest")
    master.shuffle_grouping("principal_calculator", stream="principal")
    master.shuffle_grouping("tax_refund")
    title = f"mortgage: {MONTHS} payments of {dollars(PAYMENT)}, principal {dollars(PRINCIPAL)}"
    report = t.bolt("report", Report(title, report_path, ["master", "principal_calculator"]))
    for aggregator in ("master", "property_tax", "insurance", "principal_calculator"):
        report.global_grouping(aggregator)
    return t


topology = build(os.environ.get("MORTGAGE_REPORT"))
