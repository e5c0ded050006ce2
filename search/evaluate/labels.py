"""The labelled set: a small JSON file of queries with their relevant files (and moments), and an
optional folder-per-class set for zero-shot classification; read, checked, and tied to an index.

    {"name": "shapes-heldout", "root": "pictures",
     "queries": [{"text": "a red circle", "relevant": ["red-circle/0.jpg"]},
                 {"image": "queries/red-circle.jpg", "relevant": ["red-circle/0.jpg"]},
                 {"text": "the door", "relevant": ["tour.mp4"],
                  "moments": [{"path": "tour.mp4", "t0": 1.0, "t1": 2.5}]}],
     "zero_shot": {"folder": "pictures", "templates": ["a {}"]},
     "people": {"obama": ["faces/obama.jpg", "faces/obama2.jpg"], "biden": ["faces/biden.jpg"]},
     "concepts": {"flowers": {"query": "a photo of flowers", "items": ["garden/tulips.jpg", ...]}}}

Paths are relative to the root: the one given by the caller, else the file's `root` (itself relative to
the file's folder), else the file's folder. Every problem is an error that names it: a relevant file
the index does not hold would otherwise score a silent zero.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmsearch.config import Settings
from mmsearch.errors import ConfigError, IndexStateError
from mmsearch.hits import INDEXED
from mmsearch.storage.catalog import Catalog
from mmsearch.storage.layout import read_manifest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MomentLabel(_Strict):
    path: str
    t0: float = Field(ge=0)
    t1: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> MomentLabel:
        if self.t1 < self.t0:
            raise ValueError(f"t1 ({self.t1}) is before t0 ({self.t0})")
        return self


class QueryLabel(_Strict):
    """A text or an image query (exactly one), the files that answer it, and where in them."""

    id: str | None = None
    text: str | None = None
    image: str | None = None
    relevant: list[str] = Field(min_length=1)
    moments: list[MomentLabel] = []

    @model_validator(mode="after")
    def _one_query(self) -> QueryLabel:
        if (self.text is None) == (self.image is None):
            raise ValueError("give exactly one of text and image")
        if self.text is not None and not self.text.strip():
            raise ValueError("the text is blank")
        outside = sorted({m.path for m in self.moments} - set(self.relevant))
        if outside:
            raise ValueError(f"moments in files that are not relevant: {outside}")
        return self

    @property
    def kind(self) -> str:
        return "text" if self.text is not None else "image"


class ZeroShotLabel(_Strict):
    """A folder whose sub-folders are classes, each holding its pictures (every file but hidden ones); a
    class's label is its folder name with - and _ as spaces ("red-circle" -> "red circle")."""

    folder: str
    templates: list[str] | None = None


class ConceptLabel(_Strict):
    """A concept's files, and the words a zero-shot query would use for it (the baseline)."""

    query: str = Field(min_length=1)
    items: list[str] = Field(min_length=2)


class LabelledSet(_Strict):
    name: str
    about: str | None = None  # how the labels were established, for the reader
    root: str | None = None
    queries: list[QueryLabel] = []
    zero_shot: ZeroShotLabel | None = None
    people: dict[str, list[str]] = {}  # who is in which files (one face each): an index made with --faces
    concepts: dict[str, ConceptLabel] = {}  # concepts to teach by examples, each with its files

    @model_validator(mode="after")
    def _something(self) -> LabelledSet:
        if not (self.queries or self.zero_shot or self.people or self.concepts):
            raise ValueError("no queries, zero_shot set, people or concepts: nothing to evaluate")
        return self


@dataclass(frozen=True)
class Query:
    """A query with its files as the index names them (absolute paths, as the indexer writes uris)."""

    id: str
    kind: str  # "text" or "image"
    text: str | None
    image: Path | None
    relevant: frozenset[str]
    moments: dict[str, list[tuple[float, float]]]


@dataclass(frozen=True)
class ZeroShotSet:
    labels: list[str]
    pictures: list[tuple[Path, int]]  # (file, index of its label)
    templates: list[str] | None


@dataclass(frozen=True)
class Resolved:
    name: str
    root: Path
    queries: list[Query]
    zero_shot: ZeroShotSet | None
    people: dict[str, str] = field(default_factory=dict)  # file (as the index names it) -> who is in it
    concepts: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)  # name -> query, files


def load(path: Path) -> LabelledSet:
    """Read and check the file's shape; ConfigError naming the first problems."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the labelled set {path}: {exc}") from exc
    try:
        return LabelledSet.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConfigError(f"labelled set {path} is not valid: {problems}") from exc


def root_of(labelled: LabelledSet, path: Path, root: Path | None) -> Path:
    if root is not None:
        return root.resolve()
    folder = Path(path).resolve().parent
    return (folder / labelled.root).resolve() if labelled.root else folder


def resolve(labelled: LabelledSet, root: Path, indexed: set[str]) -> Resolved:
    """Tie the set to an index: every relevant file must be one of `indexed` (the index's uris), every
    query picture and the zero-shot folder must exist. ConfigError lists what is missing."""
    root = root.resolve()

    def uri(rel: str) -> str:
        return os.path.normpath(root / rel)  # the indexer's uri: the resolved root joined with the path

    missing: list[str] = []
    queries = []
    for n, q in enumerate(labelled.queries):
        missing += [
            f"query {n}: relevant {p} is not in the index" for p in q.relevant if uri(p) not in indexed
        ]
        image = None
        if q.image is not None:
            image = Path(uri(q.image))
            if not image.is_file():
                missing.append(f"query {n}: image {q.image} is not a file under {root}")
        moments: dict[str, list[tuple[float, float]]] = {}
        for m in q.moments:
            moments.setdefault(uri(m.path), []).append((m.t0, m.t1))
        queries.append(
            Query(
                q.id or f"{q.kind}:{q.text if q.text is not None else q.image}",
                q.kind,
                q.text,
                image,
                frozenset(map(uri, q.relevant)),
                moments,
            )
        )
    zero_shot = None
    if labelled.zero_shot is not None:
        zero_shot = _zero_shot(root / labelled.zero_shot.folder, labelled.zero_shot.templates, missing)
    people = {uri(f): who for who, files in labelled.people.items() for f in files}
    missing += [f"people: {f} is not in the index" for f in people if f not in indexed]
    concepts = {name: (c.query, frozenset(map(uri, c.items))) for name, c in labelled.concepts.items()}
    missing += [
        f"concept {name}: {f} is not in the index"
        for name, (_, files) in concepts.items()
        for f in sorted(files)
        if f not in indexed
    ]
    if missing:
        shown = "; ".join(missing[:10]) + (f"; and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ConfigError(f"labelled set {labelled.name!r} does not match the index: {shown}")
    return Resolved(labelled.name, root, queries, zero_shot, people, concepts)


def tie_to_index(labelled: LabelledSet, root: Path, settings: Settings) -> Resolved:
    """The set checked against the index's catalog alone (no model loaded), so a set that does not fit
    fails before anything slow starts."""
    if read_manifest(settings.index_dir) is None:
        raise IndexStateError(f"no index at {settings.index_dir}")
    catalog = Catalog(settings.catalog_url())
    try:
        indexed = {uri for uri, known in catalog.known_files().items() if known.status == INDEXED}
    finally:
        catalog.close()
    return resolve(labelled, root, indexed)


def label_of(folder_name: str) -> str:
    return " ".join(folder_name.replace("-", " ").replace("_", " ").split())


def _zero_shot(folder: Path, templates: list[str] | None, missing: list[str]) -> ZeroShotSet | None:
    classes = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    labels, pictures = [], []
    for n, cls in enumerate(classes):
        labels.append(label_of(cls.name))
        pictures += [(p, n) for p in sorted(cls.iterdir()) if p.is_file() and not p.name.startswith(".")]
    if not pictures:
        missing.append(f"zero_shot: {folder} has no class folders with pictures")
        return None
    return ZeroShotSet(labels, pictures, templates)
