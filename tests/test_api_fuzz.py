"""schemathesis against the app's own OpenAPI schema, over real HTTP (uvicorn), on SQLite and on
PostgreSQL: for every operation, a bounded number of generated requests (valid and invalid), and not one
answer may be a 5xx, or an error that is not JSON.

Answers go to the fake OpenAI-compatible server (tests/fake_vlm.py), so /answer runs end to end.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from mmsearch import Engine, Settings
from mmsearch.api.app import create_app
from mmsearch.indexer import index_folder
from tests.conftest import TINY, serve, write_images
from tests.fake_vlm import fake_vlm_server

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("MMSEARCH_FUZZ_EXAMPLES", "25"))  # per operation


def _schema_for(tmp: Path, database_url: str | None) -> Iterator[schemathesis.BaseSchema]:
    write_images(tmp / "images", 6)
    with fake_vlm_server() as (vlm_url, _):
        settings = Settings(
            index_dir=tmp / "idx",
            database_url=database_url,
            model=TINY,
            answer={"backend": "openai", "model": "m", "base_url": f"{vlm_url}/v1", "api_key": "k"},
            api={"rate_per_s": None, "request_timeout_s": 30},
        )
        engine = Engine.open(settings, create=True)
        try:
            index_folder(tmp / "images", engine.encoder, engine.store, settings.indexer)
            with serve(create_app(settings, engine)) as url:
                yield schemathesis.openapi.from_url(f"{url}/openapi.json")
        finally:
            engine.close()


@pytest.fixture(scope="module")
def sqlite_schema(tmp_path_factory) -> Iterator[schemathesis.BaseSchema]:
    yield from _schema_for(tmp_path_factory.mktemp("fuzz-sqlite"), None)


@pytest.fixture(scope="module")
def postgres_schema(tmp_path_factory) -> Iterator[schemathesis.BaseSchema]:
    from tests.test_postgres import fresh_schema_url, require_postgres

    require_postgres()

    with fresh_schema_url() as url:
        yield from _schema_for(tmp_path_factory.mktemp("fuzz-pg"), url)


def check_case(case) -> None:
    response = case.call(timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        (content_type,) = response.headers.get("content-type", [""])
        assert content_type.startswith("application/json"), response.text[:200]
        assert "error" in response.json()


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def fuzz(schema: schemathesis.BaseSchema) -> int:
    """Runs the bounded fuzz over every operation, with valid and with invalid requests; returns how many
    operations were fuzzed."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @FUZZ
        def run(case) -> None:
            check_case(case)

        try:
            run()
        except Unsatisfiable:  # no invalid request exists for an operation without inputs
            assert mode is GenerationMode.NEGATIVE
            assert not operation.path_parameters and not operation.query and not operation.body
    return len(operations)


def test_no_server_errors_on_sqlite(sqlite_schema):
    assert fuzz(sqlite_schema) >= 15


@pytest.mark.postgres
def test_no_server_errors_on_postgres(postgres_schema):
    assert fuzz(postgres_schema) >= 15
