"""A mixed set of what is seen and what is said, to develop and check fusion on (docs/search.md): videos
of coloured-shape shots, some narrated, and recordings whose sentences share colour and shape words with
the shots, so that a visual query has a spoken rival and a spoken one a visual rival.

    out_dir/videos/video-0.mp4 ...       three shots each; every other one narrated from NARRATION_AT s
    out_dir/recordings/said-0.wav ...    one sentence each
    out_dir/mixed.json                   the labelled set for `mmsearch eval` (root: out_dir)

Every query has one right file and one right moment: a caption -> the one shot showing that class (no
class is shown twice); a sentence's words -> the recording or the narrated video, when they are said.
Seed 0 is the set fusion was developed on; seed 1 was held out until the method was fixed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from mmsearch.synth.media import shot_of, shot_times, silence, speak, write_audio, write_video
from mmsearch.synth.shapes import caption, classes

VIDEOS = 6
RECORDINGS = 8
FPS = 25
RATE = 16000
NARRATION_AT = 1.0  # seconds of silence before a narration starts
# Everyday sentences that happen to name a colour or a shape: the rivals of the shots' captions.
SENTENCES = (
    "the {colour} umbrella is still in the hallway",
    "please put the {colour} container on the top shelf",
    "my neighbour painted her garden fence {colour} last summer",
    "he left his {colour} bicycle outside the library",
    "the carpet in the meeting room is {colour} and old",
    "we sat in a {shape} around the campfire and sang",
    "the children drew a {shape} on the pavement with chalk",
    "the {shape} on the old map marks the water mill",
    "she ordered a {colour} scarf for her brother's birthday",
    "the {colour} door at the end of the street is the bakery",
    "our teacher asked us to cut a {shape} out of paper",
    "the train to the coast leaves from the {colour} platform",
)


def _sentence(template: str, colour: str, shape: str) -> str:
    return template.format(colour=colour, shape=shape)


def _speech(text: str) -> tuple[np.ndarray, float]:
    """The sentence spoken at 16 kHz, and how long it lasts."""
    samples, rate = speak(text)
    n = round(len(samples) * RATE / rate)
    audio = np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples)
    return audio.astype(np.float32), n / RATE


def write(out_dir: Path, seed: int = 0) -> Path:
    """Write the media and out_dir/mixed.json; return the JSON's path. espeak-ng speaks the sentences."""
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    (out_dir / "recordings").mkdir(parents=True, exist_ok=True)
    shown = rng.sample(classes(), VIDEOS * 3)
    templates = rng.sample(SENTENCES, RECORDINGS + VIDEOS // 2)
    queries = []
    for v in range(VIDEOS):
        rel = f"videos/video-{v}.mp4"
        shots = [
            shot_of(c, s, rng.choice((2.0, 3.0, 4.0)), seed=seed * 100 + v)
            for c, s in shown[3 * v : 3 * v + 3]
        ]
        audio = None
        if v % 2 == 0:  # narrated, with words of a shot the video does not show
            colour, shape = rng.choice(shown)
            said = _sentence(templates[RECORDINGS + v // 2], colour, shape)
            speech, seconds = _speech(said)
            audio = np.concatenate([silence(NARRATION_AT, RATE), speech])
            queries.append(_said(said, rel, NARRATION_AT, NARRATION_AT + seconds))
        write_video(out_dir / rel, shots, fps=FPS, audio=audio)
        for (colour, shape), (t0, t1) in zip(shown[3 * v : 3 * v + 3], shot_times(shots, FPS), strict=True):
            queries.append(
                {
                    "id": f"seen {colour} {shape}",
                    "text": caption(colour, shape),
                    "relevant": [rel],
                    "moments": [{"path": rel, "t0": t0, "t1": t1}],
                }
            )
    for r in range(RECORDINGS):
        rel = f"recordings/said-{r}.wav"
        colour, shape = rng.choice(shown)
        said = _sentence(templates[r], colour, shape)
        speech, seconds = _speech(said)
        write_audio(out_dir / rel, speech, RATE)
        queries.append(_said(said, rel, 0.0, seconds))
    labelled = {"name": f"mixed-{seed}", "root": ".", "queries": queries}
    path = out_dir / "mixed.json"
    path.write_text(json.dumps(labelled, indent=1) + "\n", encoding="utf-8")
    return path


def _said(sentence: str, rel: str, t0: float, t1: float) -> dict:
    """A spoken query: the sentence as a listener would recall it, without its first two words."""
    words = sentence.split()
    return {
        "id": f"said {' '.join(words[:4])}",
        "text": " ".join(words[2:]),
        "relevant": [rel],
        "moments": [{"path": rel, "t0": round(t0, 3), "t1": round(t1, 3)}],
    }
