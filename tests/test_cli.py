"""The `mmsearch` command, run as a user runs it: a real process, its output and its exit code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmsearch.synth.shapes import class_of, generate

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def mmsearch(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def indexed(shapes_model: Path, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    generate(root / "shapes", per_class=2, seed=3)
    (root / "shapes" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    index_dir = root / "index"
    first = mmsearch("index", root / "shapes", "--index-dir", index_dir, "--model", shapes_model)
    assert "indexed 60, skipped 0, failed 1" in first.stdout
    assert "broken.png" in first.stderr
    return root, index_dir


def test_second_index_run_skips_everything(indexed):
    root, index_dir = indexed
    again = mmsearch("index", root / "shapes", "--index-dir", index_dir)
    assert "indexed 0, skipped 61, failed 0" in again.stdout


def test_search_by_text_and_by_image_as_json(indexed):
    root, index_dir = indexed
    hits = json.loads(
        mmsearch("search", "a red circle", "-k", "2", "--json", "--index-dir", index_dir).stdout
    )["hits"]
    assert [class_of(h["uri"]) for h in hits] == [("red", "circle")] * 2
    assert hits[0]["score"] >= hits[1]["score"] and hits[0]["kind"] == "image"
    query = root / "shapes" / "blue-star-0001.png"
    by_image = json.loads(mmsearch("search", "--image", query, "--json", "-k", "1", "-i", index_dir).stdout)[
        "hits"
    ]
    assert by_image[0]["uri"] == str(query) and by_image[0]["score"] > 0.99


def test_table_output_and_info(indexed):
    _, index_dir = indexed
    table = mmsearch("search", "a yellow square", "-k", "3", "--index-dir", index_dir).stdout
    assert table.count("yellow-square") >= 2 and "score" in table
    info = mmsearch("info", "--failures", "--index-dir", index_dir).stdout
    assert "60 indexed, 1 failed" in info and "broken.png" in info and "not an image" in info


def test_reindex_rebuilds_a_lost_vector_file(indexed):
    _, index_dir = indexed
    (index_dir / "vectors-image.faiss").unlink()
    assert "60 vectors" in mmsearch("reindex", "--index-dir", index_dir).stdout
    assert (index_dir / "vectors-image.faiss").exists()
    # --all: this index's green crosses fit the tiny model only just (margins 0.02), under the default cutoff
    hits = json.loads(
        mmsearch("search", "a green cross", "--json", "--all", "-k", "1", "-i", index_dir).stdout
    )["hits"]
    assert class_of(hits[0]["uri"]) == ("green", "cross")


def test_errors_are_one_clear_line_and_exit_2(indexed, tmp_path: Path):
    root, index_dir = indexed
    missing = mmsearch("search", "x", "--index-dir", tmp_path / "nowhere", ok=False)
    assert missing.returncode == 2 and "no index at" in missing.stderr and "Traceback" not in missing.stderr
    other = mmsearch(
        "index",
        root / "shapes",
        "--index-dir",
        index_dir,
        "--model",
        "mmsearch-tiny",
        "--random-weights",
        ok=False,
    )
    assert other.returncode == 2 and "was made with" in other.stderr
    neither = mmsearch("search", "--index-dir", index_dir, ok=False)
    assert neither.returncode == 2 and "give words, a picture or an item to search for" in neither.stderr


def test_missing_weights_are_said_once_in_plain_words(tmp_path: Path):
    """Offline with the default pretrained model (what `make run` meets first): one message, no library
    text before it (open_clip logged its own download error, raw, to the root logger)."""
    (tmp_path / "one.jpg").write_bytes(
        (Path(__file__).parent / "fixtures" / "photos" / "cat.jpg").read_bytes()
    )
    proc = mmsearch("index", tmp_path, "--index-dir", tmp_path / "idx", ok=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("weights") == 1 and "Failed to download" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: cannot load the ViT-B-32-256 weights"), proc.stderr
    assert "not on this machine, and the model hub cannot be reached" in proc.stderr


def test_help_shows_extras_and_variables_in_brackets():
    """Help is plain text: `[mcp]` and `[env MMSEARCH_INDEX_DIR]` are not taken for markup and eaten,
    lines break between words, and a yes/no flag takes no value."""
    from typer.testing import CliRunner

    from mmsearch.api.cli import app

    shown = CliRunner().invoke(app, ["mcp", "--help"], env={"COLUMNS": "80"}).output
    assert "pip install 'mmsearch[mcp]'" in " ".join(shown.split())
    assert "[env MMSEARCH_INDEX_DIR]" in shown and "--http <bool>" not in shown
    assert all(len(line) <= 80 for line in shown.splitlines())
    asked = CliRunner().invoke(app, ["ask", "--help"], env={"COLUMNS": "80"}).output
    assert "[MMSEARCH_ANSWER__BACKEND]" in " ".join(asked.split())
