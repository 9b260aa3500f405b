"""Every example runs, through the real command line, and produces exact results."""
import csv
import doctest
import math
import os
import sqlite3

import consecution.testing
from support import EXAMPLES


def test_wordcount_prints_the_most_frequent_words(run_cli, tmp_path):
    text = tmp_path / "input.txt"
    text.write_text("the cat and the hat\nthe end\n")
    done = run_cli("run", os.path.join(EXAMPLES, "wordcount.py"), env={"WORDCOUNT_INPUT": str(text)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["3", "the"]
    assert sorted(lines[1:5]) == ["    1 and", "    1 cat", "    1 end", "    1 hat"]
    assert lines[-1] == "7 words, 5 distinct"


def test_wordcount_builtin_text_runs(run_cli):
    done = run_cli("run", os.path.join(EXAMPLES, "wordcount.py"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "75 words, 61 distinct"


def _haversine_km(a, b):
    (lat1, lon1), (lat2, lon2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_airports_writes_every_pair_to_sqlite_and_csv(run_cli, tmp_path):
    done = run_cli("run", os.path.join(EXAMPLES, "airports.py"))
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(tmp_path / "airports.sqlite")
    rows = db.execute("SELECT a, b, km FROM distance").fetchall()
    assert len(rows) == 45  # 10 airports, every unordered pair once
    assert len({frozenset((a, b)) for a, b, _ in rows}) == 45
    with open(tmp_path / "airports.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["a", "b", "km"] and len(table) == 46
    assert sorted((a, b, float(km)) for a, b, km in table[1:]) == sorted(rows)
    # spot checks against an independent computation
    km = {frozenset((a, b)): d for a, b, d in rows}
    atl, lax = (33.6407, -84.4277), (33.9416, -118.4085)
    assert abs(km[frozenset(("ATL", "LAX"))] - _haversine_km(atl, lax)) < 0.1
    assert 3100 < km[frozenset(("ATL", "LAX"))] < 3200
    assert 3950 < km[frozenset(("JFK", "LAX"))] < 4000


def test_airports_rerun_is_idempotent(run_cli, tmp_path):
    for _ in range(2):
        assert run_cli("run", os.path.join(EXAMPLES, "airports.py")).returncode == 0
    db = sqlite3.connect(tmp_path / "airports.sqlite")
    assert db.execute("SELECT count(*) FROM distance").fetchone() == (45,)


def test_docstring_examples_of_the_testing_helpers_hold():
    failures, tried = doctest.testmod(consecution.testing)
    assert tried > 0 and failures == 0


def test_readme_wordcount_example_prints_what_the_readme_shows(run_cli, tmp_path):
    import re
    with open(os.path.join(os.path.dirname(EXAMPLES), "README.md")) as f:
        readme = f.read()
    code = re.search(r"## Word count, complete\n\n```python\n(.*?)```", readme, re.S).group(1)
    shown = re.search(r"\$ consecution run wordcount.py\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "wordcount.py").write_text(code)
    done = run_cli("run", "wordcount.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def test_ingest_accepts_posted_orders_stores_them_and_stops_on_sigterm(tmp_path):
    import http.client
    import json
    import signal
    import subprocess
    import sys
    import time
    from spout_support import free_port, wait_for

    port = free_port()
    env = dict(os.environ, INGEST_PORT=str(port))
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", os.path.join(EXAMPLES, "ingest.py"),
                             "--mode", "thread"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        orders = [{"id": 1, "customer": " Ada ", "amount": 12.5, "currency": "EUR"},
                  {"id": 2, "customer": "Bob", "amount": 3, "currency": "USD"}]

        def post():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("POST", "/orders", json.dumps(orders), {"Content-Type": "application/json"})
                response = conn.getresponse()
                return response.status, json.loads(response.read())
            except OSError:
                time.sleep(0.05)
                return None
            finally:
                conn.close()

        answer = []
        wait_for(lambda: answer.append(post()) or answer[-1] is not None, timeout=20, what="the service")
        assert answer[-1] == (202, {"accepted": 2})
        db = sqlite3.connect(tmp_path / "orders.sqlite")
        wait_for(lambda: db.execute("SELECT count(*) FROM orders").fetchone() == (2,), what="the rows")
        assert db.execute("SELECT * FROM orders ORDER BY id").fetchall() == [(1, "ada", 1250, "EUR"),
                                                                            (2, "bob", 300, "USD")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
