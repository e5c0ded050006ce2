"""Keyframe choice (cuts, floor, ceiling) and transcript pieces that fit the text tower."""

from __future__ import annotations

import numpy as np

from mmsearch.indexer.pipeline import _pieces
from mmsearch.indexer.scenes import SceneDetector

STILL = np.zeros((4, 4, 3), np.float32)


def run(detector: SceneDetector, signatures: list[tuple[float, np.ndarray]]) -> list[float]:
    for t, sig in signatures:
        strength = detector.wants(t, sig)
        if strength is not None:
            detector.add(t, strength, np.zeros((2, 2, 3), np.uint8))
    return [k.t for k in detector.keyframes()]


def test_cuts_start_keyframes_and_a_static_shot_still_gets_one_every_max_gap():
    frames = [
        (i / 25, STILL + (100 if i >= 50 else 0)) for i in range(25 * 40)
    ]  # a cut at 2 s, then 38 s still
    times = run(SceneDetector(27, 0.5, 10.0, 64), frames)
    assert times == [0.0, 2.0, 12.0, 22.0, 32.0]


def test_small_changes_and_cuts_too_close_together_are_ignored():
    frames = [(i / 25, STILL + 10 * (i % 2)) for i in range(50)]  # flicker below the threshold
    frames += [(2.0, STILL + 200), (2.2, STILL), (2.8, STILL + 200)]  # the cut at 2.2 is 0.2 s after one
    assert run(SceneDetector(27, 0.5, 100.0, 64), frames) == [0.0, 2.0, 2.8]


def test_the_ceiling_keeps_the_first_frame_and_the_strongest_cuts_in_time_order():
    levels = np.cumsum([0] + [30 + i for i in range(1, 41)])  # the cut at i seconds changes by 30 + i
    frames = [(float(i), STILL + level) for i, level in enumerate(levels)]
    times = run(SceneDetector(27, 0.5, 100.0, 4), frames)
    assert times == [0.0, 38.0, 39.0, 40.0], "first frame + the 3 strongest cuts, in time order"


def test_long_utterances_share_their_time_by_characters():
    pieces = list(_pieces(["aaaa", "bbbbbbbb", "cccc"], 10.0, 14.0))
    assert pieces == [("aaaa", 10.0, 11.0), ("bbbbbbbb", 11.0, 13.0), ("cccc", 13.0, 14.0)]


def test_split_text_fits_the_text_tower_context(engine):
    text = " ".join(f"word{i}" for i in range(200))
    pieces = engine.encoder.split_text(text)
    limit = engine.encoder.tokenizer.context_length - 2
    assert len(pieces) > 1 and " ".join(pieces) == text
    assert all(engine.encoder.token_count(p) <= limit for p in pieces)


def test_a_fade_in_is_shown_by_its_first_frame_that_shows_something(tmp_path):
    """A video fading in from black over a second: the scene that starts at 0 s is shown by a frame bright
    enough to see, not by the black first frame."""
    from fractions import Fraction

    import av

    from mmsearch.config import VideoSettings
    from mmsearch.indexer.avfile import read_media

    path = tmp_path / "fade.mp4"
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, :] = (200, 40, 40)
    picture[12:36, 20:44] = (250, 250, 250)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray((picture * min(1.0, i / 25)).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    read = read_media(path, VideoSettings(), 48, want_audio=False)
    assert read.scenes[0].t_start == 0.0
    brightness = float(read.scenes[0].image.mean())
    assert brightness > 20, f"the keyframe is black (mean {brightness:.1f})"
