"""Pure ranking: calibrated scores, top-k, confidence, abstaining, and why."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from zsl.classes import ClassSet
from zsl.embedding import Encoded, Encoder
from zsl.errors import NoClassesError, UnknownWordsError

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
    result = rank_many(encoder, classes, [text], top_k, threshold, config)[0]
    if isinstance(result, UnknownWordsError):
        raise result
    return result


def rank_many(
    encoder: Encoder,
    classes: ClassSet,
    texts: Sequence[str],
    top_k: int = 3,
    threshold: float | None = None,
    config: ScoringConfig | None = None,
) -> list[Classification | UnknownWordsError]:
    """Classify several texts against the same classes; a text with no known word gets its error.

    Raises:
        NoClassesError: the class set is empty.
    """
    if not len(classes):
        raise NoClassesError()
    encoded = encoder.encode_many(texts)
    known = [e for e in encoded if isinstance(e, Encoded)]
    ranked = iter(rank_encoded(known, classes, top_k, threshold, config) if known else ())
    return [e if isinstance(e, UnknownWordsError) else next(ranked) for e in encoded]


def rank_encoded(
    encoded: Sequence[Encoded],
    classes: ClassSet,
    top_k: int = 3,
    threshold: float | None = None,
    config: ScoringConfig | None = None,
) -> list[Classification]:
    """Rank already encoded texts (evaluation encodes each text once for several class sets)."""
    if not len(classes):
        raise NoClassesError()
    cfg = config or ScoringConfig()
    if threshold is None:
        threshold = classes.threshold if classes.threshold is not None else DEFAULT_THRESHOLD
    scores = calibrated_scores(encoded, classes)
    top = _top(scores.z, max(1, top_k))
    z = scores.z[np.arange(len(encoded))[:, None], top].tolist()
    results = []
    for i, text in enumerate(encoded):
        predictions = tuple(
            Prediction(
                name=classes.names[c],
                score=score,
                confidence=1.0 / (1.0 + math.exp(-cfg.steepness * (score - cfg.midpoint))),
            )
            for c, score in zip(top[i].tolist(), z[i], strict=True)
        )
        start = int(scores.starts[i])
        results.append(
            Classification(
                predictions=predictions,
                abstained=predictions[0].confidence < threshold,
                threshold=threshold,
                unknown_words=text.unknown_words,
                evidence=_evidence(
                    text,
                    scores.similarity[start : start + len(text.words)],
                    classes,
                    int(top[i, 0]),
                    cfg.explain_words,
                ),
            )
        )
    return results


@dataclass(frozen=True, slots=True)
class Scores:
    """Calibrated scores of several texts against one class set."""

    z: npt.NDArray[np.float32]
    """texts x classes: how far each match stands above ordinary text, in standard deviations."""
    similarity: npt.NDArray[np.float32]
    """All the texts' words (one text after another) x all the classes' words: cosines."""
    starts: npt.NDArray[np.intp]
    """Where each text's words begin in ``similarity``."""


def calibrated_scores(encoded: Sequence[Encoded], classes: ClassSet) -> Scores:
    """Each class's score for each text, in standard deviations above ordinary text.

    Two views are combined: the cosine of the averaged vectors (what the text is about) and
    word matching (for each class word, its best match among the text's words). Each is
    z-scored against the class's own scores on ordinary text, they are averaged, and the
    average is standardised again, so every class is judged on the same scale.
    """
    if len(encoded) == 1:  # the common case, without the cost of stacking
        vectors, word_vectors = encoded[0].vector[None, :], encoded[0].word_vectors
    else:
        vectors = np.stack([e.vector for e in encoded])
        word_vectors = np.concatenate([e.word_vectors for e in encoded])
    starts = np.array([0, *itertools.accumulate(len(e.words) for e in encoded[:-1])], np.intp)
    similarity = word_vectors @ classes.words.T
    best = np.maximum.reduceat(similarity, starts, axis=0)  # texts x class words
    z = (
        (vectors @ classes.matrix.T) * classes.vector_scale
        + np.add.reduceat(best * classes.word_scale, classes.word_starts, axis=1)
        - classes.offset
    )
    return Scores(np.asarray(z, dtype=np.float32), similarity, starts)


def _top(z: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Per row, the columns of the ``k`` highest scores, best first (ties: the earlier class)."""
    if z.shape[1] <= 1000:
        return np.argsort(-z, axis=1, kind="stable")[:, :k]
    # Selecting before sorting keeps 10,000 classes cheap.
    candidates = np.argpartition(-z, k - 1, axis=1)[:, :k]
    rows = np.arange(len(z))[:, None]
    return candidates[rows, np.lexsort((candidates, -z[rows, candidates]))]


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
