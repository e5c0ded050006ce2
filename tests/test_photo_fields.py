"""When, with what and where a picture was taken, read at index time into fields the filters understand,
and never served: real photos (tests/fixtures/photos) with EXIF the test writes to known values, one with
broken EXIF, a video with a creation time."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote_plus

import av
import httpx
import numpy as np
import pytest
from PIL import ExifTags, Image

from mmsearch import Engine, Filters, InvalidQueryError, Settings
from mmsearch.api.app import create_app
from mmsearch.encode.photo_fields import creation_time, taken_at
from mmsearch.indexer import index_folder
from mmsearch.query import filters, place, when
from tests.conftest import serve

PHOTOS = Path(__file__).with_name("fixtures") / "photos"
RANDOM = {
    "name": "mmsearch-tiny",
    "random_weights": True,
    "device": "cpu",
}  # the package's own: the CLI knows it
B, G = ExifTags.Base, ExifTags.GPS
WANT = {
    "taken_at": "2023-07-14T10:30:05+02:00",
    "camera_make": "Google",
    "camera_model": "Pixel 7",
    "lens": "Pixel 7 back camera",
    "gps_lat": 48.858222,  # 48° 51' 29.6" N: the Eiffel tower
    "gps_lon": 2.294500,  # 2° 17' 40.2" E
    "gps_alt": 35.0,
}


def with_exif(source: Path, target: Path, broken: bool = False) -> None:
    exif = Image.Exif()
    sub, gps = exif.get_ifd(ExifTags.IFD.Exif), exif.get_ifd(ExifTags.IFD.GPSInfo)
    if broken:  # what a confused camera writes: no date (zeros), padding in a name, half a position
        exif[B.Make] = "Acme\x00\x00"
        exif[B.Model] = 12345  # Pillow writes it as the text "12345"
        sub[B.DateTimeOriginal] = "0000:00:00 00:00:00"
        sub[B.MakerNote] = bytes(range(256)) * 200
        gps[G.GPSLatitude], gps[G.GPSLatitudeRef] = (48.0, 51.0), "N"  # two parts, not three
    else:
        exif[B.Make], exif[B.Model] = "Google", "Pixel 7"
        sub[B.DateTimeOriginal], sub[B.OffsetTimeOriginal] = "2023:07:14 10:30:05", "+02:00"
        sub[B.LensModel] = "Pixel 7 back camera"
        gps[G.GPSLatitudeRef], gps[G.GPSLatitude] = "N", (48.0, 51.0, 29.6)
        gps[G.GPSLongitudeRef], gps[G.GPSLongitude] = "E", (2.0, 17.0, 40.2)
        gps[G.GPSAltitudeRef], gps[G.GPSAltitude] = b"\x00", 35.0
    Image.open(source).save(target, exif=exif, quality=90)


def write_clip(path: Path, created: str, **tags: str) -> None:
    with av.open(str(path), "w") as out:
        out.metadata.update({"creation_time": created, **tags})
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Iterator[tuple[Settings, Engine, Path]]:
    root = tmp_path_factory.mktemp("photos")
    with_exif(PHOTOS / "cat.jpg", root / "paris.jpg")
    with_exif(PHOTOS / "astronaut.jpg", root / "confused.jpg", broken=True)
    Image.open(PHOTOS / "cat.jpg").save(root / "plain.png")
    write_clip(root / "clip.mp4", "2023-07-15T08:00:00.000000Z")
    settings = Settings(index_dir=root.parent / f"{root.name}-index", model=RANDOM, speech={"enabled": False})
    engine = Engine.open(settings, create=True)
    report = index_folder(root, engine.encoder, engine.store, settings.indexer, video=settings.video)
    assert (report.indexed, report.failed) == (4, 0), report.errors
    yield settings, engine, root
    engine.close()


def item(engine: Engine, root: Path, name: str):
    hits = engine.search_text("a picture", k=10, filters=Filters(path_prefix=str(root / name)))
    return engine.item(hits[0].item_id)


def test_exif_becomes_typed_fields(indexed):
    _, engine, root = indexed
    assert item(engine, root, "paris.jpg").fields == pytest.approx(WANT)
    assert item(engine, root, "plain.png").fields is None
    assert item(engine, root, "clip.mp4").fields == {"taken_at": "2023-07-15T08:00:00+00:00"}


def test_broken_exif_keeps_what_it_can_and_the_picture(indexed):
    _, engine, root = indexed
    confused = item(engine, root, "confused.jpg")
    assert confused.status == "indexed" and confused.fields == {
        "camera_make": "Acme",
        "camera_model": "12345",
    }


@pytest.mark.parametrize(
    ("where", "names"),
    [
        ("taken_at >= 2023-07-01 and camera_model ~ 'pixel'", {"paris.jpg"}),
        ("taken_at >= 2023-07-15", {"clip.mp4"}),
        ("gps_lat > 48.8 and gps_lat < 48.9 and gps_lon > 2.2 and gps_lon < 2.4", {"paris.jpg"}),
        ("camera_make in [Google, Acme]", {"paris.jpg", "confused.jpg"}),
    ],
)
def test_filters_read_the_fields(indexed, where, names):
    _, engine, _ = indexed
    hits = engine.search_text("a picture", k=10, filters=Filters(where=where))
    assert {Path(h.uri).name for h in hits} == names


def test_served_pictures_carry_no_exif_and_keep_their_pixels(indexed):
    settings, engine, root = indexed
    photo = item(engine, root, "paris.jpg")
    original = (root / "paris.jpg").read_bytes()
    with serve(create_app(settings, engine)) as url:
        served = httpx.get(f"{url}/items/{photo.id}/media", timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert len(served.content) < len(original) and b"Pixel 7" not in served.content
    picture = Image.open(io.BytesIO(served.content))
    assert not picture.getexif() and not picture.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert np.array_equal(np.asarray(picture), np.asarray(Image.open(root / "paris.jpg"))), "pixels untouched"
    thumb = httpx.Client()
    as_is = settings.model_copy(update={"api": settings.api.model_copy(update={"serve_originals": True})})
    with serve(create_app(as_is, engine)) as url:
        assert thumb.get(f"{url}/items/{photo.id}/media", timeout=30).content == original
        small = thumb.get(f"{url}/items/{photo.id}/thumbnail", timeout=30).content
    assert b"Pixel 7" not in small and not Image.open(io.BytesIO(small)).getexif()


def test_a_phones_video_is_placed_and_served_without_its_tags(tmp_path):
    """A phone writes where and when it filmed in the container (ISO 6709, creation_time): the index
    reads them as fields, the served copy carries neither, plays the same frames and seeks."""
    (tmp_path / "films").mkdir()
    where = "+41.8902+012.4922+021.000/"  # the Colosseum, 21 m up
    write_clip(tmp_path / "films" / "rome.mp4", "2019-05-10T09:00:00Z", location=where)
    settings = Settings(index_dir=tmp_path / "index", model=RANDOM, speech={"enabled": False})
    engine = Engine.open(settings, create=True)
    index_folder(tmp_path / "films", engine.encoder, engine.store, settings.indexer, video=settings.video)
    clip = item(engine, tmp_path / "films", "rome.mp4")
    assert clip.fields == {"taken_at": "2019-05-10T09:00:00+00:00", "gps_lat": 41.8902, "gps_lon": 12.4922,
                           "gps_alt": 21.0}  # fmt: skip
    assert found(engine, "near 41.89,12.49 1km") == {"rome.mp4"}
    with serve(create_app(settings, engine)) as url:
        served = httpx.get(f"{url}/items/{clip.id}/media", timeout=30)
        seek = httpx.get(f"{url}/items/{clip.id}/media", headers={"Range": "bytes=100-199"}, timeout=30)
    as_is = settings.model_copy(update={"api": settings.api.model_copy(update={"serve_originals": True})})
    with serve(create_app(as_is, engine)) as url:
        original = httpx.get(f"{url}/items/{clip.id}/media", timeout=30).content
    engine.close()
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    assert seek.status_code == 206 and seek.content == served.content[100:200]
    assert original == (tmp_path / "films" / "rome.mp4").read_bytes()

    def tags(data: bytes) -> tuple[dict, list[dict], list[bytes]]:
        with av.open(io.BytesIO(data)) as film:
            streams = [dict(s.metadata) for s in film.streams]
            return dict(film.metadata), streams, [bytes(p) for p in film.demux(video=0) if p.size]

    kept, kept_streams, packets = tags(served.content)
    told, _, original_packets = tags(original)
    assert {"location", "creation_time"} <= set(told)  # the original says where and when
    assert not {"location", "creation_time"} & set(kept)
    assert not any("creation_time" in s for s in kept_streams)
    assert packets == original_packets  # the same frames, copied, not re-encoded


def cli_search(settings: Settings, query: str) -> tuple[set[str], str]:
    """`mmsearch search QUERY --all --json`: the names of the files found, and what it told stderr."""
    cli = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", "search", query, "--all", "--json",
         "-i", str(settings.index_dir)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return {Path(h["uri"]).name for h in json.loads(cli.stdout)["hits"]}, cli.stderr


def test_dates_are_read_strictly():
    assert taken_at("2023:07:14 10:30:05", "+02:00") == "2023-07-14T10:30:05+02:00"
    assert taken_at("2023:07:14 10:30:05", "local") == "2023-07-14T10:30:05"
    assert taken_at("2023:13:14 10:30:05") is None and taken_at(b"\x00" * 20) is None and taken_at(7) is None
    assert creation_time("2023-07-14T10:30:05.250000Z") == "2023-07-14T10:30:05+00:00"
    assert creation_time("1904-01-01T00:00:00Z") is None and creation_time("soon") is None


def test_hits_in_date_order_good_matches_first(indexed):
    _, engine, _ = indexed
    hits = [replace(h, weak=False) for h in engine.search_text("a picture", k=10)]
    newest = [Path(h.uri).name for h in engine.ordered(hits, "-taken_at")]
    assert newest[:2] == ["clip.mp4", "paris.jpg"] and len(newest) == 4  # the two with no date after
    assert [Path(h.uri).name for h in engine.ordered(hits, "taken_at")][:2] == ["paris.jpg", "clip.mp4"]
    mixed = [replace(h, weak=Path(h.uri).name == "clip.mp4") for h in hits]
    first = next(Path(h.uri).name for h in engine.ordered(mixed, "-taken_at"))
    assert first == "paris.jpg"  # a weak one never jumps a good one
    by_size = engine.ordered(hits, "-size")
    assert [h.uri for h in by_size] == sorted((h.uri for h in hits), key=lambda u: -Path(u).stat().st_size)
    with pytest.raises(InvalidQueryError, match="sort by a field name"):
        engine.ordered(hits, "taken_at; drop table items")


def test_sort_over_http_and_the_command_line(indexed):
    settings, engine, _ = indexed
    params = {"q": "a picture", "k": 10, "all": True, "where": "taken_at >= 2000-01-01", "sort": "-taken_at"}
    want = engine.ordered(
        engine.search_text("a picture", k=10, filters=Filters(where=params["where"])), "-taken_at"
    )
    with serve(create_app(settings, engine)) as url:
        got = httpx.get(f"{url}/search", params=params, timeout=60).json()["hits"]
        bad = httpx.get(f"{url}/search", params={"q": "x", "sort": "taken at"}, timeout=60)
    assert [h["uri"] for h in got] == [h.uri for h in want] and len(got) == 2
    assert bad.status_code == 400 and "sort by a field name" in bad.json()["error"]
    args = ["search", "a picture", "--all", "--json", "--where", params["where"], "--sort=-taken_at"]
    cli = subprocess.run(
        [sys.executable, "-m", "mmsearch.api.cli", *args, "-i", str(settings.index_dir)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert [h["uri"] for h in json.loads(cli.stdout)["hits"]] == [h.uri for h in want]


def test_facets_count_items_per_camera_and_per_month(indexed):
    settings, engine, _ = indexed
    assert engine.facet("taken_at", "month") == [("2023-07", 2)]  # the photo and the clip
    assert engine.facet("taken_at", "year") == [("2023", 2)]
    assert engine.facet("taken_at", "day") == [("2023-07-14", 1), ("2023-07-15", 1)]  # time order
    assert engine.facet("camera_make") == [("Acme", 1), ("Google", 1)]  # the confused camera's too
    assert engine.facet("gps_alt") == [(35.0, 1)]
    with serve(create_app(settings, engine)) as url:
        timeline = httpx.get(f"{url}/facets", params={"field": "taken_at", "per": "month"}, timeout=60)
        unknown = httpx.get(f"{url}/facets", params={"field": "iso"}, timeout=60)
        period = httpx.get(f"{url}/facets", params={"field": "taken_at", "per": "week"}, timeout=60)
    assert timeline.json() == {
        "field": "taken_at",
        "per": "month",
        "counts": [{"value": "2023-07", "count": 2}],
    }
    assert unknown.status_code == 400 and "camera_model" in unknown.json()["error"]
    assert 400 <= period.status_code < 500 and "error" in period.json()


def test_facets_count_by_the_built_in_fields_too(indexed):
    """kind, width, indexed, ... are fields of every index (the filters' built-in ones): /facets counts
    by them as by a manifest's, and the page's timeline is asked for only where items have dates."""
    settings, engine, _ = indexed
    total = engine.info()["indexed"]
    kinds = dict(engine.facet("kind"))
    assert kinds["video"] == 1 and sum(kinds.values()) == total
    assert engine.facet("indexed", "year") == [(str(dt.date.today().year), total)]
    assert sum(n for _, n in engine.facet("modified")) == total  # per day, in time order
    widths = engine.facet("width")
    assert all(isinstance(w, float) for w, _ in widths) and sum(n for _, n in widths) == total
    with pytest.raises(InvalidQueryError, match="width is no date"):
        engine.facet("width", "year")
    with serve(create_app(settings, engine)) as url:
        by_kind = httpx.get(f"{url}/facets", params={"field": "kind"}, timeout=60)
    assert by_kind.status_code == 200 and {"value": "video", "count": 1} in by_kind.json()["counts"]


TODAY = dt.date(2026, 12, 5)  # pinned: "last month" means the same period on every run


@pytest.mark.parametrize(
    "query, text, start, end",
    [
        ("a red car july 2023", "a red car", "2023-07-01", "2023-08-01"),
        ("rome 2019", "rome", "2019-01-01", "2020-01-01"),
        ("wedding 14 july 2023", "wedding", "2023-07-14", "2023-07-15"),
        ("snow in december 2022", "snow", "2022-12-01", "2023-01-01"),
        ("beach last month", "beach", "2026-11-01", "2026-12-01"),
        ("party yesterday", "party", "2026-12-04", "2026-12-05"),
        ("beach last summer", "beach", "2026-06-01", "2026-09-01"),
        ("snow last winter", "snow", "2025-12-01", "2026-03-01"),  # this one (from 2026-12-01) has not ended
        ("skiing in winter 2023", "skiing", "2023-12-01", "2024-03-01"),
        ("flowers spring of 2024", "flowers", "2024-03-01", "2024-06-01"),
        ("beach from 2019 to 2021", "beach", "2019-01-01", "2022-01-01"),  # both years whole
        ("snow 2019-2021", "snow", "2019-01-01", "2022-01-01"),
        ("kids between may and august 2022 at the beach", "kids at the beach", "2022-05-01", "2022-09-01"),
        ("ski from december to february 2023", "ski", "2022-12-01", "2023-03-01"),  # the December before
        ("trip from 14 july 2019 to 2 feb 2020", "trip", "2019-07-14", "2020-02-03"),
    ],
)
def test_a_date_in_the_query_becomes_a_period(query, text, start, end):
    got = when.dated(query, TODAY)
    assert (got.text, got.start.isoformat(), got.end.isoformat()) == (text, start, end)
    assert got.where == f"taken_at >= {start} and taken_at < {end}"
    assert when.dated(query, TODAY) == got  # the same query on the same day: the same filter


@pytest.mark.parametrize(
    "query, where",
    [
        ("beach since 2020", "taken_at >= 2020-01-01"),
        ("trip after march 2021", "taken_at >= 2021-04-01"),
        ("party before 2018", "taken_at < 2018-01-01"),
        ("beach until june 2020", "taken_at < 2020-07-01"),  # June included
    ],
)
def test_an_open_range_in_the_query_is_one_side(query, where):
    got = when.dated(query, TODAY)
    assert got.where == where and got.phrase == query.split(" ", 1)[1]


@pytest.mark.parametrize(
    "query",
    [
        "a red car july 2023",
        "beach 2019",
        "fireworks 14 july 2023",
        "29 february 2024 cake",
        "snow in december 2022",
        "party in 2019",
        "the dog sept 2021",
        "Dec 2019 lights",
        "paris 2015 eiffel tower",
        "halloween 2018 costume",
    ],
)
def test_a_year_month_or_day_is_read_as_dateparser_reads_it_without_it(query):
    """The common dates are read by when.py's own pattern (no 0.3 s import of dateparser), to the
    same period and words as dateparser reads them."""
    assert when._single(query) is not None
    assert when.dated(query, TODAY) == when._parsed(query, TODAY)


@pytest.mark.parametrize(
    "query", ["july 14, 2023 fireworks", "jan. 2020 snow", "31 february 2023 cake", "a cat may jump 2019"]
)
def test_what_else_may_be_part_of_a_date_is_left_to_dateparser(query):
    assert when._single(query) is None
    assert when.dated(query, TODAY) == when._parsed(query, TODAY)


def test_two_dates_are_not_a_range():
    assert when.dated("sunset may 2020 and june 2021", TODAY) is None  # which one? neither is taken


@pytest.mark.parametrize(
    "query",
    [
        "a red circle",
        "may flowers",
        "a cat sat on a mat",
        "july 2023",
        "last week",
        "summer dress",
        "last summer",
    ],
)
def test_words_that_only_look_like_dates_stay_words(query):
    assert when.dated(query, TODAY) is None  # no year and nothing relative, or nothing left to look for


def test_a_red_car_july_2023_returns_only_july_2023(indexed):
    settings, engine, _ = indexed
    understood, filters = engine.understood("a picture july 2023", TODAY)
    assert understood.text == "a picture" and filters.where == understood.where
    july = engine.search_text(understood.text, k=10, filters=filters)
    assert {Path(h.uri).name for h in july} == {"paris.jpg", "clip.mp4"}
    _, before = engine.understood("a picture july 2022", TODAY)
    assert engine.search_text("a picture", k=10, filters=before) == []
    with serve(create_app(settings, engine)) as url:
        params = {"q": "a picture july 2023", "k": 10, "all": True}
        dated = httpx.get(f"{url}/search", params=params, timeout=60).json()
        literal = httpx.get(f"{url}/search", params={**params, "literal": True}, timeout=60).json()
    assert dated["understood"] == {
        "text": "a picture",
        "when": "july 2023",
        "people": [],
        "place": None,
        "where": understood.where,
    }
    assert {Path(h["uri"]).name for h in dated["hits"]} == {"paris.jpg", "clip.mp4"}
    assert literal["understood"] is None and len(literal["hits"]) == 4
    names, said = cli_search(settings, "a picture july 2023")
    assert names == {"paris.jpg", "clip.mp4"}
    assert "taken 'july 2023'" in said and "--literal" in said
    for query, found in (("a picture from 2020 to 2022", set()), ("a picture since june 2023", names)):
        understood, filters = engine.understood(query, TODAY)  # the ranges, as every door reads them
        assert {Path(h.uri).name for h in engine.search_text(understood.text, k=10, filters=filters)} == found


PLACES = {  # (latitude, longitude): south and west negative
    "eiffel.jpg": (48.858222, 2.2945),
    "louvre.jpg": (48.8606, 2.3376),  # about 3.2 km east
    "taveuni.jpg": (-16.8, 179.95),  # just west of the antimeridian
    "samoa.jpg": (-13.83, -171.76),  # east of it
}


TAKEN = {"eiffel.jpg": "2019:06:01 12:00:00", "louvre.jpg": "2023:07:14 10:00:00"}


def with_place(source: Path, target: Path, lat: float, lon: float, taken: str | None = None) -> None:
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if taken:
        exif.get_ifd(ExifTags.IFD.Exif)[B.DateTimeOriginal] = taken

    def dms(degrees: float) -> tuple[float, float, float]:
        d, rest = divmod(abs(degrees) * 3600, 3600)
        return d, rest // 60, round(rest % 60, 2)

    gps[G.GPSLatitudeRef], gps[G.GPSLatitude] = "N" if lat >= 0 else "S", dms(lat)
    gps[G.GPSLongitudeRef], gps[G.GPSLongitude] = "E" if lon >= 0 else "W", dms(lon)
    Image.open(source).save(target, exif=exif, quality=90)


def index_places(root: Path, **settings) -> tuple[Settings, Engine, dict[str, tuple[float, float]]]:
    """Four photos at known places (two with a date) and one with none, indexed; the positions as read
    back."""
    photos = root / "places"
    photos.mkdir()
    for name, (lat, lon) in PLACES.items():
        with_place(PHOTOS / "cat.jpg", photos / name, lat, lon, TAKEN.get(name))
    Image.open(PHOTOS / "cat.jpg").save(photos / "nowhere.png")
    config = Settings(index_dir=root / "places-index", model=RANDOM, **settings)
    engine = Engine.open(config, create=True)
    index_folder(photos, engine.encoder, engine.store, config.indexer)
    read = {name: item(engine, photos, name).fields for name in PLACES}
    return config, engine, {name: (f["gps_lat"], f["gps_lon"]) for name, f in read.items()}


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> Iterator[tuple[Settings, Engine, dict[str, tuple[float, float]]]]:
    settings, engine, at = index_places(tmp_path_factory.mktemp("places"))
    yield settings, engine, at
    engine.close()


def found(engine: Engine, where: str) -> set[str]:
    return {Path(h.uri).name for h in engine.search_text("a picture", k=10, filters=Filters(where=where))}


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """By the spherical law of cosines: another formula than the filter's haversine."""
    (p1, l1), (p2, l2) = (tuple(map(np.radians, x)) for x in (a, b))
    return 6371.0088 * float(np.arccos(np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(l2 - l1)))


def test_near_is_a_great_circle_radius_to_the_metre(places):
    _, engine, at = places
    lat, lon = at["eiffel.jpg"]
    apart = great_circle_km(at["eiffel.jpg"], at["louvre.jpg"])
    assert 3.0 < apart < 3.4
    assert found(engine, f"near {lat},{lon} 500m") == {"eiffel.jpg"}
    assert found(engine, f"near {lat},{lon} {apart - 0.01:.3f}km") == {"eiffel.jpg"}
    assert found(engine, f"near {lat},{lon} {apart + 0.01:.3f}km") == {"eiffel.jpg", "louvre.jpg"}
    assert found(engine, f"near {lat},{lon} 3mi") == {"eiffel.jpg", "louvre.jpg"}  # 4.8 km
    assert found(engine, f"not near {lat},{lon} 10km") == {"taveuni.jpg", "samoa.jpg", "nowhere.png"}


def test_places_across_the_antimeridian(places):
    _, engine, at = places
    lat, lon = at["taveuni.jpg"]
    assert found(engine, f"near {lat},{lon - 359.9:.4f} 20km") == {"taveuni.jpg"}  # 179.95 E seen from 180 W
    assert found(engine, "within -20,179 -10,-170") == {"taveuni.jpg", "samoa.jpg"}
    assert found(engine, "within -20,-175 -10,-170") == {"samoa.jpg"}
    assert found(engine, "within 48.85,2.28 48.87,2.31 or within -20,179 -10,179.99") == {
        "eiffel.jpg",
        "taveuni.jpg",
    }


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("near 95,2 2km", "a place is latitude (-90 to 90),longitude (-180 to 180)"),
        ("near 48.8,2.3", "expected a distance (500m, 2km, 3mi)"),
        ("near 48.8,2.3 0m", "a distance is over 0"),
        ("within 50,0 40,1", "the first corner is the south-west one"),
    ],
)
def test_a_bad_place_says_what_is_wrong(places, where, says):
    _, engine, _ = places
    with pytest.raises(InvalidQueryError, match=re.escape(says)):
        found(engine, where)


def test_an_index_without_places_says_so():
    with pytest.raises(InvalidQueryError, match="no item of this index has a place"):
        filters.parse("near 1,2 3km", fields={"price", "gps_alt"})


@pytest.mark.skipif(place.missing() is not None, reason=str(place.missing()))
def test_a_city_in_the_query_becomes_a_place(places):
    _, engine, _ = places
    understood, filters = engine.understood("a picture paris", TODAY)
    assert (understood.text, understood.place, understood.when) == ("a picture", "Paris, France", None)
    assert understood.where == "near 48.8534,2.3488 29km"
    assert found(engine, filters.where) == {"eiffel.jpg", "louvre.jpg"}
    apia, filters = engine.understood("a picture in Apia", TODAY)  # a town: a 5 km radius
    assert (apia.text, apia.place) == ("a picture in", "Apia, Samoa")
    assert apia.where == "near -13.8333,-171.7667 5km"
    assert found(engine, filters.where) == {"samoa.jpg"}
    both, filters = engine.understood("a picture paris 2019", TODAY)
    assert (both.text, both.when, both.place) == ("a picture", "2019", "Paris, France")
    assert found(engine, filters.where) == {"eiffel.jpg"}


@pytest.mark.skipif(place.missing() is not None, reason=str(place.missing()))
@pytest.mark.parametrize(
    "query",
    [
        "a picture rome",  # a city, but nothing was taken near it
        "a nice picture",  # Nice, France: a word here
        "sunset over the sea",  # Sunset, Louisiana
        "paris",  # nothing would be left to look for
    ],
)
def test_a_city_with_nothing_taken_near_it_stays_words(places, query):
    _, engine, _ = places
    assert engine.understood(query, TODAY) == (None, Filters())


@pytest.mark.skipif(place.missing() is not None, reason=str(place.missing()))
def test_the_place_is_shown_back_over_http_and_the_command_line(places):
    settings, engine, _ = places
    with serve(create_app(settings, engine)) as url:
        params = {"q": "a picture paris", "k": 10, "all": True}
        placed = httpx.get(f"{url}/search", params=params, timeout=60).json()
        literal = httpx.get(f"{url}/search", params={**params, "literal": True}, timeout=60).json()
    assert placed["understood"] == {
        "text": "a picture",
        "when": None,
        "people": [],
        "place": "Paris, France",
        "where": "near 48.8534,2.3488 29km",
    }
    assert {Path(h["uri"]).name for h in placed["hits"]} == {"eiffel.jpg", "louvre.jpg"}
    assert literal["understood"] is None and len(literal["hits"]) == 5
    names, said = cli_search(settings, "a picture paris")
    assert names == {"eiffel.jpg", "louvre.jpg"}
    assert "near 'Paris, France': near 48.8534,2.3488 29km" in said


def test_the_web_pages_timeline_keeps_a_search_to_a_year(tmp_path, browser):
    """A bar per year the photos were taken (GET /facets), sized by count; a click keeps the search to that
    year, a second click lets it go."""
    for name, stamp in {
        "a.jpg": "2021:03:01 12:00:00",
        "b.jpg": "2023:07:14 10:30:05",
        "c.jpg": "2023:08:01 09:00:00",
    }.items():
        exif = Image.Exif()
        exif.get_ifd(ExifTags.IFD.Exif)[B.DateTimeOriginal] = stamp
        Image.open(PHOTOS / "cat.jpg").save(tmp_path / name, exif=exif)
    settings = Settings(index_dir=tmp_path / "index", model=RANDOM, speech={"enabled": False})
    engine = Engine.open(settings, create=True)
    try:
        index_folder(tmp_path, engine.encoder, engine.store, settings.indexer)
        with serve(create_app(settings, engine)) as url:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#timeline button")
            bars = page.locator("#timeline button")
            years = [bars.nth(i).get_attribute("data-year") for i in range(bars.count())]
            heights = [bars.nth(i).locator(".bar").bounding_box()["height"] for i in range(bars.count())]
            page.fill("#q", "a cat")
            with page.expect_request(lambda r: "/search?" in r.url) as asked:
                page.locator('#timeline button[data-year="2021"]').click()
            page.wait_for_selector("#results li, #more:not([hidden])")
            page.locator("#more").evaluate("b => b.hidden || b.click()")
            in_2021 = page.locator("#results .name").all_inner_texts()
            with page.expect_request(lambda r: "/search?" in r.url) as again:
                page.locator('#timeline button[data-year="2021"]').click()
            pressed = page.locator('#timeline button[aria-pressed="true"]').count()
    finally:
        engine.close()
    assert years == ["2021", "2023"] and heights[1] == 2 * heights[0]
    assert "taken_at >= 2021-01-01 and taken_at < 2022-01-01" in unquote_plus(asked.value.url)
    assert in_2021 == ["a.jpg"]
    assert "taken_at" not in unquote_plus(again.value.url) and pressed == 0
