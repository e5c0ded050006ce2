"""People named in a query ("alice at the beach", "alice and bob"): each name the user gave a person
(search/storage/people.py), or a word of it no other name has ("obama" for Barack Obama), found in the
words, any case, as whole words, becomes `person = "Name"`; the
names and the words joining them ("and", "with", "&", ",") leave what to look for. Where nothing else is
left ("alice"), the words stay as they are and rank the items the filter picks, every one of them a good
match (search/query/relevance.py, `named_alone`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

JOINING = r"(?:\s*(?:,|&|\band\b|\bwith\b)\s*)"


@dataclass(frozen=True)
class NamedQuery:
    text: str  # what to look for, the names taken out
    names: tuple[str, ...]  # the people meant, as they are named
    alone: bool = False  # the words were the names and nothing else: every item of theirs answers

    @property
    def where(self) -> str:
        return " and ".join(f'person = "{name}"' for name in self.names)


def _callings(names: Iterable[str]) -> dict[str, str]:
    """What a person may be called in a query: their whole name, and each word of it that no one else's
    name holds ("obama" for Barack Obama), any case."""
    whole = {n.lower(): n for n in names if n.strip()}
    parts: dict[str, set[str]] = {}
    for low, name in whole.items():
        for word in low.split():
            parts.setdefault(word, set()).add(name)
    own = {word: next(iter(them)) for word, them in parts.items() if len(them) == 1 and word not in whole}
    return own | whole


def named(text: str, names: Iterable[str]) -> NamedQuery | None:
    """The people among `names` that the words name, or None."""
    found = []
    callings = _callings(names)
    for calling in sorted(callings, key=len, reverse=True):  # "anna lee" before "anna"
        match = re.search(rf"(?<!\w){re.escape(calling)}(?!\w)", text, re.IGNORECASE)
        name = callings[calling]
        taken = any(a < match.end() and match.start() < b for a, b, _ in found) if match else True
        if not taken and name not in {n for _, _, n in found}:
            found.append((match.start(), match.end(), name))
    if not found:
        return None
    found.sort()
    cuts = [0, *(i for a, b, _ in found for i in (a, b)), len(text)]
    pieces = [text[cuts[i] : cuts[i + 1]] for i in range(0, len(cuts), 2)]  # what lies between the names
    edges = re.compile(rf"^{JOINING}+|{JOINING}+$", re.IGNORECASE)
    rest = " ".join(" ".join(edges.sub(" ", piece) for piece in pieces).split())
    return NamedQuery(rest or text, tuple(name for _, _, name in found), alone=not rest)
