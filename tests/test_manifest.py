"""A product catalogue indexed from CSV and JSONL manifests: typed fields, filters, bad rows, re-runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch import ConfigError, Filters, InvalidQueryError
from mmsearch.indexer.manifest import Columns, index_manifest, load

N = 300  # products; `bucket` splits them in 100 groups of 3, so `bucket = 7` keeps 1%


def products(folder: Path) -> list[dict]:
    """N products with one or two generated pictures each, prices from 5 to 150, six categories."""
    (folder / "img").mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(N):
        names = []
        for j in range(1 + i % 2):
            name = f"img/p{i:03d}-{j}.jpg"
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(folder / name, quality=80)
            names.append(name)
        rows.append(
            {
                "sku": f"SKU-{i:04d}",
                "title": f"Poster number {i}",
                "price": 5 + (i % 30) * 5,
                "category": ["shoes", "bags", "hats", "shirts", "socks", "belts"][i % 6],
                "bucket": i % 100,
                "images": names,
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "images": ";".join(row["images"])})
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


WRITERS = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}


@pytest.fixture(params=list(WRITERS))
def catalogue(request, tmp_path: Path, engine, settings):
    rows = products(tmp_path)
    manifest = WRITERS[request.param](tmp_path / f"products.{request.param}", rows)
    report = index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    assert (report.indexed, report.failed) == (N, 0), report.errors[:3]
    return manifest, rows


def _skus(engine, where: str, k: int = N) -> set[str]:
    hits = engine.search_text("poster", k=k, filters=Filters(where=where))
    return {engine.item(h.item_id).fields["sku"] for h in hits}


def test_filters_return_exactly_the_matching_products(catalogue, engine):
    _, rows = catalogue

    def expect(pred):
        return {r["sku"] for r in rows if pred(r)}

    assert _skus(engine, 'category = "shoes" and price < 50') == expect(
        lambda r: r["category"] == "shoes" and r["price"] < 50
    )
    assert _skus(engine, "price < 50") == expect(lambda r: r["price"] < 50), "numbers compare as numbers"
    assert _skus(engine, "category in [hats, 'socks'] and not price >= 100") == expect(
        lambda r: r["category"] in ("hats", "socks") and r["price"] < 100
    )
    assert _skus(engine, 'sku = "SKU-0042"') == {"SKU-0042"}
    assert _skus(engine, "title ~ 'NUMBER 12'") == expect(lambda r: "number 12" in r["title"].lower())
    assert _skus(engine, "kind = product") == expect(lambda r: True)
    assert _skus(engine, "not price < 0") == expect(lambda r: True)


def test_a_field_the_index_lacks_is_an_error_naming_those_it_has(catalogue, engine):
    with pytest.raises(InvalidQueryError, match=r"unknown field 'colour': .*of its items' own: .*category"):
        _skus(engine, "colour = red")
    with pytest.raises(InvalidQueryError, match=r"unknown field 'Price': did you mean price\?"):
        _skus(engine, "Price < 3")


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("price <", "it ends too soon: expected a value (a number, \"text\", a date or a word) after '<'"),
        (
            "price 5",
            "expected a comparison (=, !=, <, <=, >, >=, ~, ^=) or 'in' or 'not' at character 7, not '5'",
        ),
        ("(kind = video", "it ends too soon: expected ')' after 'video'"),
        ("price < 5 $", "'$' at character 11 is not part of a filter"),
    ],
)
def test_syntax_errors_say_what_was_expected_in_plain_words(where, said):
    with pytest.raises(InvalidQueryError) as error:
        Filters(where=where)
    assert str(error.value) == f"invalid filter {where!r}: {said}"


def test_a_one_percent_filter_still_returns_k_hits(catalogue, engine):
    hits = engine.search_text("poster", k=3, filters=Filters(where="bucket = 7"))
    assert sorted(engine.item(h.item_id).fields["sku"] for h in hits) == ["SKU-0007", "SKU-0107", "SKU-0207"]


def test_products_keep_their_fields_typed_and_all_their_pictures(catalogue, engine):
    hit = engine.search_text("poster", k=1, filters=Filters(where='sku = "SKU-0001"'))[0]
    item = engine.item(hit.item_id)
    assert item.kind == "product" and item.fields["price"] == 10 and isinstance(item.fields["price"], int)
    ids = engine.store.catalog.segment_ids(path_prefix=item.uri)
    spaces = sorted(r.space for r in engine.store.catalog.hits(ids).values())
    assert spaces == ["image", "image", "text"], "two pictures and the title"


def test_a_changed_manifest_updates_only_the_changed_rows(tmp_path, engine, settings):
    rows = products(tmp_path)[:20]
    manifest = write_csv(tmp_path / "p.csv", rows)
    index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    rows[3]["price"] = 999
    Image.new("RGB", (32, 24), "purple").save(tmp_path / rows[5]["images"][0])  # a changed picture
    del rows[7]
    write_csv(manifest, rows)
    again = index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    assert (again.indexed, again.skipped, again.removed, again.failed) == (2, 17, 1, 0)
    assert _skus(engine, "price = 999") == {"SKU-0003"}


def test_bad_rows_are_reported_with_their_line_and_the_rest_indexes(tmp_path, engine, settings):
    rows = products(tmp_path)[:6]
    rows[1]["images"] = ["img/missing.jpg"]
    rows[2]["price"] = "cheap"
    rows[3]["sku"] = rows[0]["sku"]
    rows[4]["images"] = ["../outside.jpg"]
    manifest = write_csv(tmp_path / "bad.csv", rows)
    report = index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    assert (report.indexed, report.failed) == (2, 4)
    reasons = sorted(reason for _, reason in report.errors)
    assert reasons == [
        "line 3: image not found: img/missing.jpg",
        "line 4: price is 'cheap', not a number",
        "line 5: duplicate key 'SKU-0000' (first on line 2)",
        f"line 6: image '../outside.jpg' is outside the allowed root {tmp_path.resolve()}",
    ]
    failures = dict(engine.store.catalog.failures())
    assert failures[f"{manifest.resolve()}#SKU-0002"] == "line 4: price is 'cheap', not a number"


def test_manifest_columns_must_exist(tmp_path):
    manifest = write_csv(tmp_path / "p.csv", products(tmp_path)[:2])
    with pytest.raises(ConfigError, match=r"no key column 'id'.*the columns are sku, title"):
        load(manifest, Columns(key="id"))
    (tmp_path / "nokey.jsonl").write_text('{"title": "x", "images": []}\n')
    with pytest.raises(ConfigError, match="no key column"):
        load(tmp_path / "nokey.jsonl")


@pytest.mark.parametrize(
    "where", ["price <", "price < 'ten' and", "kind < 3", "tag < red", "(a = 1", "price ~ 3"]
)
def test_bad_filters_are_clear_errors(engine, where):
    with pytest.raises(InvalidQueryError):
        Filters(where=where)


def test_filters_and_fields_over_http(tmp_path, engine, settings):
    from mmsearch.api.app import create_app
    from tests.conftest import serve

    manifest = write_csv(tmp_path / "p.csv", products(tmp_path)[:30])
    index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    with serve(create_app(settings, engine)) as url, httpx.Client(base_url=url, timeout=30) as client:
        where = "price >= 100 and category = hats"
        r = client.get("/search", params={"q": "poster", "k": 50, "where": where, "all": True})
        assert r.status_code == 200
        hits = r.json()["hits"]
        fields = [client.get(h["item_url"]).json()["fields"] for h in hits]
        assert sorted((f["sku"], f["price"]) for f in fields) == [("SKU-0020", 105), ("SKU-0026", 135)]
        bad = client.get("/search", params={"q": "poster", "where": "price <"})
        assert bad.status_code == 400 and "invalid filter" in bad.json()["error"]
        kinds = client.get("/search", params={"q": "poster", "kind": "product", "k": 3, "all": True})
        assert [h["kind"] for h in kinds.json()["hits"]] == ["product"] * 3
        unknown = client.get("/search", params={"q": "poster", "where": "colour = red"})
        assert unknown.status_code == 400
        assert "unknown field 'colour'" in unknown.json()["error"] and "price" in unknown.json()["error"]
        described = client.get("/filters").json()
        assert described["fields"]["price"] == "number" and described["fields"]["category"] == "text"
        assert "tag" in described["built_in"] and described["example"].startswith("bucket < ")
        example = client.get("/search", params={"q": "poster", "where": described["example"]})
        assert example.status_code == 200


def test_hybrid_search_puts_an_exact_sku_first(tmp_path, engine, settings):
    rows = products(tmp_path)[:60]
    manifest = write_csv(tmp_path / "p.csv", rows)
    index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    for sku in ("SKU-0042", "SKU-0007", "SKU-0059"):
        (top, *_) = engine.search_text(sku, k=5, hybrid=True)
        assert engine.item(top.item_id).fields["sku"] == sku
    hats = engine.search_text("SKU-0042", k=5, hybrid=True, filters=Filters(where="category = hats"))
    assert all(engine.item(h.item_id).fields["category"] == "hats" for h in hats), (
        "filters hold for words too"
    )
    words = engine.search_text("poster number 7", k=3, hybrid=True)
    assert engine.item(words[0].item_id).fields["sku"] == "SKU-0007"
    rows[42]["sku"] = "SKU-9999"
    write_csv(manifest, rows)
    index_manifest(manifest, engine.encoder, engine.store, settings.indexer)
    assert engine.store.catalog.keyword_search("SKU-0042", 5) == [], "the old words are gone with the row"
