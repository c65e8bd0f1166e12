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

DEFAULT_THRESHOLD = 0.5
"""Abstain when the winner's confidence is below this."""


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """How calibrated scores become confidences. General constants, not fitted to a dataset."""

    temperature: float = 1.0
    """Softmax temperature over background z-scores."""
    none_score: float = 2.0
    """The z-score of the implicit "no class fits" option: a text must stand this many
    background standard deviations above ordinary text to beat it."""
    explain_words: int = 5


@dataclass(frozen=True, slots=True)
class Prediction:
    """One ranked class."""

    name: str
    score: float
    """Cosine similarity between the text and the class, in [-1, 1]."""
    confidence: float
    """Probability-like share in [0, 1]: the class against the others and against "none"."""


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
    cosines = classes.matrix @ encoded.vector
    z = (cosines - classes.background_mean) / classes.background_std
    confidence = _confidence(z, cfg)
    order = np.argsort(-z, kind="stable")[: max(1, top_k)]
    predictions = tuple(
        Prediction(
            name=classes.classes[i].definition.name,
            score=float(cosines[i]),
            confidence=float(confidence[i]),
        )
        for i in order
    )
    return Classification(
        predictions=predictions,
        abstained=predictions[0].confidence < threshold,
        threshold=threshold,
        unknown_words=encoded.unknown_words,
        evidence=_evidence(encoded, classes.matrix[order[0]], cfg.explain_words),
    )


def _confidence(z: npt.NDArray[np.float32], cfg: ScoringConfig) -> npt.NDArray[np.float64]:
    logits = np.append(z.astype(np.float64), cfg.none_score) / cfg.temperature
    logits -= logits.max()
    weights = np.exp(logits)
    return np.asarray(weights / weights.sum(), dtype=np.float64)[:-1]


def _evidence(
    encoded: Encoded, class_vector: npt.NDArray[np.float32], count: int
) -> tuple[str, ...]:
    pull = encoded.weights * (encoded.word_vectors @ class_vector)
    best: dict[str, float] = {}
    for word, value in zip(encoded.words, pull.tolist(), strict=True):
        if value > 0 and value > best.get(word.lower(), 0.0):
            best[word.lower()] = value
    return tuple(sorted(best, key=lambda w: -best[w])[:count])
