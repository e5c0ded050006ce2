"""Stacks: the shots of one moment (a burst, a few tries at one photo) and copies of one picture, kept
as files arrive, each shown as one hit with its best shot on top.

A new picture joins a stack in the writer's transaction (place) when it was taken within WINDOW_S of a
picture there (its EXIF time; the file's time where it has none) or is a byte-identical copy of one, and
its perceptual hash differs from every picture's of that stack in at most ALIKE_BITS bits (complete
linkage, as query/dedup.py groups: one alike neighbour cannot chain two scenes together); two such
pictures not yet stacked start one. The perceptual hash, not the model's vectors: a burst's frames
differ in focus, framing and exposure, which the hash is made to ignore, and with it stacks do not depend
on what the model is (with random weights, two different scenes' vectors were 0.98 alike).

The best shot is the one with the best measured look (`look`: sharpness, exposure and clipping,
search/encode/quality.py; a face cut by the picture's edge counts against it), unless the user picked
one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from mmsearch.errors import InvalidQueryError, NotFoundError
from mmsearch.hits import INDEXED
from mmsearch.storage.schema import FaceRow, Item, ItemField, StackMember, StackRow, State

WINDOW_S = 10.0  # seconds between two shots of one moment, at most
# The bits two shots' pHashes differ in, at most. On the 31 real scenes made into bursts: shots of one
# scene differ in 2 (blurred) to 22 (over-exposed) bits, 8 to 14 at the 90th percentile; shots of
# different scenes in 18 and more, 22 at the first percentile. Complete linkage keeps a scene whose
# every pair is that close apart: at 16, four scenes split in two stacks; at 18, none, and none mixed.
ALIKE_BITS = 18
# A shot's look (search/encode/quality.py): log(1 + SHARPNESS_SCALE * sharpness) + EXPOSURE_WEIGHT *
# exposure - CLIPPED_WEIGHT * clipped - CUT_FACE * each face the picture's edge cuts. On the 31 real scenes
# made into bursts (tests/test_stacks.py) it picks the intended frame in 31 indexed (30 on the frames
# before JPEG); on the 193 other real pictures made into bursts the same way, in 183 (94.8%).
SHARPNESS_SCALE = 1000.0
EXPOSURE_WEIGHT = 5.0
CLIPPED_WEIGHT = 10.0
CUT_FACE = 2.0
EDGE_PX = 2  # a face box this close to the picture's edge is cut by it
STATE = "stacks"  # the state row that says this index keeps stacks
CHUNK = 500  # pictures placed per transaction when stacking what is there


@dataclass(frozen=True)
class Shot:
    """A picture as it is written: when it was taken (seconds, naive local time or the file's), its
    perceptual hash (quality.py), its content hash."""

    item_id: int
    when: float
    phash: int | None
    content_hash: str | None


@dataclass(frozen=True)
class StackSummary:
    id: int
    best_item: int
    members: tuple[int, ...]  # best first, then by look
    picked: bool


def when_of(fields: dict | None, mtime_ns: int) -> float:
    """Seconds for the time window: the EXIF time as the camera's clock read it (a burst shares one
    offset), else the file's modification time."""
    taken = (fields or {}).get("taken_at")
    if isinstance(taken, str):
        try:
            return dt.datetime.fromisoformat(taken[:19]).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            pass
    return mtime_ns / 1e9


def look(measured: dict, cut_faces: int = 0) -> float:
    """How good a look a shot gives (higher is better), from its measured look and the faces cut."""
    return (
        math.log1p(SHARPNESS_SCALE * max(measured.get("sharpness", 0.0), 0.0))
        + EXPOSURE_WEIGHT * measured.get("exposure", 0.0)
        - CLIPPED_WEIGHT * measured.get("clipped", 0.0)
        - CUT_FACE * cut_faces
    )


def stacking(s: Session) -> bool:
    """Whether this index keeps stacks (Stacks.start turns it on)."""
    return bool(s.scalar(select(State.value).where(State.key == STATE)))


def place(s: Session, shots: Iterable[Shot]) -> None:
    """Each new shot into the stack it belongs to, or none; stacks it changed get their best shot again."""
    changed: set[int] = set()
    for shot in shots:
        _leave(s, shot.item_id, changed)
        if shot.phash is None:
            continue
        near = _hashes(s, [i for i in _near_in_time(s, shot) if i != shot.item_id])
        alike = sorted(
            (i for i, h in near.items() if _bits(h, shot.phash) <= ALIKE_BITS),
            key=lambda i: _bits(near[i], shot.phash),
        )
        stacked = select(StackMember.item_id, StackMember.stack_id).where(StackMember.item_id.in_(alike))
        stack_of = dict(s.execute(stacked).all())
        joined = None
        for other in alike:
            stack = stack_of.get(other)
            members = _members(s, stack) if stack is not None else [other]
            if joined is not None:  # a second group it is alike to: one stack, if every pair agrees
                if stack != joined and _alike(s, members, _members(s, joined)):
                    _merge(s, members, stack, joined)
                    stack_of.update(dict.fromkeys(members, joined))
                continue
            if _alike(s, members, [shot.item_id], {shot.item_id: shot.phash}):
                if stack is None:
                    stack = s.scalar(insert(StackRow).values(picked=False).returning(StackRow.id))
                    s.execute(insert(StackMember).values(item_id=other, stack_id=stack))
                    stack_of[other] = stack
                s.execute(insert(StackMember).values(item_id=shot.item_id, stack_id=stack))
                changed.add(stack)
                joined = stack
    for stack in changed:
        _choose_best(s, stack)


def _alike(s: Session, these: list[int], those: list[int], known: dict[int, int] | None = None) -> bool:
    """Every picture of `these` within ALIKE_BITS of every picture of `those`."""
    hashes = _hashes(s, [*these, *those]) | (known or {})
    return all(
        _bits(hashes[a], hashes[b]) <= ALIKE_BITS for a in these for b in those if a in hashes and b in hashes
    )


def _merge(s: Session, members: list[int], stack: int | None, into: int) -> None:
    """A stack (or a lone picture, `stack` None) joins another."""
    if stack is None:
        s.execute(insert(StackMember).values(item_id=members[0], stack_id=into))
        return
    s.execute(update(StackMember).where(StackMember.stack_id == stack).values(stack_id=into))
    s.execute(delete(StackRow).where(StackRow.id == stack))


def phash_of(meta: dict | None) -> int | None:
    """A picture's perceptual hash from its meta (measured at index time), as an int."""
    text = ((meta or {}).get("look") or {}).get("phash")
    return int(text, 16) if isinstance(text, str) else None


def _bits(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _leave(s: Session, item_id: int, changed: set[int]) -> None:
    """A file written again leaves its stack first (its look and time may have changed)."""
    stack = s.scalar(select(StackMember.stack_id).where(StackMember.item_id == item_id))
    if stack is not None:
        s.execute(delete(StackMember).where(StackMember.item_id == item_id))
        changed.add(stack)


def _near_in_time(s: Session, shot: Shot) -> list[int]:
    """Pictures taken within WINDOW_S of the shot, or with its content."""
    day = dt.datetime.fromtimestamp(shot.when, dt.timezone.utc).replace(tzinfo=None)
    low = (day - dt.timedelta(seconds=WINDOW_S)).isoformat()
    high = (day + dt.timedelta(seconds=WINDOW_S + 1)).isoformat()
    taken = select(ItemField.item_id).where(
        ItemField.name == "taken_at", ItemField.text >= low, ItemField.text < high
    )
    undated = select(ItemField.item_id).where(ItemField.name == "taken_at")
    by_file = select(Item.id).where(
        Item.id.not_in(undated),
        Item.mtime_ns.between(int((shot.when - WINDOW_S) * 1e9), int((shot.when + WINDOW_S) * 1e9)),
    )
    same = [Item.id.in_(taken), Item.id.in_(by_file)]
    if shot.content_hash:
        same.append(Item.content_hash == shot.content_hash)
    q = select(Item.id).where(or_(*same), Item.kind == "image").order_by(Item.id)
    return list(s.scalars(q))


def _hashes(s: Session, item_ids: list[int]) -> dict[int, int]:
    """Each item's perceptual hash, where it has one."""
    rows = s.execute(select(Item.id, Item.meta).where(Item.id.in_(item_ids)))
    return {i: h for i, meta in rows if (h := phash_of(meta)) is not None}


def _members(s: Session, stack: int) -> list[int]:
    return list(s.scalars(select(StackMember.item_id).where(StackMember.stack_id == stack)))


def _looks(s: Session, item_ids: list[int]) -> dict[int, float]:
    """Each item's look: its sharpness and exposure (measured at index time, the item's meta["look"]) and
    the faces its edge cuts."""
    rows = s.execute(select(Item.id, Item.width, Item.height, Item.meta).where(Item.id.in_(item_ids))).all()
    sizes = {i: (w, h) for i, w, h, _ in rows}
    measured = {i: (meta or {}).get("look", {}) for i, _, _, meta in rows}
    cut = dict.fromkeys(item_ids, 0)
    faces = select(FaceRow.item_id, FaceRow.box).where(FaceRow.item_id.in_(item_ids))
    for item_id, box in s.execute(faces):
        width, height = sizes.get(item_id) or (None, None)
        if width and height and _cut(box, width, height):
            cut[item_id] += 1
    return {i: look(measured.get(i, {}), cut[i]) for i in item_ids}


def _cut(box: list, width: int, height: int) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= EDGE_PX or y0 <= EDGE_PX or x1 >= width - EDGE_PX or y1 >= height - EDGE_PX


def _choose_best(s: Session, stack: int) -> None:
    """The best look of the stack, unless the user picked one that is still there; a stack of one or none
    is dissolved."""
    members = _members(s, stack)
    if len(members) < 2:
        s.execute(delete(StackRow).where(StackRow.id == stack))
        return
    row = s.get(StackRow, stack)
    if row.picked and row.best_item in members:
        return
    looks = _looks(s, members)
    best = max(members, key=lambda i: (looks[i], -i))
    s.execute(update(StackRow).where(StackRow.id == stack).values(best_item=best, picked=False))


def unmeasured(engine: Engine) -> list[tuple[int, str]]:
    """Indexed pictures without a measured look (indexed before looks were measured): (id, path)."""
    q = select(Item.id, Item.uri, Item.meta).where(Item.kind == "image", Item.status == INDEXED)
    with Session(engine) as s:
        return [(i, uri) for i, uri, meta in s.execute(q) if "look" not in (meta or {})]


def measured(engine: Engine, looks: dict[int, dict]) -> None:
    """Their looks, measured now, into their meta."""
    with Session(engine) as s, s.begin():
        for item_id, look_of in looks.items():
            item = s.get(Item, item_id)
            if item is not None:
                item.meta = {**(item.meta or {}), "look": look_of}


class Stacks:
    """The index's stacks: listed, their members, the stack of items, a best shot picked by the user."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def start(self) -> int:
        """Keep stacks from now on, and stack the pictures already indexed, in the order they were taken:
        how many stacks there are."""
        with Session(self.engine) as s, s.begin():
            if s.get(State, STATE) is None:
                s.add(State(key=STATE, value=1))
        with Session(self.engine) as s:
            dated = select(ItemField.item_id, ItemField.text).where(ItemField.name == "taken_at")
            taken = dict(s.execute(dated).all())
            rows = s.execute(
                select(Item.id, Item.mtime_ns, Item.content_hash)
                .where(Item.kind == "image")
                .order_by(Item.id)
            ).all()
        shots = sorted(
            ((when_of({"taken_at": taken.get(i)}, mtime), i, digest) for i, mtime, digest in rows),
            key=lambda shot: shot[:2],
        )
        for start in range(0, len(shots), CHUNK):
            with Session(self.engine) as s, s.begin():
                chunk = shots[start : start + CHUNK]
                hashes = _hashes(s, [i for _, i, _ in chunk])
                place(s, [Shot(i, when, hashes.get(i), digest) for when, i, digest in chunk])
        return self.count()

    def keeping(self) -> bool:
        """Whether this index keeps stacks."""
        with Session(self.engine) as s:
            return stacking(s)

    def count(self) -> int:
        """How many stacks there are (of two shots or more)."""
        sizes = select(StackMember.stack_id).group_by(StackMember.stack_id).having(func.count() >= 2)
        with Session(self.engine) as s:
            return s.scalar(select(func.count()).select_from(sizes.subquery())) or 0

    def listed(self, limit: int | None = 100) -> list[StackSummary]:
        """The stacks, largest first."""
        size = func.count(StackMember.item_id)
        q = (
            select(StackMember.stack_id)
            .group_by(StackMember.stack_id)
            .having(size >= 2)
            .order_by(size.desc(), StackMember.stack_id)
            .limit(limit)
        )
        with Session(self.engine) as s:
            return [self._summary(s, stack) for stack in s.scalars(q)]

    def stack(self, stack_id: int) -> StackSummary:
        with Session(self.engine) as s:
            if s.get(StackRow, stack_id) is None:
                raise NotFoundError(f"no stack {stack_id}")
            return self._summary(s, stack_id)

    def of_items(self, item_ids: list[int]) -> dict[int, tuple[int, int, int]]:
        """item id -> (its stack, the stack's best shot, how many shots it holds), for stacked items."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(StackMember.item_id, StackMember.stack_id).where(StackMember.item_id.in_(item_ids))
            ).all()
            stacks = {stack for _, stack in rows}
            if not stacks:
                return {}
            sizes = dict(
                s.execute(
                    select(StackMember.stack_id, func.count())
                    .where(StackMember.stack_id.in_(stacks))
                    .group_by(StackMember.stack_id)
                ).all()
            )
            best_of = select(StackRow.id, StackRow.best_item).where(StackRow.id.in_(stacks))
            best = dict(s.execute(best_of).all())
        return {item: (stack, best[stack], sizes[stack]) for item, stack in rows if sizes[stack] >= 2}

    def pick(self, stack_id: int, item_id: int) -> StackSummary:
        """The user's best shot for a stack: kept as files arrive."""
        with Session(self.engine) as s, s.begin():
            if s.get(StackRow, stack_id) is None:
                raise NotFoundError(f"no stack {stack_id}")
            if item_id not in _members(s, stack_id):
                raise InvalidQueryError(f"item {item_id} is not in stack {stack_id}")
            s.execute(update(StackRow).where(StackRow.id == stack_id).values(best_item=item_id, picked=True))
        return self.stack(stack_id)

    def _summary(self, s: Session, stack: int) -> StackSummary:
        row = s.get(StackRow, stack)
        members = _members(s, stack)
        looks = _looks(s, members)
        order = sorted(members, key=lambda i: (i != row.best_item, -looks[i], i))
        return StackSummary(stack, row.best_item, tuple(order), row.picked)
