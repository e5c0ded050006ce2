"""Dates typed in a query: "a red car july 2023" searches for "a red car" among what was taken in July
2023. The date is found by dateparser (English), relative to a given day, so the same query on the same
day always gives the same filter, and becomes a filter on `taken_at` (search/encode/photo_fields.py)
that callers show back, so a wrong guess can be seen and switched off (`--literal`, `literal=true`).

Only a phrase that holds a year ("july 2023", "2019", "14 july 2023") or says how far back it is
("yesterday", "last month", "3 days ago") is taken: alone, "may" or "sat" is a word far more often
than a date. Seasons are the northern hemisphere's meteorological ones ("summer 2023": June to August;
"winter 2023": December 2023 to February 2024; "last summer": the last one that has ended).
Ranges are read here, not by dateparser (which reads "from 2019 to 2021" as two dates): "from 2019 to
2021", "2019-2021", "between may and august 2022" (the first end borrows the year of the second), and
open ones, "since 2020", "after march 2021", "before 2018", "until june 2020" (June included).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

YEAR = re.compile(r"\b(1[89]|20)\d\d\b")
RELATIVE = re.compile(r"\b(yesterday|today|ago|last|this)\b", re.IGNORECASE)
FIELD = "taken_at"
SEASON = re.compile(
    r"\b(?:in\s+)?(?:(?P<rel>last|this)\s+)?(?P<season>spring|summer|autumn|fall|winter)"
    r"(?:\s+(?:of\s+)?(?P<year>(?:19|20)\d\d))?\b",
    re.IGNORECASE,
)
FIRST_MONTH = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = (  # a month's name or its abbreviation, never a word that starts like one ("marble")
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = rf"(?:(?P<{{0}}day>[0-3]?\d)(?:st|nd|rd|th)?\s+)?(?P<{{0}}month>{_MONTH})\s+"
_SIDE = rf"(?:{_DAY})?(?P<{{0}}year>(?:19|20)\d\d)"  # [[14] july] 2023
RANGE = re.compile(
    rf"\b(?:(?P<from>from|between)\s+)?(?:{_SIDE.format('a')}|(?P<amonth_only>{_MONTH}))"
    rf"\s*(?:\s(?P<joint>to|until|till|through|and)\s|-|\u2013)\s*{_SIDE.format('b')}\b",
    re.IGNORECASE,
)
SINGLE = re.compile(rf"\b(?:in\s+)?{_SIDE.format('a')}\b", re.IGNORECASE)
DATE_WORD = re.compile(  # what else dateparser may read as (part of) a date
    rf"\d|\b(?:{_MONTH}|(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?|noon|midnight"
    r"|morning|afternoon|evening|night|tonight|day|week|weekend|fortnight|month|year|hour|minute|now"
    r"|today|tomorrow|yesterday|ago|last|this|next|in)s?\b",
    re.IGNORECASE,
)
OPEN = re.compile(rf"\b(?P<op>since|after|before|until)\s+{_SIDE.format('a')}\b", re.IGNORECASE)


@dataclass(frozen=True)
class DatedQuery:
    text: str  # what to look for, the date phrase taken out
    phrase: str  # the date phrase as typed
    start: dt.date | None  # the period it names: start <= taken_at < end; None: open on that side
    end: dt.date | None

    @property
    def where(self) -> str:
        """The period in the filter language (docs/filters.md)."""
        sides = [(">=", self.start), ("<", self.end)]
        return " and ".join(f"{FIELD} {op} {day.isoformat()}" for op, day in sides if day is not None)


def might_hold_a_date(text: str) -> bool:
    """A cheap first look, without dateparser (the one-shot search declines such queries)."""
    return bool(YEAR.search(text) or RELATIVE.search(text))


def dated(text: str, today: dt.date) -> DatedQuery | None:
    """The query split into what to look for and the period it names; None when it names none (or
    nothing would be left to look for)."""
    if not might_hold_a_date(text):
        return None
    if (spanned := _range(text)) is not None:
        return spanned
    if (season := _season(text, today)) is not None:
        return season
    if (single := _single(text)) is not None:
        return _taken_out(text, single, *_side(single, "a"))
    return _parsed(text, today)


def _single(text: str) -> re.Match | None:
    """The one date in the words where it is a year, a month of one or a day ("2019", "july 2023",
    "14 july 2023") and nothing else could be part of a date: read here, as dateparser reads it, without
    its 0.3 s import (tests/test_photo_fields.py holds the two equal)."""
    found = list(SINGLE.finditer(text))
    if len(found) != 1:
        return None
    match = found[0]
    rest = text[: match.start()] + " " + text[match.end() :]
    if DATE_WORD.search(rest) or "." in match[0]:
        return None  # "jan. 2020": dateparser takes the year alone
    if match["aday"]:
        first, after = _month(match["amonth"], int(match["ayear"]))
        if not 1 <= int(match["aday"]) <= (after - first).days:
            return None  # "31 february 2023": dateparser takes the month alone
    return match


def _parsed(text: str, today: dt.date) -> DatedQuery | None:
    """The date dateparser finds in the words ("last month", "3 days ago", "july 14, 2023")."""
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


def _range(text: str) -> DatedQuery | None:
    """ "from 2019 to 2021", "between may and august 2022", "since 2020", "before 2018"."""
    for match in RANGE.finditer(text):
        if (match["joint"] or "").lower() == "and" and (match["from"] or "").lower() != "between":
            continue  # "may 2020 and june 2021": two dates, not a span
        start, end = _side(match, "a")[0] if match["ayear"] else None, _side(match, "b")[1]
        if start is None:  # "from december to february 2023": the December before
            year = int(match["byear"])
            start = next(d for y in (year, year - 1) if (d := _month(match["amonth_only"], y)[0]) < end)
        if start < end:
            return _taken_out(text, match, start, end)
    if (match := OPEN.search(text)) is not None:
        first, after = _side(match, "a")
        sides = {
            "since": (first, None),
            "after": (after, None),
            "before": (None, first),
            "until": (None, after),
        }
        return _taken_out(text, match, *sides[match["op"].lower()])
    return None


def _side(match: re.Match, side: str) -> tuple[dt.date, dt.date]:
    """The period one end of a range names: a day, a month or a year."""
    year = int(match[f"{side}year"])
    if not match[f"{side}month"]:
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
    first, after = _month(match[f"{side}month"], year)
    if not match[f"{side}day"]:
        return first, after
    day = first.replace(day=max(1, min(int(match[f"{side}day"]), (after - first).days)))
    return day, day + dt.timedelta(days=1)


def _month(name: str, year: int) -> tuple[dt.date, dt.date]:
    first = dt.date(year, MONTHS.index(name[:3].lower()) + 1, 1)
    return first, _shift(first, 1)


def _taken_out(text: str, match: re.Match, start: dt.date | None, end: dt.date | None) -> DatedQuery | None:
    rest = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
    return DatedQuery(rest, match[0].strip(), start, end) if rest else None


def _period(day: dt.date, period: str) -> tuple[dt.date, dt.date]:
    if period in ("year", "month"):
        first = day.replace(month=1, day=1) if period == "year" else day.replace(day=1)
        return first, _shift(first, 12 if period == "year" else 1)
    if period == "week":
        monday = day - dt.timedelta(days=day.weekday())
        return monday, monday + dt.timedelta(days=7)
    return day, day + dt.timedelta(days=1)


def _season(text: str, today: dt.date) -> DatedQuery | None:
    """ "summer 2023", "last winter", "this spring": three months from the season's first."""
    match = next((m for m in SEASON.finditer(text) if m["rel"] or m["year"]), None)
    if match is None:
        return None
    first = FIRST_MONTH[match["season"].lower()]
    if match["year"]:
        start = dt.date(int(match["year"]), first, 1)
    else:  # this: the season now or the latest before; last: the latest that has ended
        starts = (dt.date(today.year - 1, first, 1), dt.date(today.year, first, 1))
        start = max(d for d in starts if d <= today)
        if match["rel"].lower() == "last" and _shift(start, 3) > today:
            start = start.replace(year=start.year - 1)
    return _taken_out(text, match, start, _shift(start, 3))


def _shift(day: dt.date, months: int) -> dt.date:
    """The first of the month `months` after `day`'s."""
    month = day.month - 1 + months
    return dt.date(day.year + month // 12, month % 12 + 1, 1)
