"""What a query was understood to say besides what to look for: a date (search/query/when.py) and a
place (search/query/place.py), each taken out of the words and turned into a filter that callers show
back, so a wrong guess can be seen and switched off (`--literal`, `literal=true`)."""

from __future__ import annotations

from dataclasses import dataclass

from mmsearch.query.place import PlacedQuery
from mmsearch.query.when import DatedQuery


@dataclass(frozen=True)
class Understood:
    text: str  # what to look for: the query without the date and the place
    dated: DatedQuery | None
    placed: PlacedQuery | None

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
        """Both as one filter (docs/filters.md)."""
        return " and ".join(x.where for x in (self.dated, self.placed) if x is not None)

    def said(self) -> str:
        """One line for the user: "Searching 'beach' taken 'july 2023' near 'Rome, Italy': ..."."""
        taken = f" taken {self.when!r}" if self.when else ""
        near = f" near {self.place!r}" if self.place else ""
        return f"Searching {self.text!r}{taken}{near}: {self.where} (--literal searches the words as typed)"
