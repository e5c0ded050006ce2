"""The filter language: `category = "shoes" and price < 50`, parsed with lark and compiled to SQL.

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | place | comparison
    place      := "near" lat,lon distance | "within" lat,lon lat,lon
    comparison := field op value | field ["not"] "in" "[" value, ... "]"
    op         := = | != | < | <= | > | >= | ~ (contains, any case) | ^= (starts with)
    value      := 12 | -3.5 | "text" | 'text' | 2024-05-01 | true | false | bare_word

Built-in fields: `kind`, `path` (the file's path), `size` (bytes), `width`, `height`, `duration`
(seconds), `indexed` and `modified` (dates), `tag` (a label on the item), `person` (a named person's
face is in it: search/storage/people.py), `concept` (a concept taught by examples holds it:
search/storage/concepts.py), `stack` (its number: the shots of one moment, search/storage/stacks.py).
Any other name is a user field from a manifest: numbers compare as numbers, text as text (so
`price < 50` never compares "100" < "50" as strings). A comparison with a field an item does not have is
false for that item; a field no item of the index has is an error that names the fields there are (a
typo would otherwise quietly find nothing). Places are photos' GPS fields (gps_lat, gps_lon):
`near 48.858,2.294 2km` is a great-circle radius (m, km or mi), `within 48.80,2.22 48.91,2.47` a box
from its south-west corner to its north-east one (across the antimeridian when west > east).
The compiled condition selects catalog items; the engine turns it into the segment ids FAISS may
return (a pre-filter: a filtered top-k is never starved).
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Callable, Collection
from functools import cache, lru_cache

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from sqlalchemy import and_, exists, false, func, not_, or_, select, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from mmsearch.errors import InvalidQueryError
from mmsearch.query.place import EARTH_KM, KM_PER_DEGREE
from mmsearch.query.place import FIELDS as PLACE
from mmsearch.storage.concepts import SOURCE as CONCEPT
from mmsearch.storage.schema import FaceRow, Item, ItemField, Person, Segment, StackMember, Tag

GRAMMAR = r"""
?start: expr
?expr: term (_OR term)*        -> any_of
?term: factor (_AND factor)*   -> all_of
?factor: _NOT factor           -> negate
       | "(" expr ")"
       | _NEAR COORD DISTANCE   -> near
       | _WITHIN COORD COORD    -> within
       | comparison
comparison: FIELD OP value              -> compare
          | FIELD _IN "[" [value ("," value)*] "]"        -> one_of
          | FIELD _NOT _IN "[" [value ("," value)*] "]"   -> none_of
?value: SIGNED_NUMBER  -> number
      | STRING         -> string
      | DATE           -> date
      | WORD           -> word
_OR: /or\b/i
_AND: /and\b/i
_NOT: /not\b/i
_IN: /in\b/i
_NEAR: /near\b/i
_WITHIN: /within\b/i
COORD: /[+-]?\d+(\.\d+)?\s*,\s*[+-]?\d+(\.\d+)?/
DISTANCE: /\d+(\.\d+)?\s*(km|mi|m)\b/i
OP: "!=" | "<=" | ">=" | "^=" | "=" | "<" | ">" | "~"
FIELD.-1: /[A-Za-z_][A-Za-z0-9_]*/
WORD.-2: /[A-Za-z_][A-Za-z0-9_.\-]*/
DATE.2: /\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?/
STRING: /"(\\.|[^"\\])*"/ | /'(\\.|[^'\\])*'/
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""

NUMERIC_COLUMNS = {"size": Item.size, "width": Item.width, "height": Item.height}
BUILT_IN = (
    "kind",
    "path",
    "size",
    "width",
    "height",
    "duration",
    "indexed",
    "modified",
    "tag",
    "person",
    "concept",
    "stack",
)
VALUE = 'a value (a number, "text", a date or a word)'
# What the parser expected, in words: lark names terminals, not what a user types.
EXPECTED = {
    "FIELD": "a field name",
    "OP": "a comparison (=, !=, <, <=, >, >=, ~, ^=)",
    "SIGNED_NUMBER": VALUE,
    "STRING": VALUE,
    "DATE": VALUE,
    "WORD": VALUE,
    "_IN": "'in'",
    "COORD": "a place as latitude,longitude (48.858,2.294)",
    "DISTANCE": "a distance (500m, 2km, 3mi)",
    "_NEAR": "'near'",
    "_WITHIN": "'within'",
    "_NOT": "'not'",
    "_AND": "'and'",
    "_OR": "'or'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "$END": "the end of the filter",
}
COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
MAX_CHARS = 2000
KM_PER_UNIT = {"m": 0.001, "km": 1.0, "mi": 1.609344}


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr")


@lru_cache(maxsize=256)
def _tree(expression: str) -> Tree:
    """An expression parsed once: a search checks its filter, narrows ids, finds keywords and tries a
    city with the same one (a failed parse raises, and is not kept)."""
    return _parser().parse(expression)


def _unquote(text: str) -> str:
    return text[1:-1].encode("utf-8").decode("unicode_escape") if "\\" in text else text[1:-1]


@v_args(inline=True)
class _Compile(Transformer):
    """Parse tree -> SQLAlchemy condition on Item; `fields`: the index's user fields, when known."""

    def __init__(self, fields: Collection[str] | None):
        super().__init__()
        self.fields = fields

    def number(self, tok: Token) -> float:
        return float(tok)

    def string(self, tok: Token) -> str:
        return _unquote(str(tok))

    def date(self, tok: Token) -> dt.datetime:
        return dt.datetime.fromisoformat(str(tok)).replace(tzinfo=dt.timezone.utc)

    def word(self, tok: Token) -> str | bool:
        lowered = str(tok).lower()
        return {"true": True, "false": False}.get(lowered, str(tok))

    def any_of(self, *conditions: ColumnElement) -> ColumnElement:
        return or_(*conditions)

    def all_of(self, *conditions: ColumnElement) -> ColumnElement:
        return and_(*conditions)

    def negate(self, condition: ColumnElement) -> ColumnElement:
        return not_(condition)

    def compare(self, field: Token, op: Token, value) -> ColumnElement:
        self._check(str(field))
        return _comparison(str(field), str(op), value)

    def one_of(self, field: Token, *values) -> ColumnElement:
        self._check(str(field))
        values = [v for v in values if v is not None]
        return or_(*(_comparison(str(field), "=", v) for v in values)) if values else false()

    def _check(self, field: str) -> None:
        if self.fields is None or field.lower() in BUILT_IN or field in self.fields:
            return
        known = sorted(self.fields)
        close = difflib.get_close_matches(field, [*known, *BUILT_IN], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        theirs = (
            f"; and of its items' own: {', '.join(known)}"
            if known
            else "; no item has fields of its own (a manifest's columns, a photo's date, camera or place)"
        )
        raise InvalidQueryError(
            f"unknown field {field!r}: {hint}this index has {', '.join(BUILT_IN)}{theirs}"
        )

    def none_of(self, field: Token, *values) -> ColumnElement:
        return not_(self.one_of(field, *values))

    def near(self, coord: Token, distance: Token) -> ColumnElement:
        self._check_places("near")
        lat, lon = _coord(coord)
        km = _km(distance)
        return _at_place(lambda la, lo: _within_km(la, lo, lat, lon, km))

    def within(self, corner: Token, other: Token) -> ColumnElement:
        self._check_places("within")
        (south, west), (north, east) = _coord(corner), _coord(other)
        if south > north:
            raise InvalidQueryError(f"within {corner} {other}: the first corner is the south-west one")
        return _at_place(lambda la, lo: and_(la.between(south, north), _east_of(lo, west, east)))

    def _check_places(self, word: str) -> None:
        if self.fields is not None and not set(PLACE) <= set(self.fields):
            raise InvalidQueryError(
                f"{word}: no item of this index has a place (GPS fields from photos' EXIF)"
            )


def _text_op(column, op: str, value: str) -> ColumnElement:
    if op == "~":
        return func.lower(column).contains(value.lower(), autoescape=True)
    if op == "^=":
        return column.startswith(value, autoescape=True)
    return COMPARE[op](column, value)


def _need(kind: type | tuple[type, ...], field: str, op: str, value, what: str) -> None:
    if not isinstance(value, kind):
        raise InvalidQueryError(f"{field} {op} {value!r}: {field} takes {what}")


def _comparison(field: str, op: str, value) -> ColumnElement:
    name = field.lower()
    if name in ("kind", "path"):
        _need(str, field, op, value, "text")
        return _text_op(Item.kind if name == "kind" else Item.uri, op, value)
    if op in ("~", "^=") and not isinstance(value, str):
        raise InvalidQueryError(f"{field} {op} needs text, not {value!r}")
    if name in NUMERIC_COLUMNS:
        _need(float, field, op, value, "a number")
        return COMPARE[op](NUMERIC_COLUMNS[name], value)
    if name == "duration":
        _need(float, field, op, value, "a number of seconds")
        return COMPARE[op](Item.meta["duration"].as_float(), value)
    if name in ("indexed", "modified"):
        _need(dt.datetime, field, op, value, "a date like 2024-05-01")
        if name == "indexed":
            return COMPARE[op](Item.indexed_at, value)
        return COMPARE[op](Item.mtime_ns, int(value.timestamp() * 1e9))
    if name in ("tag", "concept"):
        _need(str, field, op, value, "a label" if name == "tag" else "a concept's name")
        if op not in ("=", "!="):
            raise InvalidQueryError(f"{name} {op}: {name}s compare with =, !=, in and not in")
        tagged = select(Tag.item_id).where(Tag.item_id == Item.id, Tag.label == value)
        has = exists(tagged.where(Tag.source == CONCEPT) if name == "concept" else tagged)
        return has if op == "=" else not_(has)
    if name == "person":
        _need((str, float), field, op, value, "a person's name, or their number (mmsearch people list)")
        if op not in ("=", "!="):
            raise InvalidQueryError(f"person {op}: people compare with =, !=, in and not in")
        # In a video, only the moments the person is seen: where the condition selects segments
        # (Catalog.segment_ids), Segment is the outer query's and the face must be on it.
        seen = or_(Item.kind != "video", FaceRow.segment_id == Segment.id)
        named = select(FaceRow.id).join(Person, Person.id == FaceRow.person_id)
        if isinstance(value, str):
            who = func.lower(Person.name) == func.lower(value)
        else:
            who = Person.id == int(value)
        has = exists(named.where(FaceRow.item_id == Item.id, who, seen))
        return has if op == "=" else not_(has)
    if name == "stack":
        _need(float, field, op, value, "a stack's number (mmsearch stacks list)")
        if op not in ("=", "!="):
            raise InvalidQueryError(f"stack {op}: stacks compare with =, !=, in and not in")
        member = select(StackMember.item_id).where(StackMember.item_id == Item.id)
        has = exists(member.where(StackMember.stack_id == int(value)))
        return has if op == "=" else not_(has)
    return _user_field(field, op, value)


def _coord(token: Token) -> tuple[float, float]:
    lat, lon = (float(x) for x in str(token).split(","))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidQueryError(f"{token}: a place is latitude (-90 to 90),longitude (-180 to 180)")
    return lat, lon


def _km(token: Token) -> float:
    text = str(token).lower()
    number = text.rstrip("kmi ")
    km = float(number) * KM_PER_UNIT[text[len(number) :].strip()]
    if not 0 < km <= math.pi * EARTH_KM:
        raise InvalidQueryError(f"{token}: a distance is over 0 and at most half the way round the Earth")
    return km


def _at_place(where: Callable[[ColumnElement, ColumnElement], ColumnElement]) -> ColumnElement:
    """Items whose latitude and longitude fields meet `where(lat, lon)`."""
    lat, lon = aliased(ItemField), aliased(ItemField)
    return exists(
        select(lat.item_id)
        .join(lon, and_(lon.item_id == lat.item_id, lon.name == PLACE[1]))
        .where(lat.item_id == Item.id, lat.name == PLACE[0], where(lat.num, lon.num))
    )


def _east_of(lon, west: float, east: float) -> ColumnElement:
    """Longitude from `west` eastward to `east`: across the antimeridian when west > east."""
    return lon.between(west, east) if west <= east else or_(lon >= west, lon <= east)


def _within_km(lat, lon, lat0: float, lon0: float, km: float) -> ColumnElement:
    """Great-circle distance at most `km`, by the haversine: hav(d / R) <= hav(km / R), so no arcsine
    (out of its domain by a rounding error at antipodes); the band of latitude first, an indexed range."""
    band = km / KM_PER_DEGREE
    half_dlat = (func.radians(lat) - math.radians(lat0)) / 2
    half_dlon = (func.radians(lon) - math.radians(lon0)) / 2
    hav = func.sin(half_dlat) * func.sin(half_dlat) + math.cos(math.radians(lat0)) * func.cos(
        func.radians(lat)
    ) * func.sin(half_dlon) * func.sin(half_dlon)
    return and_(lat.between(lat0 - band, lat0 + band), hav <= math.sin(km / EARTH_KM / 2) ** 2)


def _user_field(field: str, op: str, value) -> ColumnElement:
    if isinstance(value, bool):
        value = float(value)
    if isinstance(value, dt.datetime):
        value = value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    column = ItemField.num if isinstance(value, float) else ItemField.text
    condition = COMPARE[op](column, value) if op in COMPARE else _text_op(column, op, value)
    # An item without the field matches no comparison on it, `!=` included: it has no value to differ.
    return exists(
        select(ItemField.item_id).where(ItemField.item_id == Item.id, ItemField.name == field, condition)
    )


def example(fields: dict[str, float | str]) -> str:
    """A filter that fits this index, for a placeholder: on its first numeric manifest field, else its
    first text field, else the built-in kind."""
    numeric = [(name, value) for name, value in fields.items() if isinstance(value, float)]
    if numeric:
        name, mean = numeric[0]
        return f"{name} < {float(f'{mean:.2g}'):g}"
    if fields:
        name, value = next(iter(fields.items()))
        return f"{name} = {value!r}" if '"' in str(value) else f'{name} = "{value}"'
    return "kind = video and duration > 60"


def parse(expression: str, fields: Collection[str] | None = None) -> ColumnElement:
    """A filter expression -> a condition on catalog items. Raises InvalidQueryError in plain words, with
    the position; with `fields` (the index's user fields), also for a field the index does not have."""
    if len(expression) > MAX_CHARS:
        raise InvalidQueryError(f"the filter is over {MAX_CHARS} characters")
    if not expression.strip():
        return true()
    try:
        return _Compile(fields).transform(_tree(expression))
    except VisitError as exc:
        if isinstance(exc.orig_exc, InvalidQueryError):
            raise exc.orig_exc from None
        raise InvalidQueryError(f"invalid filter {expression!r}: {exc.orig_exc}") from None
    except UnexpectedInput as exc:
        raise InvalidQueryError(f"invalid filter {expression!r}: {_in_words(exc, expression)}") from None
    except LarkError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidQueryError(f"invalid filter {expression!r}: {first}") from None


def _in_words(exc: UnexpectedInput, expression: str) -> str:
    """What went wrong where, as a user would say it: "expected a value after '<', at the end"."""
    if isinstance(exc, UnexpectedCharacters):
        return f"{expression[exc.pos_in_stream]!r} at character {exc.column} is not part of a filter"
    names = getattr(exc, "expected", ()) or ()
    order = list(EXPECTED)
    ranked = sorted(names, key=lambda n: order.index(n) if n in order else len(order))
    expected = dict.fromkeys(EXPECTED.get(n, n.lower()) for n in ranked)
    wanted = " or ".join(expected) if expected else "something else"
    token = getattr(exc, "token", None)
    if not isinstance(exc, UnexpectedToken) or token is None or token.type == "$END":
        after = expression.rstrip().split()[-1]
        return f"it ends too soon: expected {wanted} after {after!r}"
    return f"expected {wanted} at character {token.column}, not {str(token)!r}"
