"""Fusing one text query's results from the picture space and the word space: cohort margins.

A text query scores against image vectors (the picture model's text-to-image cosine: about 0.3 is a strong
match for CLIP) and against transcript vectors (the text model's text-to-text cosine: 0.9 for the same
words, 0.4 for a sentence that shares one of them): raw scores of the two cannot be sorted together, and
rank fusion (RRF) gives each space's best the same score whether or not anything matches there.

So each candidate is scored by how much better the query fits it than any typical query does: its cosine
minus the highest cosine a fixed COHORT of typical queries (everyday sentences and short captions of
common things, encoded as queries of that space) gets with the same document. A shot of a red square
fits "a red square" far better than "a red umbrella" or "a square window"; a recording that says "we sat
in a square around the campfire" fits "a red square" no better than it fits "a square window", so it gets
no margin; a recording that says the query's words fits them far better than any cohort query. It is the
T-norm of speaker verification (a score normalised by a cohort of impostor queries), with the cohort's
best instead of its mean and spread: on the mixed development set (search/synth/mixed.py, seed 0) the
margin put the right file and moment first for 29 of 29 queries, the cohort's mean and spread for 22,
per-query z-scores with the former word bonus for 13 (docs/search.md). Per document, it also needs no
statistics of the collection: one recording or ten million pictures are scored alike.

The cohort's 5 queries nearest the query are left out: they are not impostors but the query's own kind
("a yellow taxi" for "a yellow taxi at night"), and left in they would leave the right documents no
margin. A margin above 0 then says "fits this query better than any typical query of another kind": the
answerer's default gate.
"""

from __future__ import annotations

import re

import numpy as np

# Everyday sentences, the form spoken queries take.
BACKGROUND_TEXTS = (
    "Thanks for coming in today, let's get started.",
    # What Whisper writes for sounds that are not words (a sigh, music, a snore): say nothing.
    "Mm-hmm.",
    "Uh, yeah.",
    "Hmm?",
    "Oh.",
    "I think we should wait until next week.",
    "The weather has been really nice lately.",
    "Can you send me the report by Friday?",
    "She walked to the station and caught the last train.",
    "We need to buy milk, bread and eggs.",
    "The meeting has been moved to the afternoon.",
    "He has been working here for about ten years.",
    "Turn left at the second traffic light.",
    "That's a really good question.",
    "The kids are playing in the garden.",
    "I don't remember where I left my keys.",
    "Let me share my screen for a moment.",
    "The price went up again this month.",
    "We will be landing in about twenty minutes.",
    "Please remember to close the door behind you.",
    "The results look better than we expected.",
    "Dinner will be ready in half an hour.",
    "I'll call you back when I get home.",
    "The new version fixes several bugs.",
    "Our team won the match on Saturday.",
    "Could you speak a little louder, please?",
    "The museum is closed on Mondays.",
    "It takes about an hour to drive there.",
    "Welcome back to the show, everyone.",
    "Add a pinch of salt and stir well.",
    "The library has thousands of old books.",
    "My phone battery is almost empty.",
    "Sales were strong in the last quarter.",
    "The river flooded after the heavy rain.",
    "Don't forget to water the plants.",
    "We are running a little behind schedule.",
    "Today we are going to talk about history.",
    "The train was delayed by fifteen minutes.",
    "I really enjoyed the concert last night.",
    "Write your name at the top of the page.",
    "The doctor said I should rest for a few days.",
    "Let's take a short break and come back at three.",
    "They painted the kitchen a different colour.",
    "The store opens at nine in the morning.",
)


# Short captions of common things, the form most picture queries take.
TYPICAL_QUERIES = (
    "a red car parked on the street",
    "a dog running on the beach",
    "a woman reading a book",
    "a bowl of fresh fruit",
    "a man riding a bicycle",
    "a green tree in a field",
    "a blue door",
    "a cat sleeping on a sofa",
    "a plate of pasta",
    "a city skyline at night",
    "a yellow flower",
    "a child playing with a ball",
    "a mountain covered in snow",
    "an old wooden boat",
    "a white house",
    "people sitting around a table",
    "a black and white photo",
    "a sunset over the sea",
    "a cup of coffee",
    "a round clock on the wall",
    "a square window",
    "a pair of shoes",
    "a bird on a branch",
    "a crowded market",
    "a laptop on a desk",
    "a bridge over a river",
    "a bright orange sky",
    "a purple shirt",
    "a star in the night sky",
    "a triangle road sign",
    "a cross on a church",
    "a green field with cows",
    "a red brick wall",
    "a blue car",
    "a circle of stones",
    "a man speaking into a microphone",
    "a group of friends laughing",
    "a train at the station",
    "a person walking in the rain",
    "a close-up of a face",
    "a kitchen with white cabinets",
    "a logo on a white background",
    "a map of the city",
    "a painting of a landscape",
    "a toy robot",
    "a street sign",
    "a glass of water",
    "a football match",
    "a forest path",
    "a bowl of soup",
    "an empty room",
    "a colourful pattern",
    "a plane in the sky",
    "a horse in a meadow",
    "a birthday cake with candles",
    "a red umbrella",
    "a yellow taxi",
    "a green bottle",
    "a pile of books",
    "a garden with flowers",
)
COHORT = (*BACKGROUND_TEXTS, *TYPICAL_QUERIES)
NEAREST_LEFT_OUT = 5  # cohort queries nearest the query, not counted as impostors


def impostors(cohort: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The cohort without the NEAREST_LEFT_OUT queries most like this one: "a yellow taxi" is no impostor
    for "a yellow taxi at night", and left in, it would leave a photo of a yellow taxi no margin."""
    return cohort[np.argsort(-(cohort @ query), kind="stable")[NEAREST_LEFT_OUT:]]


def margins(similarity: np.ndarray, cohort_similarity: np.ndarray) -> np.ndarray:
    """Each candidate's cosine to the query minus the best cosine of a cohort query to it: (n,), (m, n)."""
    return similarity - cohort_similarity.max(axis=0)


def in_cosine_order(similarity: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Each candidate's score raised to the best score of any candidate the query fits no better: the
    space keeps its best margin (so the choice between spaces is unchanged), but inside the space the
    cosine orders. For the word space: a transcript with a second topic ("...painted the door yellow")
    fits a cohort query on that topic ("a blue door") almost as well as the query, which would cost it its
    margin to a transcript that only shares the query's neighbourhood (the harbour, for "the lighthouse")."""
    order = np.argsort(similarity, kind="stable")
    out = np.empty_like(score)
    out[order] = np.maximum.accumulate(score[order])
    return out


STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
    ]
)
WORD = re.compile(r"\w+")


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def terms(text: str) -> frozenset[str]:
    """The words that count for a word match."""
    words = (w.lower() for w in WORD.findall(text))
    return frozenset(_stem(w) for w in words if w not in STOP_WORDS)


def tokens(text: str) -> list[str]:
    """Every word of a text, stop words too, as `terms` spells them: for finding a phrase in speech."""
    return [_stem(w.lower()) for w in WORD.findall(text)]
