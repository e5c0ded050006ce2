"""Hits in another order than relevance: `--sort -taken_at` (newest first), `--sort price`, by any field
an item has (search/encode/photo_fields.py, a manifest's columns) or its file's `modified` time or `size`.

Relevance still decides which hits there are, then the good matches are put in order, the weaker ones
after them in the same order: sorting never lets a weak hit jump a good one. Hits without the field go
last, in relevance order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mmsearch.errors import InvalidQueryError
from mmsearch.hits import Hit

ITEM_COLUMNS = ("modified", "size")  # sort keys read from the item's own row, not its fields


def parse(sort: str) -> tuple[str, bool]:
    """ "-taken_at" -> ("taken_at", True): the field, and whether the largest comes first."""
    name = sort.strip()
    descending = name.startswith("-")
    name = name.lstrip("-+").strip()
    if not name.replace("_", "").isalnum():
        raise InvalidQueryError(f"sort by a field name, e.g. -taken_at or price, not {sort!r}")
    return name, descending


def ordered(
    hits: Sequence[Hit], sort: str, values_of: Callable[[str, list[int]], dict[int, float | str]]
) -> list[Hit]:
    """The hits by `sort` (see parse); `values_of(name, item ids)`: each item's value, where it has one."""
    name, descending = parse(sort)
    values = values_of(name, [h.item_id for h in hits])
    if values and len({type(v) for v in values.values()}) > 1:
        raise InvalidQueryError(
            f"{name} holds numbers for some items and text for others: it cannot order them"
        )

    def in_order(group: list[Hit]) -> list[Hit]:
        having = sorted(
            (h for h in group if h.item_id in values), key=lambda h: values[h.item_id], reverse=descending
        )
        return having + [h for h in group if h.item_id not in values]

    return in_order([h for h in hits if not h.weak]) + in_order([h for h in hits if h.weak])
