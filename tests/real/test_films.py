"""Real films: every one indexes, keyframes fall on the cuts seen by eye, and a continuous shot is one
scene (data/real/truth.json)."""

from __future__ import annotations

import io
import itertools

import av
import numpy as np
import pytest
from PIL import Image

from mmsearch.config import VideoSettings
from tests.real.conftest import TRUTH

FILMS = TRUTH["films"]
MAX_GAP_S = VideoSettings().max_gap_s  # the floor: a keyframe at least this often, cut or not


def starts(real_index, rel: str) -> list[float]:
    return [s.t_start for s in real_index.segments(rel) if s.space == "image"]


def test_every_film_indexes_as_a_video(real_index):
    items = real_index.items()
    for rel in [*FILMS["cuts"], *FILMS["continuous"]]:
        item = items[real_index.uri(rel)]
        assert (item.status, item.kind, item.error) == ("indexed", "video", None), rel


@pytest.mark.parametrize("rel", sorted(FILMS["cuts"]))
def test_keyframes_fall_on_the_cuts_and_nowhere_else(real_index, rel):
    """After the opening keyframe, a scene starts within half a frame of each cut, and at no other time
    (these films are shorter than the floor's gap)."""
    cuts, half_frame = FILMS["cuts"][rel], FILMS["frame_s"][rel] / 2
    got = starts(real_index, rel)
    assert got[0] < cuts[0] and len(got) == len(cuts) + 1, (rel, got, cuts)
    assert all(abs(a - b) <= half_frame for a, b in zip(got[1:], cuts, strict=True)), (rel, got, cuts)


@pytest.mark.parametrize("rel", FILMS["continuous"])
def test_a_continuous_shot_is_not_split(real_index, rel):
    """One shot (a fixed camera, a hand waved before the lens, a video call) has no cut: its only keyframes
    after the first are the floor's, each a full gap after the one before."""
    got = starts(real_index, rel)
    assert got[0] == pytest.approx(0.0, abs=0.05), (rel, got)
    assert all(b - a >= MAX_GAP_S - 1e-6 for a, b in itertools.pairwise(got)), (rel, got)


def test_a_film_opening_on_black_frames_shows_a_lit_frame(real_index, corpus):
    """Megamind.avi opens on two black frames; its first keyframe's thumbnail is the dim restaurant after
    them (mean grey 35 of 255 by eye), not black."""
    with av.open(str(corpus / "films/Megamind.avi")) as video:
        black = np.asarray(next(video.decode(video=0)).to_image().convert("L")).mean()
    first = real_index.segments("films/Megamind.avi")[0]
    thumbnail = Image.open(io.BytesIO(real_index.engine.store.catalog.thumbnail(first.segment_id)))
    assert black < 5 and np.asarray(thumbnail.convert("L")).mean() > black + 20
