"""Run a labelled set against an index: every query through the engine (ranks, scores, moments, wall
time), the zero-shot set through the classifier, and the metrics of metrics.py over the results."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmsearch.defaults import MAX_FILE_BYTES
from mmsearch.encode.images import is_raw
from mmsearch.errors import ConfigError, MediaError
from mmsearch.evaluate import metrics
from mmsearch.evaluate.concepts import ConceptCurve, concept_curves
from mmsearch.evaluate.labels import Query, Resolved, ZeroShotSet
from mmsearch.hits import Hit, Moment
from mmsearch.learn.classify import ZeroShotClassifier
from mmsearch.query.engine import Engine
from mmsearch.query.request import Picture
from mmsearch.user_files import read_file

CUTOFFS = (1, 5, 10)  # recall@k; nDCG is taken at the last
IOU_HIT = 0.5  # a moment counts as found at this temporal IoU or more
TOP_CLASSES = 5  # zero-shot top-5 accuracy (fewer labels: all of them)
BATCH = 32  # zero-shot pictures encoded at a time


@dataclass(frozen=True)
class QueryResult:
    id: str
    kind: str
    relevant: int
    ranks: list[int]  # 1-based positions of relevant hits among those returned
    scores: list[tuple[float, bool]]  # every returned hit's score, and whether it is relevant
    moment_iou: float | None  # best_moment_iou; None when the query has no labelled moments
    top_moment_iou: float | None  # the top hit's own moment against its file's labels (0: a wrong file)
    seconds: float  # wall time of the engine query


@dataclass(frozen=True)
class ZeroShotResult:
    labels: list[str]
    top1: float
    top5: float
    confusion: np.ndarray  # row = true label, column = top-1 prediction


@dataclass(frozen=True)
class PeopleResult:
    files: int
    people: int
    precision: float  # pairwise, of the grouping (metrics.pairwise)
    recall: float
    found: float  # mean share of each person's files in the group that holds most of them


@dataclass
class IndexReport:
    index: str
    model: str
    depth: int
    queries: list[QueryResult] = field(default_factory=list)
    zero_shot: ZeroShotResult | None = None
    people: PeopleResult | None = None
    concepts: list[ConceptCurve] = field(default_factory=list)

    def retrieval(self, kind: str | None = None) -> dict[str, float] | None:
        """Means over the queries (of one kind, or all): recall@1/5/10, MRR, nDCG@10."""
        chosen = [q for q in self.queries if kind is None or q.kind == kind]
        if not chosen:
            return None
        out = {
            f"recall@{k}": float(np.mean([metrics.recall_at(q.ranks, q.relevant, k) for q in chosen]))
            for k in CUTOFFS
        }
        out["mrr"] = metrics.mean_reciprocal_rank([min(q.ranks, default=None) for q in chosen])
        ndcg = [metrics.ndcg_at(q.ranks, q.relevant, CUTOFFS[-1]) for q in chosen]
        out[f"ndcg@{CUTOFFS[-1]}"] = float(np.mean(ndcg))
        return out

    def recall_curve(self) -> list[float]:
        """Mean recall@k for k = 1 .. depth, over all queries."""
        return [
            float(np.mean([metrics.recall_at(q.ranks, q.relevant, k) for q in self.queries]))
            for k in range(1, self.depth + 1)
        ]

    def moment_hit_rate(self) -> float | None:
        """Share of the queries with labelled moments whose first hit on a labelled file has a moment at
        IoU >= 0.5 with one of that file's labelled moments (no such hit in the top depth: a miss)."""
        ious = [q.moment_iou for q in self.queries if q.moment_iou is not None]
        return sum(iou >= IOU_HIT for iou in ious) / len(ious) if ious else None

    def top1_moment_rate(self) -> float | None:
        """Share of the queries with labelled moments whose top hit is a labelled file and whose own moment
        (the hit's best) overlaps one of that file's labelled moments at IoU >= 0.5: the right file at
        the right moment, first."""
        ious = [q.top_moment_iou for q in self.queries if q.top_moment_iou is not None]
        return sum(iou >= IOU_HIT for iou in ious) / len(ious) if ious else None

    def latency_ms(self) -> dict[str, float] | None:
        times = [q.seconds * 1000 for q in self.queries]
        if not times:
            return None
        return {"p50": metrics.percentile(times, 50), "p95": metrics.percentile(times, 95)}

    def summary(self) -> dict[str, float | None]:
        """Every headline figure by one flat name, as the table and the comparison show them."""
        flat: dict[str, float | None] = {}
        for kind in ("text", "image", None):
            for name, value in (self.retrieval(kind) or {}).items():
                flat[f"{kind or 'all'} {name}"] = value
        flat["moment hit rate @ IoU 0.5"] = self.moment_hit_rate()
        flat["top-1 file and moment"] = self.top1_moment_rate()
        if self.zero_shot is not None:
            flat["zero-shot top-1"] = self.zero_shot.top1
            flat["zero-shot top-5"] = self.zero_shot.top5
        if self.people is not None:
            flat["people pairwise precision"] = self.people.precision
            flat["people pairwise recall"] = self.people.recall
            flat["people found"] = self.people.found
        flat |= self.concept_summary()
        for name, value in (self.latency_ms() or {}).items():
            flat[f"latency {name} ms"] = value
        return {k: v for k, v in flat.items() if v is not None}

    def concept_summary(self) -> dict[str, float]:
        """Means over the concepts, per number of examples: each method's AP beside zero-shot's, and the
        probe's precision and recall at its decision threshold."""
        flat: dict[str, float] = {}
        counts = sorted({n for c in self.concepts for n in c.zero_shot_ap})
        for n in counts:
            had = [c for c in self.concepts if n in c.zero_shot_ap]
            flat[f"concept AP, {n} examples, zero-shot text"] = float(
                np.mean([c.zero_shot_ap[n] for c in had])
            )
            for method in had[0].ap:
                flat[f"concept AP, {n} examples, {method}"] = float(np.mean([c.ap[method][n] for c in had]))
            flat[f"concept precision, {n} examples"] = float(np.mean([c.precision[n] for c in had]))
            flat[f"concept recall, {n} examples"] = float(np.mean([c.recall[n] for c in had]))
        return flat

    def to_dict(self) -> dict:
        zero_shot = None
        if self.zero_shot is not None:
            z = self.zero_shot
            zero_shot = {
                "labels": z.labels,
                "top1": z.top1,
                "top5": z.top5,
                "confusion": z.confusion.tolist(),
            }
        return {
            "index": self.index,
            "model": self.model,
            "depth": self.depth,
            "retrieval": {kind or "all": self.retrieval(kind) for kind in ("text", "image", None)},
            "moment_hit_rate": self.moment_hit_rate(),
            "top1_moment_rate": self.top1_moment_rate(),
            "zero_shot": zero_shot,
            "people": None if self.people is None else vars(self.people),
            "concepts": [vars(c) for c in self.concepts],
            "latency_ms": self.latency_ms(),
            "queries": [
                {
                    "id": q.id,
                    "kind": q.kind,
                    "relevant": q.relevant,
                    "ranks": q.ranks,
                    "reciprocal_rank": metrics.reciprocal_rank(q.ranks),
                    "moment_iou": q.moment_iou,
                    "top_moment_iou": q.top_moment_iou,
                    "ms": q.seconds * 1000,
                }
                for q in self.queries
            ],
        }


def evaluate(engine: Engine, labelled: Resolved, depth: int = CUTOFFS[-1]) -> IndexReport:
    """Every query of the set through `engine` (top `depth` hits each) and its zero-shot set through a
    classifier on the engine's model."""
    if depth < CUTOFFS[-1]:
        raise ConfigError(f"depth must be at least {CUTOFFS[-1]} (recall@{CUTOFFS[-1]}), not {depth}")
    model = engine.store.manifest["model"]
    report = IndexReport(
        str(engine.store.folder), f"{model['name']} {model.get('pretrained') or ''}".strip(), depth
    )
    searches = [_search(engine, q, depth) for q in labelled.queries]
    if searches:
        searches[0]()  # once untimed: first-query setup (background samples, lazy loads) is not latency
    for query, search in zip(labelled.queries, searches, strict=True):
        start = time.perf_counter()
        hits = search()
        report.queries.append(result_of(query, hits, time.perf_counter() - start))
    if labelled.zero_shot is not None:
        report.zero_shot = zero_shot(engine, labelled.zero_shot)
    if labelled.people:
        report.people = people(engine, labelled.people)
    if labelled.concepts:
        report.concepts = concept_curves(engine, labelled.concepts)
    return report


def people(engine: Engine, truth: dict[str, str]) -> PeopleResult:
    """How the index grouped the labelled files' faces into people (each file's largest face)."""
    groups = engine.people.of_files(list(truth))
    precision, recall = metrics.pairwise(truth, groups)
    found = []
    for who in set(truth.values()):
        theirs = [f for f, w in truth.items() if w == who]
        held = Counter(groups.get(f) for f in theirs if groups.get(f) is not None)
        found.append(max(held.values(), default=0) / len(theirs))
    return PeopleResult(len(truth), len(found), precision, recall, float(np.mean(found)))


def _search(engine: Engine, query: Query, depth: int) -> Callable[[], list[Hit]]:
    """The engine call a query makes, its picture decoded beforehand so only the search is timed."""
    if query.text is not None:
        text = query.text
        return lambda: engine.search_text(text, k=depth)
    picture = _picture(engine, query.image)
    return lambda: engine.search_image(picture, k=depth)


def _picture(engine: Engine, path: Path):
    try:
        return engine.picture(Picture(read_file(path, MAX_FILE_BYTES), is_raw(path))).image
    except MediaError as exc:
        raise ConfigError(f"cannot read the picture {path}: {exc}") from exc


def result_of(query: Query, hits: list[Hit], seconds: float) -> QueryResult:
    """A query's ranks, scores and moment IoU from the hits the engine returned."""
    relevant = [h.uri in query.relevant for h in hits]
    moment_iou = top_moment_iou = None
    if query.moments:
        ranked = [(h.uri, [_span(m) for m in h.moments]) for h in hits]
        moment_iou = metrics.best_moment_iou(ranked, query.moments) or 0.0
        top = hits[0] if hits else None
        top_moment_iou = 0.0
        if top is not None and top.uri in query.moments and _span(top.moments[0]) is not None:
            top_moment_iou = max(metrics.iou(_span(top.moments[0]), t) for t in query.moments[top.uri])
    return QueryResult(
        query.id,
        query.kind,
        len(query.relevant),
        [n for n, rel in enumerate(relevant, 1) if rel],
        [(h.score, rel) for h, rel in zip(hits, relevant, strict=True)],
        moment_iou,
        top_moment_iou,
        seconds,
    )


def _span(moment: Moment) -> tuple[float, float] | None:
    if moment.t_start is None or moment.t_end is None:
        return None  # a picture: no time to match
    return moment.t_start, moment.t_end


def zero_shot(engine: Engine, labelled: ZeroShotSet) -> ZeroShotResult:
    """Top-1 / top-5 accuracy and the confusion matrix of the zero-shot classifier on the engine's
    model, each picture encoded afresh (decoded as the indexer decodes files)."""
    classifier = ZeroShotClassifier(engine.encoder, labelled.labels, labelled.templates)
    vectors = []
    for start in range(0, len(labelled.pictures), BATCH):
        batch = [_picture(engine, path) for path, _ in labelled.pictures[start : start + BATCH]]
        vectors.append(engine.encoder.encode_images(batch))
    top = min(TOP_CLASSES, len(classifier.labels))
    position = {label: n for n, label in enumerate(classifier.labels)}
    ranked = [
        [position[label] for label, _ in row] for row in classifier.classify(np.concatenate(vectors), top)
    ]
    truth = [n for _, n in labelled.pictures]
    return ZeroShotResult(
        classifier.labels,
        metrics.top_k_accuracy(truth, ranked, 1),
        metrics.top_k_accuracy(truth, ranked, top),
        metrics.confusion_matrix(truth, [r[0] for r in ranked], len(classifier.labels)),
    )
