"""Stacks (search/storage/stacks.py): bursts made from the 31 real scenes of the corpus (data/real/truth.json
"near_copies": photographs chosen by name before any measurement), each five frames written with EXIF
times a second apart, the bursts overlapping in time: the frame as taken (the intended best), one shifted
3% and a little blurred, one blurred, one over-exposed (30% of its pixels blown) and one under-exposed
(30% crushed). Frames are named at random, so their ids say nothing."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageEnhance, ImageFilter

from mmsearch import Engine, SearchRequest, Settings

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".cache" / "real"  # make real-data
SCENES = json.loads((ROOT / "data" / "real" / "truth.json").read_text())["photos"]["near_copies"]
FRAMES = ("taken", "shifted", "blurred", "over", "under")
START = dt.datetime(2024, 5, 1, 9, 0, 0)
B = ExifTags.Base


def burst(picture: Image.Image) -> list[Image.Image]:
    """The five frames of FRAMES, from one photograph."""
    w, h = picture.size
    shifted = picture.crop((int(w * 0.03), int(h * 0.03), w, h)).resize((w, h))
    grey = np.asarray(picture.convert("L"), np.float32)
    over = ImageEnhance.Brightness(picture).enhance(255 / max(float(np.percentile(grey, 70)), 1.0))
    under = ImageEnhance.Brightness(picture).enhance(4 / max(float(np.percentile(grey, 30)), 1.0))
    blurred = picture.filter(ImageFilter.GaussianBlur(2.5))
    return [picture, shifted.filter(ImageFilter.GaussianBlur(1.0)), blurred, over, under]


def save_taken(picture: Image.Image, path: Path, when: dt.datetime) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[B.DateTimeOriginal] = when.strftime("%Y:%m:%d %H:%M:%S")
    picture.save(path, exif=exif, quality=92)


@pytest.fixture(scope="module")
def bursts(tmp_path_factory):
    """The bursts indexed into an index that keeps stacks: (engine, file name -> (scene, frame))."""
    root = tmp_path_factory.mktemp("bursts")
    names = random.Random(0).sample(range(10_000), len(SCENES) * len(FRAMES))
    truth = {}
    for s, scene in enumerate(SCENES):
        picture = Image.open(REAL / scene).convert("RGB")
        picture.thumbnail((640, 640))
        for f, frame in enumerate(burst(picture)):
            name = f"IMG_{names[s * len(FRAMES) + f]:04d}.jpg"
            save_taken(frame, root / name, START + dt.timedelta(seconds=3 * s + f))  # bursts overlap
            truth[name] = (s, FRAMES[f])
    # A picture's look is measured as the indexer decodes it for the model: ViT-B-32's 224 pixels keep
    # these 640-pixel frames whole, where the tiny shapes model's 48 would take them at an eighth.
    model = {"name": "ViT-B-32", "random_weights": True, "device": "cpu"}
    settings = Settings(index_dir=root / "index", model=model)
    engine = Engine.open(settings, create=True)
    engine.stacks.start()  # an empty index that keeps stacks: every file is stacked as it is written
    engine.index(root, prune=False)
    yield engine, truth
    engine.close()


def scene_and_frame(engine: Engine, item_id: int, truth: dict) -> tuple[int, str]:
    return truth[Path(engine.item(item_id).uri).name]


def test_no_stack_mixes_scenes_and_the_best_shot_is_the_one_taken(bursts, record_property):
    """Every stack holds one scene, one stack per scene; its best shot is the frame as taken in 95% of them
    at least (measured: 31 of 31); most frames are stacked (measured: 151 of 155)."""
    engine, truth = bursts
    stacks = engine.stacks.listed(limit=None)
    scenes = [{scene_and_frame(engine, i, truth)[0] for i in st.members} for st in stacks]
    assert all(len(s) == 1 for s in scenes), scenes
    assert len(stacks) == len({next(iter(s)) for s in scenes})  # one stack per scene (measured: 31)
    best = [scene_and_frame(engine, st.best_item, truth)[1] for st in stacks]
    right = best.count("taken") / len(stacks)
    stacked = sum(len(st.members) for st in stacks) / len(truth)
    record_property("stacks", len(stacks))
    record_property("best_is_taken", right)
    record_property("frames_stacked", stacked)
    assert len(stacks) >= 0.9 * len(SCENES) and right >= 0.95 and stacked >= 0.8, (len(stacks), best, stacked)


def test_search_shows_one_hit_per_stack_unless_every_shot_is_asked_for(bursts):
    engine, _ = bursts
    folded = engine.search(SearchRequest.words("a photo", k=40, show_all=True)).hits
    stacks = [h.stack for h in folded if h.stack is not None]
    assert stacks and len(stacks) == len(set(stacks))
    for h in folded:
        if h.stack is not None:
            summary = engine.stacks.stack(h.stack)
            assert h.more == len(summary.members) - 1
    every = engine.search(SearchRequest.words("a photo", k=40, show_all=True, every_shot=True)).hits
    assert len({h.item_id for h in every}) == 40 and all(h.stack is None for h in every)


def test_a_best_shot_picked_by_the_user_is_kept(bursts):
    engine, _ = bursts
    stack = engine.stacks.listed()[0]
    other = stack.members[-1]
    picked = engine.stacks.pick(stack.id, other)
    assert picked.best_item == other and picked.picked and picked.members[0] == other
    hits = engine.search(SearchRequest.words("a photo", k=200, show_all=True)).hits
    assert [h.item_id for h in hits if h.stack == stack.id] == [other]
    with pytest.raises(Exception, match="not in stack"):
        engine.stacks.pick(stack.id, next(i for i in range(1, 10_000) if i not in stack.members))


def test_every_door_folds_stacks_the_same_way_and_lists_them(bursts, browser):
    """The same search through the library, HTTP (uvicorn), the CLI and MCP: one hit per stack with the
    same `stack` and `more`; `every_shot` unfolds them; the stacks are listed and shown; `stack = N` keeps
    to one; the page shows "+N more" and, on a click, every shot of that stack."""
    mcp = pytest.importorskip("mcp")
    import httpx
    from typer.testing import CliRunner

    from mmsearch.api.app import create_app
    from mmsearch.api.cli import app as cli
    from mmsearch.api.mcp_server import build
    from tests.conftest import serve

    engine, _ = bursts
    settings = Settings(index_dir=engine.store.folder)

    def shape(hits: list[dict]) -> list[tuple]:
        return [(h["item_id"], h["stack"], h["more"]) for h in hits]

    for every_shot in (False, True):
        expected = shape(
            engine.search(
                SearchRequest.words("a photo", k=12, show_all=True, every_shot=every_shot)
            ).public()["hits"]
        )
        assert expected and any(h[1] for h in expected) != every_shot
        with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
            params = {"q": "a photo", "k": 12, "all": True, "every_shot": every_shot}
            assert shape(client.get("/search", params=params).json()["hits"]) == expected
        args = ["search", "a photo", "-k", "12", "--all", "--json", "-i", str(settings.index_dir)]
        run = CliRunner().invoke(cli, args + (["--every-shot"] if every_shot else []))
        assert shape(json.loads(run.stdout)["hits"]) == expected

        async def over_mcp(arguments: dict):
            async with mcp.Client(build(engine, settings)) as c:
                return await c.call_tool("search", arguments)

        found = asyncio_run(
            over_mcp({"text": "a photo", "k": 12, "show_all": True, "every_shot": every_shot})
        )
        assert shape([json.loads(c.text) for c in found.content if c.type == "text"][1:]) == expected

    stack = engine.stacks.listed()[0]
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=60) as client:
        listed = client.get("/stacks").json()
        assert [s["id"] for s in listed] == [s.id for s in engine.stacks.listed()]
        one = client.get(f"/stacks/{stack.id}").json()
        assert [s["item_id"] for s in one["shots"]] == list(stack.members)
        assert client.get("/stacks/999999").status_code == 404
        held = client.get(
            "/search",
            params={"q": "a photo", "where": f"stack = {stack.id}", "every_shot": True, "all": True},
        )
        assert sorted(h["item_id"] for h in held.json()["hits"]) == sorted(stack.members)
        page = browser.new_page()
        refused = []
        page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(url)
        page.locator("#q").fill("a photo")
        page.locator("#q").press("Enter")
        more = page.locator("#results .shots").first
        more.wait_for()
        n = int(more.inner_text().split()[0].lstrip("+"))
        more.click()
        page.wait_for_function(f"() => document.querySelectorAll('#results li').length === {n + 1}")
        assert refused == []
    run = CliRunner().invoke(cli, ["stacks", "list", "-i", str(settings.index_dir)])
    assert run.exit_code == 0 and str(len(stack.members)) in run.stdout
    listed = asyncio_run(over_mcp_stacks(mcp, build(engine, settings)))
    assert [s["id"] for s in listed] == [s.id for s in engine.stacks.listed()]


def asyncio_run(coroutine):
    """Run a coroutine beside Playwright's sync API, which holds this thread's event loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


async def over_mcp_stacks(mcp, server) -> list[dict]:
    async with mcp.Client(server) as c:
        found = await c.call_tool("stacks", {})
        return json.loads(found.content[0].text)


def test_keeping_stacks_later_measures_the_pictures_indexed_before(tmp_path, shapes_model: Path):
    """An index made without stacks, whose pictures have no measured look (as before looks were
    measured): keep_stacks reads them through the door, measures them and stacks them; a file gone since
    is left alone."""
    from sqlalchemy import update

    from mmsearch.storage.schema import Item

    for s, scene in enumerate(SCENES[:3]):
        picture = Image.open(REAL / scene).convert("RGB")
        picture.thumbnail((640, 640))
        for f, frame in enumerate(burst(picture)):
            save_taken(frame, tmp_path / f"{s}-{f}.jpg", START + dt.timedelta(seconds=20 * s + f))
    settings = Settings(index_dir=tmp_path / "index", model={"name": str(shapes_model), "device": "cpu"})
    engine = Engine.open(settings, create=True)
    try:
        engine.index(tmp_path)
        assert engine.stacks.listed() == [] and not engine.stacks.keeping()
        with engine.store.catalog.engine.begin() as conn:
            conn.execute(update(Item).values(meta=None))
        (tmp_path / "2-0.jpg").unlink()
        assert engine.keep_stacks() == 3
        stacks = engine.stacks.listed()
        scenes = [{Path(engine.item(i).uri).name[0] for i in st.members} for st in stacks]
        assert sorted(next(iter(s)) for s in scenes) == ["0", "1", "2"] and all(len(s) == 1 for s in scenes)
    finally:
        engine.close()
