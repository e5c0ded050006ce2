"""The spread of the quality figures: the quality tests rerun over training seeds and under the settings
that make one CPU compute like another (docs/testing.md has the table and what it decided).

    .venv/bin/python -m tests.spread knobs               # the committed models under each CPU setting
    .venv/bin/python -m tests.spread seeds 0,1,2,3,4     # both fixture models trained again per seed

Each row is one pytest process with that row's environment. Its figures are those the tests record
(`record_property`), read back from a JUnit XML file, with the tests that failed. For `seeds`, the
fixture recipe (`make fixture-models`) is trained again with the seed and the training tests use it too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_quality.py", "tests/test_classify.py", "tests/test_composed.py", "tests/test_train.py"]
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
KNOBS: dict[str, dict[str, str]] = {
    "this CPU (AVX-512), 2 threads": {},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "OMP_NUM_THREADS=8": {"OMP_NUM_THREADS": "8"},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "AVX2 machine (all three), 1 thread": {**AVX2, "OMP_NUM_THREADS": "1"},
}
RECIPE = {"shapes": [], "shapes-attribute": ["--partial-captions", "0.3"]}


def run_tests(env: dict[str, str], workdir: Path) -> dict:
    """The quality tests in one pytest process: {"figures": {name: value}, "failed": [test ids]}."""
    report = workdir / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "quality", "-p", "no:cacheprovider", *TESTS]
    subprocess.run(
        [*cmd, f"--junitxml={report}", "-o", "junit_family=xunit1"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        check=False,
    )
    figures, failed = {}, []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}")
        for prop in case.iter("property"):
            figures[prop.get("name")] = round(float(prop.get("value")), 4)
    return {"figures": figures, "failed": failed}


def train_fixtures(seed: int, folder: Path, epochs: int | None = None) -> dict[str, str]:
    """Both fixture models trained again with this seed; the environment that points the tests at them."""
    data = folder / "data"
    mmsearch = [sys.executable, "-m", "mmsearch.api.launch"]
    if not (data / "captions.csv").exists():
        synth = [*mmsearch, "synth", str(data), "--per-class", "60", "--seed", "0"]
        subprocess.run(synth, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    for name, extra in RECIPE.items():
        out = folder / f"{name}-seed{seed}"
        train = [*mmsearch, "train", str(data / "captions.csv"), "--out", str(out), "--seed", str(seed)]
        more = ["--epochs", str(epochs)] if epochs else []
        subprocess.run([*train, *extra, *more], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return {
        "MMSEARCH_TEST_SHAPES_MODEL": str(folder / f"shapes-seed{seed}"),
        "MMSEARCH_TEST_SHAPES_ATTRIBUTE_MODEL": str(folder / f"shapes-attribute-seed{seed}"),
        "MMSEARCH_TEST_TRAIN_SEED": str(seed),
    }


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table: one column per figure, then the failed tests."""
    names = sorted({name for row in rows for name in row["figures"]})
    lines = ["| setting | " + " | ".join(names) + " | failed |", "|---" * (len(names) + 2) + "|"]
    for row in rows:
        cells = [str(row["figures"].get(name, "-")) for name in names]
        lines.append(f"| {row['setting']} | " + " | ".join(cells) + f" | {', '.join(row['failed']) or '-'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("what", choices=["knobs", "seeds"])
    parser.add_argument("seeds", nargs="?", default="0,1,2,3,4", help="training seeds, for `seeds`")
    parser.add_argument("--epochs", type=int, help="for `seeds`: epochs to train (default: the recipe's)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mmsearch-spread-") as tmp:
        if args.what == "knobs":
            settings = list(KNOBS.items())
        else:
            settings = [(f"seed {s}", int(s)) for s in args.seeds.split(",")]
        for name, setting in settings:
            env = setting if isinstance(setting, dict) else train_fixtures(setting, Path(tmp), args.epochs)
            rows.append({"setting": name, **run_tests(env, Path(tmp))})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
