"""Pure ranking: calibrated scores, top-k, confidence, abstaining, and why."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from zsl.classes import ClassSet
from zsl.embedding import Encoded, Encoder
from zsl.errors import NoClassesError

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.4
"""Abstain when the winner's confidence is below this (a score of about 1.7)."""


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """How calibrated scores become confidences."""

    # A logistic fitted once on nine data sets and protocols pooled (leave-one-data-set-out
    # refits put the midpoint between 2.1 and 3.3): on average, confidence ~ P(right).
    midpoint: float = 2.7
    """The score at which a class gets confidence 0.5."""
    steepness: float = 0.4
    """How fast confidence rises with the score around the midpoint."""
    explain_words: int = 5


@dataclass(frozen=True, slots=True)
class Prediction:
    """One ranked class."""

    name: str
    score: float
    """How far the text's match with the class stands above ordinary text, in standard
    deviations of the class's own scores on ordinary text (0 = typical, 2 = unusually close)."""
    confidence: float
    """How well the class fits, in [0, 1]: a smooth, increasing function of ``score``."""


@dataclass(frozen=True, slots=True)
class Classification:
    """The answer for one text."""

    predictions: tuple[Prediction, ...]
    """Best first; at most ``top_k``."""
    abstained: bool
    """True when no class fits well enough: the top confidence is below the threshold."""
    threshold: float
    unknown_words: tuple[str, ...]
    """Words of the text the model does not know (they were ignored)."""
    evidence: tuple[str, ...]
    """Words of the text that pulled it most towards the top class, strongest first."""

    @property
    def top(self) -> Prediction:
        return self.predictions[0]


def rank(
    encoder: Encoder,
    classes: ClassSet,
    text: str,
    top_k: int = 3,
    threshold: float | None = None,
    config: ScoringConfig | None = None,
) -> Classification:
    """Classify ``text`` against a guild's classes.

    Raises:
        NoClassesError: the class set is empty.
        UnknownWordsError: the text has no known word.
    """
    if not len(classes):
        raise NoClassesError()
    encoded = encoder.encode(text)
    return rank_encoded(encoded, classes, top_k, threshold, config)


def rank_encoded(
    encoded: Encoded,
    classes: ClassSet,
    top_k: int = 3,
    threshold: float | None = None,
    config: ScoringConfig | None = None,
) -> Classification:
    """Rank an already encoded text (used by evaluation to encode each text once)."""
    if not len(classes):
        raise NoClassesError()
    cfg = config or ScoringConfig()
    if threshold is None:
        threshold = classes.threshold if classes.threshold is not None else DEFAULT_THRESHOLD
    z, similarity = calibrated_scores(encoded, classes)
    confidence = 1.0 / (1.0 + np.exp(-cfg.steepness * (z.astype(np.float64) - cfg.midpoint)))
    order = np.argsort(-z, kind="stable")[: max(1, top_k)]
    predictions = tuple(
        Prediction(
            name=classes.classes[i].definition.name,
            score=float(z[i]),
            confidence=float(confidence[i]),
        )
        for i in order
    )
    return Classification(
        predictions=predictions,
        abstained=predictions[0].confidence < threshold,
        threshold=threshold,
        unknown_words=encoded.unknown_words,
        evidence=_evidence(encoded, similarity, classes, int(order[0]), cfg.explain_words),
    )


def calibrated_scores(
    encoded: Encoded, classes: ClassSet
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Each class's score for the text, in standard deviations above ordinary text.

    Two views are combined: the cosine of the averaged vectors (what the text is about) and
    word matching (for each class word, its best match among the text's words). Each is
    z-scored against the class's own scores on ordinary text, they are averaged, and the
    average is standardised again, so every class is judged on the same scale.

    Returns the scores and the text-word x class-word similarities (for the evidence).
    """
    cosines = classes.matrix @ encoded.vector
    similarity = encoded.word_vectors @ classes.words.T
    matched = np.add.reduceat(similarity.max(axis=0) * classes.word_weights, classes.word_starts)
    cal = classes.calibration
    combined = 0.5 * (cosines - cal[:, 0]) / cal[:, 1] + 0.5 * (matched - cal[:, 2]) / cal[:, 3]
    return np.asarray(combined / cal[:, 4], dtype=np.float32), similarity


def _evidence(
    encoded: Encoded,
    similarity: npt.NDArray[np.float32],
    classes: ClassSet,
    winner: int,
    count: int,
) -> tuple[str, ...]:
    """Text words closest to the winning class's own words, weighted by their rarity."""
    start = classes.word_starts[winner]
    stop = classes.word_starts[winner + 1] if winner + 1 < len(classes) else len(classes.words)
    pull = encoded.weights * similarity[:, start:stop].max(axis=1)
    strongest = float(pull.max())
    best: dict[str, float] = {}
    for word, value in zip(encoded.words, pull.tolist(), strict=True):
        # Words far weaker than the strongest are noise, not evidence.
        if value > 0.25 * strongest and value > best.get(word.lower(), 0.0):
            best[word.lower()] = value
    return tuple(sorted(best, key=lambda w: -best[w])[:count])
