"""Settings are data: every `MMSEARCH_*` variable is a field of Settings, documented in docs/settings.md,
and read nowhere but the config (search/config.py, and search/defaults.py for the one-shot search, which
reads no Settings)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pydantic import BaseModel

from mmsearch.config import Settings
from tests.test_rooms import MODULES, ROOT

CONFIG = {"mmsearch.config", "mmsearch.defaults"}
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def variables(model: type[BaseModel] = Settings, prefix: str = "MMSEARCH_") -> dict[str, str | None]:
    """Every setting's environment variable and its description."""
    out = {}
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out |= variables(field.annotation, f"{prefix}{name.upper()}__")
        else:
            out[f"{prefix}{name.upper()}"] = field.description
    return out


def test_every_setting_is_described_and_documented():
    documented = set(re.findall(r"`(MMSEARCH_\w+)`", (ROOT / "docs" / "settings.md").read_text()))
    assert {name for name, description in variables().items() if not description} == set()
    assert set(variables()) - documented == set(), "settings missing from docs/settings.md"
    assert documented - set(variables()) == set(), "docs/settings.md names settings that do not exist"


def test_every_variable_the_docs_name_is_a_setting():
    """A renamed or moved setting leaves no stale name behind (MMSEARCH_API__MAX_K is search.max_k). The
    test suite's own variables (MMSEARCH_TEST_*, docs/testing.md) are no settings of the product."""
    known, groups = set(variables()), {name.rsplit("__", 1)[0] + "__" for name in variables()}
    for path in DOCS:
        for name in re.findall(r"MMSEARCH_[A-Z_]*[A-Z]", path.read_text()):
            ours = name in known or name + "__" in groups or name.startswith("MMSEARCH_TEST_")
            assert ours, f"{path.name}: {name} is no setting"


def test_no_code_outside_the_config_reads_an_mmsearch_variable():
    read = []
    for module, path in MODULES.items():
        if module in CONFIG:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _reads_environment(node.func) and node.args:
                name = node.args[0]
            elif isinstance(node, ast.Subscript) and _reads_environment(node.value):
                name = node.slice
            else:
                continue
            if isinstance(name, ast.Constant) and str(name.value).upper().startswith("MMSEARCH"):
                read.append(f"{path.relative_to(ROOT)}:{node.lineno} {name.value}")
            elif isinstance(node, ast.Name) or not isinstance(name, ast.Constant):
                read.append(f"{path.relative_to(ROOT)}:{node.lineno} a computed name")
    assert not read, read


def _reads_environment(node: ast.expr) -> bool:
    """os.environ.get / os.getenv / os.environ[...]."""
    text = ast.unparse(node)
    return text in ("os.environ.get", "os.getenv", "os.environ", "environ.get", "getenv")


def test_one_cache_root_set_by_one_setting(tmp_path: Path, monkeypatch):
    """Text models and exported towers go under model.cache_dir: $XDG_CACHE_HOME/mmsearch by default,
    MMSEARCH_MODEL__CACHE_DIR where set (MMSEARCH_CACHE, read outside Settings, is gone)."""
    from mmsearch.encode import onnx_towers, sentences

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Settings().model.cache_dir == tmp_path / "xdg" / "mmsearch"
    monkeypatch.setenv("MMSEARCH_MODEL__CACHE_DIR", str(tmp_path / "mine"))
    chosen = Settings().model.cache_dir
    assert chosen == tmp_path / "mine"
    assert sentences.cache_root(chosen) == tmp_path / "mine" / "text-models"
    assert onnx_towers.default_cache_root(None, chosen) == tmp_path / "mine" / "onnx"
