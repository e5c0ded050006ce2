"""Shared fixtures: small random-weight models for plumbing, generated images, fresh index folders."""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import uvicorn
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail fast instead of waiting on the network
# As `mmsearch` does (api/cli/): OpenMP threads that spin while they wait fight the server and decode
# threads of the same tests for 2 cores; under load that made model training 10x slower. Set before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under pytest-xdist the workers share the cores: one OpenMP thread each (and in the commands they start)
# instead of a core's worth each fighting for them. Other thread counts: `make test-portable`.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from mmsearch import Settings

if TYPE_CHECKING:
    from mmsearch import Engine

TINY = {"name": "test-vit", "random_weights": True, "device": "cpu"}
CHROMIUM = shutil.which("chromium")  # Debian's, driven by Playwright (`make test` installs it: .ci/system.sh)


def pytest_configure(config: pytest.Config) -> None:
    """A two-layer random ViT for plumbing tests (TINY): it builds in a blink, and unlike a random ResNet
    this small (every pair of images > 0.996 alike) it keeps distinct images apart. Registered where tests
    run; pytest-xdist's controller runs none, so it starts without torch."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    import open_clip

    open_clip.add_model_config(Path(__file__).with_name("model_configs"))


def make_settings(tmp: Path, **model: object) -> Settings:
    return Settings(index_dir=tmp / "index", model={**TINY, **model})


def write_images(folder: Path, n: int, size: tuple[int, int] = (96, 72), seed: int = 0) -> list[Path]:
    """n distinct noisy colour JPEGs named img-000.jpg ..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        pixels[..., i % 3] = 255 - i * 3 % 255
        path = folder / f"img-{i:03d}.jpg"
        Image.fromarray(pixels).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings):
    from mmsearch import Engine

    eng = Engine.open(settings, create=True)
    yield eng
    eng.close()


FIXTURE_MODELS = Path(__file__).parent / "fixtures" / "models"


def _fixture_model(tmp_path_factory, name: str, env: str) -> Path:
    """A copy of a trained model committed in tests/fixtures/models (its README says how it was made),
    or of the folder the environment variable names (tests/spread.py points it at other trainings).
    Loaded, not trained: the quality tests then measure the same weights on every machine. A copy, so
    the ONNX towers exported beside a model folder stay out of the repository."""
    source = Path(os.environ.get(env) or FIXTURE_MODELS / name)
    copy = tmp_path_factory.mktemp(name) / name
    shutil.copytree(source, copy)
    return copy


@pytest.fixture(scope="session")
def shapes_model(tmp_path_factory) -> Path:
    """mmsearch-tiny trained on the synthetic shapes (`make fixture-models`)."""
    return _fixture_model(tmp_path_factory, "shapes", "MMSEARCH_TEST_SHAPES_MODEL")


@pytest.fixture(scope="session")
def shapes_attribute_model(tmp_path_factory) -> Path:
    """The same model trained with partial captions as well ("blue", "circle"), so single attribute
    words mean something: what composed queries ("this picture, but blue") need. Kept apart from
    `shapes_model` because its text tower also scores everyday sentences higher, which changes how
    pictures and speech fuse in the media tests."""
    return _fixture_model(tmp_path_factory, "shapes-attribute", "MMSEARCH_TEST_SHAPES_ATTRIBUTE_MODEL")


TESTS = Path(__file__).parent
TRAINED = {"shapes_model", "shapes_attribute_model"}
# The files whose tests measure a trained model: a recall, an accuracy, a margin, which file or moment
# ranks first on held-out data. Their tests that load a trained model are `quality`: `make test-portable`
# reruns them under other CPU kernels and thread counts (docs/testing.md). The other tests that load one
# send a query through a door (CLI, HTTP, MCP, the page, the one-shot search, answers) and check that the
# door gives the engine's answer; the ranking they show is measured here.
MEASURING = {
    "test_quality.py",
    "test_classify.py",
    "test_composed.py",
    "test_fusion.py",
    "test_media_index.py",
    "test_eval.py",
    "test_dedup.py",
    "test_model.py",
    "test_ranking.py",
    "test_ocr.py",
    "real/test_speech.py",
    "real/test_films.py",
    "real/test_photos.py",
    "real/test_multilingual.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks a measuring file's tests that load a trained model `quality`."""
    for item in items:
        rel = item.path.relative_to(TESTS).as_posix()
        if rel in MEASURING and TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.quality)


if importlib.util.find_spec("xdist") is not None:
    from xdist.scheduler import LoadFileScheduling

    class FilesAndRealScheduling(LoadFileScheduling):
        """pytest-xdist's `--dist loadfile`, with all of tests/real as one file: one worker runs all of a
        file's tests, so a module's fixtures are built once, and the real corpus is indexed once."""

        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return "tests/real" if path.startswith("tests/real/") else path

    def pytest_xdist_make_scheduler(config, log):
        return FilesAndRealScheduling(config, log)


def assert_same_ranking(got: list[tuple[object, float]], want: list[tuple[object, float]], tol: float = 1e-4):
    """Two ranked (id, score) lists from different code paths (kernels, thread counts, backends) agree up
    to near-ties: scores match rank by rank within `tol`, every shared id scores the same within `tol`,
    and an id found by one list only scores within `tol` of the other list's last score (it fell off by a
    tie). Exact id order is never required where scores are closer than `tol`."""
    assert len(got) == len(want), (got, want)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=tol)
    scores = dict(want)
    for item, score in got:
        other = scores.get(item, want[-1][1])
        assert abs(other - score) <= tol, f"{item}: {score} vs {other}; {got} vs {want}"


def assert_same_top_k(got: np.ndarray, want: np.ndarray, score, tol: float = 1e-5) -> None:
    """Rows of ids, each the top k by exact score: the exact scores of `got` equal those of `want` rank
    by rank within `tol` (ties may swap ids); `score(row_index, ids)` gives the exact scores."""
    assert got.shape == want.shape
    for r, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(score(r, g), score(r, w), atol=tol)


@contextmanager
def serve(app) -> Iterator[str]:
    """Run the app under uvicorn in a thread on a free loopback port; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during startup"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not shut down"


def index_heldout_shapes(root: Path, model: dict, per_class: int) -> tuple[Settings, Engine]:
    """Held-out synthetic shapes (seed 1, never trained on) in root/heldout, indexed into root/index."""
    from mmsearch import Engine
    from mmsearch.indexer import index_folder
    from mmsearch.synth.shapes import generate

    generate(root / "heldout", per_class=per_class, seed=1, fmt="jpg")
    settings = Settings(index_dir=root / "index", model=model)
    engine = Engine.open(settings, create=True)
    index_folder(root / "heldout", engine.encoder, engine.store, settings.indexer)
    return settings, engine


@pytest.fixture(scope="module")
def one_faiss_thread():
    """One OpenMP thread for FAISS: its threads spin while they wait, and on a busy 2-core machine the
    many small k-means runs of PQ training take 30x longer with two threads than with one."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the web page's tests; without it they fail, never skip."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM:
        pytest.fail("Debian's chromium is missing: `make test` installs it (.ci/system.sh)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield chromium
        chromium.close()
