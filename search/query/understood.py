"""What a query was understood to say besides what to look for: a date (search/query/when.py), people
by name (search/query/who.py) and a place (search/query/place.py), each taken out of the words and turned
into a filter that callers show back, so a wrong guess can be seen and switched off (`--literal`,
`literal=true`)."""

from __future__ import annotations

from dataclasses import dataclass

from mmsearch.query.place import PlacedQuery
from mmsearch.query.when import DatedQuery
from mmsearch.query.who import NamedQuery


@dataclass(frozen=True)
class Understood:
    text: str  # what to look for: the query without the date, the people and the place
    dated: DatedQuery | None
    placed: PlacedQuery | None
    named: NamedQuery | None = None

    @property
    def who(self) -> list[str]:
        """The people meant, as named: ["Alice", "Bob"]."""
        return list(self.named.names) if self.named else []

    @property
    def when(self) -> str | None:
        """The date as typed: "july 2023"."""
        return self.dated.phrase if self.dated else None

    @property
    def place(self) -> str | None:
        """The place meant, with its country: "Rome, Italy"."""
        return f"{self.placed.city.name}, {self.placed.city.country}" if self.placed else None

    @property
    def where(self) -> str:
        """All of them as one filter (docs/filters.md)."""
        return " and ".join(x.where for x in (self.dated, self.named, self.placed) if x is not None)

    def said(self) -> str:
        """One line for the user: "Searching 'beach' with 'Alice' taken 'july 2023' near 'Nice, France':
        ..."."""
        taken = f" taken {self.when!r}" if self.when else ""
        near = f" near {self.place!r}" if self.place else ""
        who = f" with {' and '.join(map(repr, self.who))}" if self.who else ""
        where = f"{who}{taken}{near}"
        what, literal = (repr(self.text), "the words as typed") if self.text else ("the picture", "it alone")
        return f"Searching {what}{where}: {self.where} (--literal searches {literal})"
