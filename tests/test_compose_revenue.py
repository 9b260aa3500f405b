"""The revenue scenario split in two topologies joined by an output (examples/revenue_books.py
outputs the ledger entries, examples/revenue_totals.py reads and sums them), each run by the
real command line as its own process: the consumer's report is revenue.py's, to the cent and
to the tuple, whichever starts first and however often either is killed."""
import json
import os
import random
import time

import pytest

from support import EXAMPLES, run_killing, start_cli
from test_scenarios import example, expected_revenue

BOOKS = os.path.join(EXAMPLES, "revenue_books.py")
TOTALS = os.path.join(EXAMPLES, "revenue_totals.py")
REVENUE = os.path.join(EXAMPLES, "revenue.py")


def cents_of(totals):
    """{aggregator: {key: cents}} of a JSON report's totals."""
    return {name: {key: row["cents"] for key, row in rows.items()} for name, rows in totals.items()}


def check_counts(totals, n):
    """Every payment's entry was summed once: n operating or profit entries, one take of each
    partner per profit entry."""
    company = totals["company"]
    assert totals["revenue"]["revenue"]["count"] == n
    assert company["operating"]["count"] + company["profit"]["count"] == n
    assert company["alice"]["count"] == company["bob"]["count"] == company["profit"]["count"]
    assert totals["alice"]["alice"]["count"] == totals["bob"]["bob"]["count"] == company["profit"]["count"]


def wait_for_log(path, text, proc, timeout=30):
    """Until `text` is in the file at `path`, while `proc` runs."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert proc.poll() is None, f"exited with {proc.returncode} before {text} was logged"
        assert time.monotonic() < deadline, f"{text} not logged in {timeout} s"
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["single", "process", "ray"])
def test_totals_started_before_books_report_what_revenue_py_reports(mode, run_cli, tmp_path):
    """The two commands of the examples' docstrings, default state directories, consumer
    first: it waits for a producer that has never run, then reads every entry once. (Ray mode:
    the examples' own module `ledger`, which the nodes do not have, travels with the bolts.)"""
    n = 1200
    report = tmp_path / "report.json"
    env = {"REVENUE_PAYMENTS": str(n), "REVENUE_REPORT": str(report)}
    options = ["--mode", mode, "--workers", "2", "--log-format", "json"]
    totals = start_cli(["run", TOTALS, *options], tmp_path, env, log="totals.log")
    try:
        books_state = tmp_path / ".consecution" / "revenue_books"
        wait_for_log(tmp_path / "totals.log", '"run.started"', totals)
        time.sleep(0.5)
        assert totals.poll() is None  # the consumer is polling for a producer not yet run
        assert not (books_state / "log").exists()
        books = run_cli("run", BOOKS, *options, env=env, timeout=60)
        assert books.returncode == 0, books.stderr[-3000:]
        assert totals.wait(timeout=30) == 0, (tmp_path / "totals.log").read_text()[-3000:]
    finally:
        totals.kill()
    composed = json.loads(report.read_text())

    alone = run_cli("run", REVENUE, "--state-dir", str(tmp_path / "revenue"),
                    env={"REVENUE_PAYMENTS": str(n), "REVENUE_REPORT": str(tmp_path / "alone.json")})
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert composed["totals"] == json.loads((tmp_path / "alone.json").read_text())["totals"]  # cents and counts
    assert cents_of(composed["totals"]) == expected_revenue(example("revenue").payments(n))
    check_counts(composed["totals"], n)

    # both again, the same commands: nothing new to book, nothing more to read
    assert run_cli("run", BOOKS, *options, env=env).returncode == 0
    again = run_cli("run", TOTALS, *options, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(report.read_text()) == composed
    if mode != "ray":  # an actor's prints reach the driver through Ray's log streaming, if at all
        assert again.stdout.splitlines()[1:] == alone.stdout.splitlines()[1:]  # only the title differs


@pytest.mark.parametrize("mode", ["single", "process", "ray"])
def test_books_and_totals_killed_at_random_moments_end_with_exact_totals_and_counts(mode, tmp_path):
    """Both run at once, slowed down; each is killed with SIGKILL several times, independently,
    and started again with the same command and state directories. The hand-off loses and
    duplicates no entry: the totals and the count of entries each aggregator summed are those
    of a run without crashes."""
    kills = int(os.environ.get("CONSECUTION_KILLS", "4"))
    n = 1200
    report = tmp_path / "report.json"
    books_state = str(tmp_path / "books")
    env = {"REVENUE_PAYMENTS": str(n), "REVENUE_DELAY": "0.004", "REVENUE_REPORT": str(report),
           "REVENUE_BOOKS_STATE": books_state}
    # A kill is charged to no record unless it hits one running alone (runtime/recovery.py):
    # the default max_retries is enough.
    options = ["--mode", mode, "--workers", "2", "--log-format", "json"]
    commands = {"books": ["run", BOOKS, "--state-dir", books_state, *options],
                "totals": ["run", TOTALS, "--state-dir", str(tmp_path / "totals"), *options]}
    seed = random.randrange(2**32)
    killed = run_killing(commands, tmp_path, env, kills, random.Random(seed), timeout=60)
    assert killed["books"] >= 2 and killed["totals"] >= 2, (killed, seed)
    for name in commands:  # some kill found trees in flight, and a restart replayed them
        assert '"run.recovered"' in (tmp_path / f"{name}.log").read_text(), (name, seed)
    totals = json.loads(report.read_text())["totals"]
    assert cents_of(totals) == expected_revenue(example("revenue").payments(n)), seed
    check_counts(totals, n)
