"""One performance in 35 containers (iscc-samples): each file indexes, as the kind its streams say, or is
recorded with a reason; none stops the run."""

from __future__ import annotations

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
