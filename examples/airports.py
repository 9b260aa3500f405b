"""The seed's airport pipeline, in pipe syntax:

    airport list | all pairs | locations | great-circle distances | broadcast(SQLite, CSV)

    consecution run examples/airports.py

Writes the 45 distances between the ten busiest US airports to airports.sqlite (table
`distance`) and airports.csv in the current folder (AIRPORTS_DB and AIRPORTS_CSV set other
paths). Both writers are idempotent, so a replayed tuple never writes a row twice.
"""
import csv
import math
import os
import sqlite3

from consecution import Bolt, Topology, broadcast, component

# The ten busiest US airports by passengers, with their coordinates (degrees).
LOCATIONS = {
    "ATL": (33.6407, -84.4277),
    "DFW": (32.8998, -97.0403),
    "DEN": (39.8561, -104.6737),
    "LAX": (33.9416, -118.4085),
    "ORD": (41.9742, -87.9073),
    "JFK": (40.6413, -73.7781),
    "MCO": (28.4312, -81.3081),
    "LAS": (36.0840, -115.1537),
    "CLT": (35.2144, -80.9473),
    "MIA": (25.7959, -80.2870),
}
EARTH_RADIUS_KM = 6371.0088


class AllPairs(Bolt):
    """Each new airport pairs with every airport seen before it: n airports, n(n-1)/2 pairs."""

    fields = ("a", "b")

    def prepare(self, context):
        self.seen = []

    def process(self, tup):
        code = tup["code"]
        for other in self.seen:
            if other != code:
                self.emit((other, code))
        if code not in self.seen:
            self.seen.append(code)


def locate(a, b):
    """Where both airports of a pair are (a lookup; a geocoder would go here)."""
    return (a, *LOCATIONS[a], b, *LOCATIONS[b])


locate.fields = ("a", "lat_a", "lon_a", "b", "lat_b", "lon_b")


def distance(a, lat_a, lon_a, b, lat_b, lon_b):
    """Great-circle distance by the haversine formula, in kilometres."""
    p1, p2 = math.radians(lat_a), math.radians(lat_b)
    dp, dl = p2 - p1, math.radians(lon_b - lon_a)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return (a, b, round(2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h)), 1))


distance.fields = ("a", "b", "km")


class SqliteWriter(Bolt):
    """Upserts each distance as it comes (one transaction per tuple: the ack follows the commit)."""

    def __init__(self, path):
        self.path = path

    def prepare(self, context):
        self.db = sqlite3.connect(self.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS distance (a TEXT, b TEXT, km REAL, PRIMARY KEY (a, b))")

    def process(self, tup):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO distance VALUES (?, ?, ?)", (tup["a"], tup["b"], tup["km"]))

    def cleanup(self):
        self.db.close()


class CsvWriter(Bolt):
    """Gathers the distances and writes the CSV file atomically when the input ends."""

    def __init__(self, path):
        self.path = path

    def prepare(self, context):
        self.rows = {}

    def process(self, tup):
        self.rows[(tup["a"], tup["b"])] = tup["km"]

    def finish(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["a", "b", "km"])
            for (a, b), km in sorted(self.rows.items()):
                out.writerow([a, b, km])
        os.replace(tmp, self.path)


airport_list = component(list(LOCATIONS), name="airport_list", fields=("code",))
topology = Topology(
    "airports",
    airport_list
    | AllPairs()
    | locate
    | distance
    | broadcast(SqliteWriter(os.environ.get("AIRPORTS_DB", "airports.sqlite")),
                CsvWriter(os.environ.get("AIRPORTS_CSV", "airports.csv"))),
)
