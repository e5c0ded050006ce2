"""Dates typed in a query: "a red car july 2023" searches for "a red car" among what was taken in July
2023. The date is found by dateparser (English), relative to a given day, so the same query on the same
day always gives the same filter, and becomes a filter on `taken_at` (search/encode/photo_fields.py)
that callers show back, so a wrong guess can be seen and switched off (`--literal`, `literal=true`).

Only a phrase that holds a year ("july 2023", "2019", "14 july 2023") or says how far back it is
("yesterday", "last month", "3 days ago") is taken: alone, "may" or "sat" is a word far more often
than a date.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

YEAR = re.compile(r"\b(1[89]|20)\d\d\b")
RELATIVE = re.compile(r"\b(yesterday|today|ago|last|this)\b", re.IGNORECASE)
FIELD = "taken_at"


@dataclass(frozen=True)
class DatedQuery:
    text: str  # what to look for, the date phrase taken out
    phrase: str  # the date phrase as typed
    start: dt.date  # the period it names: start <= taken_at < end
    end: dt.date

    @property
    def where(self) -> str:
        """The period in the filter language (docs/filters.md)."""
        return f"{FIELD} >= {self.start.isoformat()} and {FIELD} < {self.end.isoformat()}"


def might_hold_a_date(text: str) -> bool:
    """A cheap first look, without dateparser (the one-shot search declines such queries)."""
    return bool(YEAR.search(text) or RELATIVE.search(text))


def dated(text: str, today: dt.date) -> DatedQuery | None:
    """The query split into what to look for and the period it names; None when it names none (or
    nothing would be left to look for)."""
    if not might_hold_a_date(text):
        return None
    from dateparser.date import DateDataParser
    from dateparser.search import search_dates

    base = dt.datetime.combine(today, dt.time())
    settings = {"RELATIVE_BASE": base, "PREFER_DATES_FROM": "past"}
    found = search_dates(text, languages=["en"], settings=settings) or []
    phrases = [phrase for phrase, _ in found if might_hold_a_date(phrase)]
    if len(phrases) != 1:
        return None  # none, or a range ("from 2019 to 2021") this does not read
    phrase = phrases[0]
    data = DateDataParser(languages=["en"], settings={**settings, "RETURN_TIME_AS_PERIOD": True})
    parsed = data.get_date_data(phrase)
    if parsed.date_obj is None:
        return None
    start, end = _period(parsed.date_obj.date(), parsed.period)
    rest = " ".join(text.replace(phrase, " ", 1).split())
    return DatedQuery(rest, phrase.strip(), start, end) if rest else None


def _period(day: dt.date, period: str) -> tuple[dt.date, dt.date]:
    if period == "year":
        return dt.date(day.year, 1, 1), dt.date(day.year + 1, 1, 1)
    if period == "month":
        first = day.replace(day=1)
        return first, (first + dt.timedelta(days=32)).replace(day=1)
    if period == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return monday, monday + dt.timedelta(days=7)
    return day, day + dt.timedelta(days=1)
