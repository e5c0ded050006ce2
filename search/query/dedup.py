"""Duplicate finding: byte-identical files (same content hash) and near-identical pictures (image vectors
at least `threshold` alike: re-saved, re-compressed or resized copies), for review and export; and
`collapse`, which drops near-identical hits from a result list.

Near pairs come from FAISS `range_search` over the image index (inner product of unit vectors, so cosine
similarity), not from comparing every pair in Python. Groups grow from the strongest pairs down, and two
groups join only when every picture of one is at least `threshold` alike to every picture of the other
(complete linkage): a group never chains. Union-find over the pairs did: on 218 real files one "near"
group had 139 members whose least alike pair had cosine -0.89, and a half-size copy of a photo went to
another photo of the same tower instead of its original.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from mmsearch.hits import IMAGE_SPACE, INDEXED

if TYPE_CHECKING:
    from mmsearch.hits import Hit
    from mmsearch.storage.store import Store

EXACT, NEAR = "exact", "near"
CHUNK = 4096  # query vectors per range_search call, and segment ids per catalog lookup
CSV_COLUMNS = ("group", "kind", "min_similarity", "item_id", "uri")


@dataclass(frozen=True)
class Member:
    item_id: int
    uri: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Items that are copies of one another.

    kind: "exact" (one content hash, any kind of file) or "near" (whole images whose vectors are at least
    `threshold` alike, every member to every other). min_similarity: 1.0 for exact groups; for near groups
    the similarity of the least alike pair of members.
    """

    kind: str
    members: tuple[Member, ...]  # sorted by uri
    min_similarity: float


def find_duplicates(store: Store, threshold: float = 0.95) -> list[DuplicateGroup]:
    """Exact groups (indexed items sharing a content hash) and near groups (indexed whole images whose image
    vectors are at least `threshold` alike), largest first, then by first uri.

    Overlap rule: an exact copy is an exact group, and is also in whichever near group its picture falls
    into, with every member; a near group whose members all share one content hash says nothing the exact
    group does not, so it is left out. Two byte copies of a photo plus a resized one thus give the exact
    pair and a near group of all three.
    """
    items = {
        known.id: (uri, known.content_hash)
        for uri, known in store.catalog.known_files().items()
        if known.status == INDEXED
    }
    groups = _exact_groups(items) + _near_groups(store, threshold, items)
    return sorted(groups, key=lambda g: (-len(g.members), g.members[0].uri, g.kind))


def _exact_groups(items: dict[int, tuple[str, str | None]]) -> list[DuplicateGroup]:
    by_hash: dict[str, list[Member]] = defaultdict(list)
    for item_id, (uri, content_hash) in items.items():
        if content_hash is not None:
            by_hash[content_hash].append(Member(item_id, uri))
    return [_group(EXACT, members, 1.0) for members in by_hash.values() if len(members) > 1]


def _near_groups(
    store: Store, threshold: float, items: dict[int, tuple[str, str | None]]
) -> list[DuplicateGroup]:
    item_of = _image_items(store)
    a, b, sims = _near_pairs(store, threshold, item_of)
    alike: dict[tuple[int, int], float] = {}  # (lower item id, higher) -> their best similarity
    for x, y, sim in zip(a.tolist(), b.tolist(), sims.tolist(), strict=True):
        pair = _pair(x, y)
        alike[pair] = max(sim, alike.get(pair, sim))
    group_of: dict[int, list[int]] = {}  # item -> the member list its group shares
    for (x, y), _ in sorted(alike.items(), key=lambda kv: (-kv[1], kv[0])):  # strongest pairs first
        gx, gy = group_of.setdefault(x, [x]), group_of.setdefault(y, [y])
        if gx is gy or not all(_pair(p, q) in alike for p in gx for q in gy):
            continue  # already together, or some pair across the two is not alike enough
        gx.extend(gy)
        for q in gy:
            group_of[q] = gx
    groups = []
    for ids in {id(g): g for g in group_of.values()}.values():
        hashes = {items[i][1] for i in ids if i in items}
        if len(hashes) == 1 and None not in hashes:
            continue  # all byte copies: already an exact group
        members = [Member(i, items[i][0]) for i in ids if i in items]
        if len(members) > 1:
            weakest = min(alike[_pair(p, q)] for p, q in itertools.combinations(ids, 2))
            groups.append(_group(NEAR, members, min(weakest, 1.0)))
    return groups


def _pair(x: int, y: int) -> tuple[int, int]:
    return (x, y) if x < y else (y, x)


def _image_items(store: Store) -> dict[int, int]:
    """Segment id -> item id of whole images' picture segments (video keyframes share the space)."""
    seg_ids = store.catalog.segment_ids(kind="image")
    item_of: dict[int, int] = {}
    for start in range(0, len(seg_ids), CHUNK):
        for seg_id, row in store.catalog.hits(seg_ids[start : start + CHUNK]).items():
            if row.space == IMAGE_SPACE and row.kind == "image":
                item_of[seg_id] = row.item_id
    return item_of


def _near_pairs(
    store: Store, threshold: float, item_of: dict[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item a, item b, similarity) of distinct items whose image vectors are >= threshold alike, each
    pair once (by segment: a's segment id < b's)."""
    wanted = np.fromiter(sorted(item_of), np.int64, len(item_of))
    owners = np.fromiter((item_of[s] for s in wanted.tolist()), np.int64, len(wanted))
    seg_a, seg_b, sims = [], [], []
    # range_search keeps scores > radius; one float step down makes it >= threshold.
    radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))
    store.refresh()
    queries = wanted[np.isin(wanted, store.vectors[IMAGE_SPACE].ids())]
    for start in range(0, len(queries), CHUNK):
        q = queries[start : start + CHUNK]
        lims, scores, found = store.neighbours(IMAGE_SPACE, q, radius)
        rows = np.repeat(q, np.diff(lims).astype(np.int64))
        keep = (rows < found) & np.isin(found, queries)
        seg_a.append(rows[keep])
        seg_b.append(found[keep])
        sims.append(scores[keep])
    if not seg_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a = owners[np.searchsorted(wanted, np.concatenate(seg_a))]
    b = owners[np.searchsorted(wanted, np.concatenate(seg_b))]
    other = a != b  # an item with several picture segments is not its own duplicate
    return a[other], b[other], np.concatenate(sims)[other]


def _group(kind: str, members: Sequence[Member], min_similarity: float) -> DuplicateGroup:
    return DuplicateGroup(kind, tuple(sorted(members, key=lambda m: m.uri)), float(min_similarity))


def collapse(hits: list[Hit], vectors: np.ndarray, threshold: float) -> list[Hit]:
    """Hits (best first) without near-duplicates: a hit stays only if its vector (that of its best segment,
    row i for hits[i]) is less than `threshold` alike to every hit kept before it, so the best of each
    cluster of copies is the one shown."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.shape[0] != len(hits):
        raise ValueError(f"expected {len(hits)} vectors, got {vectors.shape[0]}")
    sims = vectors @ vectors.T
    kept: list[int] = []
    for i in range(len(hits)):
        if not kept or sims[i, kept].max() < threshold:
            kept.append(i)
    return [hits[i] for i in kept]


def groups_to_json(groups: Sequence[DuplicateGroup]) -> str:
    """A JSON list of {kind, members: [{item_id, uri}], min_similarity}, in the given order."""
    return json.dumps([asdict(g) for g in groups], indent=2)


def write_csv(groups: Sequence[DuplicateGroup], path_or_file: str | Path | IO[str]) -> None:
    """One row per member: group (numbered from 1, in the given order), kind, min_similarity, item_id, uri."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "w", newline="", encoding="utf-8") as f:
            write_csv(groups, f)
        return
    writer = csv.writer(path_or_file)
    writer.writerow(CSV_COLUMNS)
    for number, group in enumerate(groups, 1):
        for m in group.members:
            writer.writerow((number, group.kind, f"{group.min_similarity:.6f}", m.item_id, m.uri))
