"""Fusing one text query's results from the picture space and the word space.


A text query scores against image vectors (text-to-image cosine, typically 0.1 to 0.35 for CLIP) and
against transcript vectors (text-to-text cosine, typically 0.5 to 1.0): sorting raw scores together would
let speech win every time. Rank fusion (RRF) fails the other way: each space's best hit gets the same
fused score even when nothing in that space matches. So each space is calibrated per query: a score
becomes a robust z-score, (score - median) / (1.4826 * MAD), against the query's scores on a background
sample of that space (random stored vectors, plus a fixed set of everyday sentences for the word space so
that a small collection of transcripts still has a background). A hit that stands out from its space's
background ranks high whichever space it came from; the best of a space that has no real match does not.

A transcript's calibrated score then gains WORD_MATCH_Z times the share of the query's words it holds
(lower-cased, a plural's "s" dropped, common stop words ignored): what was said is often searched by the
very words said, and a text tower trained on captions can rank unfamiliar sentences poorly. Added in
z units, the bonus means the same for every model. See docs/search.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BACKGROUND_SAMPLE = 1024
WORD_MATCH_Z = 8.0  # a transcript holding every query word stands out by 8 more robust sigmas
MAD_TO_SIGMA = 1.4826
MIN_SCALE = 1e-3

# Everyday sentences, far from any one collection: a null distribution for text-to-text scores.
BACKGROUND_TEXTS = (
    "Thanks for coming in today, let's get started.",
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


@dataclass(frozen=True)
class Scale:
    """Where a query's scores against one space's background sit: location and spread."""

    loc: float
    scale: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.loc) / self.scale

    @classmethod
    def of(cls, background_scores: np.ndarray) -> Scale:
        if len(background_scores) == 0:
            return cls(0.0, 1.0)
        median = float(np.median(background_scores))
        mad = float(np.median(np.abs(background_scores - median)))
        return cls(median, max(MAD_TO_SIGMA * mad, MIN_SCALE))


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


def terms(text: str) -> frozenset[str]:
    """The words that count for a word match."""
    words = (w.lower() for w in WORD.findall(text))
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in STOP_WORDS)


def word_match(query_terms: frozenset[str], texts: Sequence[frozenset[str]]) -> np.ndarray:
    """For each text's terms, the share of the query's terms it contains."""
    if not query_terms:
        return np.zeros(len(texts), np.float32)
    return np.array([len(query_terms & t) / len(query_terms) for t in texts], np.float32).reshape(-1)
