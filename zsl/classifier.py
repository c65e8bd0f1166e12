"""Pure ranking: calibrated scores, top-k, confidence, abstaining, and why."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from zsl.classes import ClassSet
from zsl.embedding import Encoded, Encoder
from zsl.errors import NoClassesError

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.4
"""Abstain when the winner's confidence is below this (a score of about 1.7)."""

PAD_WORDS = 2_000
"""A guild whose classes have more words than this is scored apart from the rest of a batch."""
MEMORY_BUDGET = 16 << 20
"""Bytes of word-match cosines computed at once while scoring texts."""
SHORTLIST_ABOVE = ClassSet.SHORTLIST_ABOVE
"""A class set with more class words than this is ranked through a shortlist (see
``_shortlisted``): below it, the exact pass over every class word is as fast."""


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
    memory_budget: int = MEMORY_BUDGET
    """Bytes of word-match cosines held at once while scoring a batch of texts."""
    shortlist_above: int = SHORTLIST_ABOVE
    """Class sets with more class words than this are ranked in two stages: an estimate of
    every class's score, then the exact score of the ``shortlist_size`` best estimates."""
    shortlist_dims: int = ClassSet.SHORTLIST_DIMS
    """The estimate measures word cosines on this many leading dimensions (the default
    model's dimensions are ordered by variance); models with fewer than twice as many
    dimensions are always ranked exactly."""
    shortlist_min_weight: float = 0.5
    """The estimate matches class words with the text's words that weigh at least this
    (frequency weight times count; 0.5 is a word as rare as the weighting's ``a``): function
    words are seldom a class word's best match, and they are a third of a chat message's
    words. A text with no such word is estimated with all its words."""
    shortlist_size: int = 256
    """Classes whose exact score is computed (at least ``top_k``); the top ``top_k`` are
    taken among them."""


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
    return rank_encoded([encoder.encode(text)], classes, top_k, threshold, config)[0]


def rank_encoded(
    encoded: Sequence[Encoded],
    classes: ClassSet | Sequence[ClassSet],
    top_k: int = 3,
    threshold: float | None = None,
    config: ScoringConfig | None = None,
) -> list[Classification]:
    """Rank already encoded texts, each against its own class set (or all against one).

    Texts from many guilds are ranked together: one pass of array maths serves them all.
    """
    sets = [classes] * len(encoded) if isinstance(classes, ClassSet) else list(classes)
    if not all(len(s) for s in sets):
        raise NoClassesError()
    cfg = config or ScoringConfig()
    top, z = _ranked(encoded, sets, max(1, top_k), cfg)
    results = []
    for text, own, columns, scores in zip(encoded, sets, top, z, strict=True):
        predictions = tuple(
            Prediction(
                name=own.names[c],
                score=score,
                confidence=1.0 / (1.0 + math.exp(-cfg.steepness * (score - cfg.midpoint))),
            )
            for c, score in zip(columns, scores, strict=True)
        )
        limit = threshold if threshold is not None else own.threshold
        limit = DEFAULT_THRESHOLD if limit is None else limit
        results.append(
            Classification(
                predictions=predictions,
                abstained=predictions[0].confidence < limit,
                threshold=limit,
                unknown_words=text.unknown_words,
                evidence=_evidence(text, own, columns[0], cfg.explain_words),
            )
        )
    return results


def _ranked(
    encoded: Sequence[Encoded], sets: Sequence[ClassSet], top_k: int, cfg: ScoringConfig
) -> tuple[list[list[int]], list[list[float]]]:
    """Per text, the classes of its ``top_k`` highest scores (best first) and those scores."""
    top: list[list[int]] = [[] for _ in encoded]
    z: list[list[float]] = [[] for _ in encoded]
    large: dict[int, list[int]] = {}  # id of a class set -> its texts
    exact = []
    for i, s in enumerate(sets):
        dim = s.words.shape[1]
        if len(s.words) > cfg.shortlist_above and dim >= 2 * cfg.shortlist_dims:
            large.setdefault(id(s), []).append(i)
        else:
            exact.append(i)
    if exact:
        own = [sets[i] for i in exact]
        scores = calibrated_scores([encoded[i] for i in exact], own, cfg.memory_budget)
        columns = _top(scores, min(top_k, scores.shape[1]))
        values = np.take_along_axis(scores, columns, axis=1)
        for row, (i, s) in enumerate(zip(exact, own, strict=True)):
            # Past the end of a small set the columns are padding (score -inf).
            top[i] = columns[row, : len(s)].tolist()
            z[i] = values[row, : len(s)].tolist()
    for texts in large.values():
        columns, values = _shortlisted([encoded[i] for i in texts], sets[texts[0]], top_k, cfg)
        for row, i in enumerate(texts):
            top[i], z[i] = columns[row].tolist(), values[row].tolist()
    return top, z


def _shortlisted(
    encoded: Sequence[Encoded], classes: ClassSet, top_k: int, cfg: ScoringConfig
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """The ``top_k`` best classes of each text (best first) and their exact scores, without
    computing every class's exact score.

    Matching each text word against every class word is a product that streams all class
    words from memory (41 MB for 10,000 classes). First every class is scored the usual way
    but with word cosines measured on the leading ``shortlist_dims`` dimensions only (under a
    fifth of the data), normalised there so that a word still matches itself with 1, and only
    for the text's telling words (``shortlist_min_weight``): the set's ``heads``, which a set
    this large keeps contiguous and normalised, make the estimate one product per text. Then
    the ``shortlist_size`` best estimates are scored exactly and the winners are taken among
    them: their scores are exact, but a class whose estimate ranks below the shortlist is
    missed. Measured with the default table on all 18,380 texts of the five dev sets, each
    against its own classes plus 10,000 others: with 48 dimensions and telling words, the
    same top 1 as exact scoring for every text and the same ordered top 3 for all but 1 (all
    of them with every word; with 32 dimensions and every word, all but 8). The averaged
    vectors' cosine stays exact: it carries most of a refined table's score, and cut to its
    leading 128 dimensions it put an exact top 1 as low as 699th (of 1,500 of those texts).
    """
    dims = cfg.shortlist_dims
    heads = classes.heads_on(dims)  # dims x class words, kept by a set this large
    vectors = np.stack([e.vector for e in encoded])
    cosines = vectors @ classes.matrix.T  # exact: a quarter of the time, most of the score
    estimate = np.empty((len(encoded), heads.shape[1]), np.float32)
    for i, text in enumerate(encoded):
        telling = text.weights >= cfg.shortlist_min_weight
        words = ClassSet.unit_heads(
            text.word_vectors[telling] if telling.any() else text.word_vectors, dims
        ).T
        # One product per text; a text of many words takes the class words in slices, so
        # that its cosines stay within the memory budget.
        span = max(1, cfg.memory_budget // (4 * len(words)))
        for first in range(0, heads.shape[1], span):
            cosines_on_heads = words @ heads[:, first : first + span]
            estimate[i, first : first + span] = cosines_on_heads.max(axis=0)
    matched = np.add.reduceat(estimate * classes.word_scale, classes.word_starts, axis=1)
    approximate = cosines * classes.vector_scale + matched - classes.offset
    shortlist = _top(approximate, min(max(cfg.shortlist_size, top_k), len(classes)))
    ends = np.append(classes.word_starts[1:], len(classes.words))
    columns = np.empty((len(encoded), min(top_k, len(classes))), np.intp)
    z = np.empty(columns.shape, np.float32)
    for i, (text, chosen) in enumerate(zip(encoded, shortlist, strict=True)):
        starts, lengths = classes.word_starts[chosen], (ends - classes.word_starts)[chosen]
        # The chosen classes' words, class after class: a start per word plus its rank.
        firsts = np.cumsum(lengths) - lengths
        words = np.repeat(starts - firsts, lengths) + np.arange(lengths.sum())
        best = _best_matches([text.word_vectors], classes.words[words], cfg.memory_budget)[0]
        exact = (
            cosines[i, chosen] * classes.vector_scale[chosen]
            + np.add.reduceat(best * classes.word_scale[words], firsts)
            - classes.offset[chosen]
        )
        order = np.lexsort((chosen, -exact))[: columns.shape[1]]  # ties: the earlier class
        columns[i], z[i] = chosen[order], exact[order]
    return columns, z


def calibrated_scores(
    encoded: Sequence[Encoded], classes: Sequence[ClassSet], memory_budget: int = MEMORY_BUDGET
) -> npt.NDArray[np.float32]:
    """Each class's score for each text (texts x classes), in standard deviations above
    ordinary text; -inf past the end of a text's class set.

    Two views are combined: the cosine of the averaged vectors (what the text is about) and
    word matching (for each class word, its best match among the text's words). Each is
    z-scored against the class's own scores on ordinary text, they are averaged, and the
    average is standardised again, so every class is judged on the same scale.

    Guilds with up to ``PAD_WORDS`` class words are padded to the largest of them and scored
    in one batched product; a guild with more is scored on its own (padding every other
    guild to its size would cost more). Either way the products run in blocks of about
    ``memory_budget`` bytes, so no batch of texts can make them large.
    """
    slot: dict[int, int] = {}
    distinct: list[ClassSet] = []
    for s in classes:
        if slot.setdefault(id(s), len(distinct)) == len(distinct):
            distinct.append(s)
    which = np.array([slot[id(s)] for s in classes], dtype=np.intp)
    z = np.full((len(encoded), max(len(s) for s in distinct)), -np.inf, np.float32)
    padded = [j for j, s in enumerate(distinct) if len(s.words) <= PAD_WORDS]
    groups = [[j] for j, s in enumerate(distinct) if len(s.words) > PAD_WORDS]
    groups += [padded] if padded else []
    for group in groups:
        texts = np.flatnonzero(np.isin(which, group)).tolist()
        members = [distinct[j] for j in group]
        local = np.searchsorted(group, which[texts]) if len(group) > 1 else None
        scored = _scores([encoded[t] for t in texts], members, local, memory_budget)
        z[texts, : scored.shape[1]] = scored
    return z


def _scores(
    encoded: Sequence[Encoded],
    sets: list[ClassSet],
    which: npt.NDArray[np.intp] | None,
    budget: int,
) -> npt.NDArray[np.float32]:
    """Scores of texts against one class set, or of each against ``sets[which[i]]``."""
    vectors = np.stack([e.vector for e in encoded])
    if which is None:  # one class set: plain products, nothing to pad or gather
        only = sets[0]
        best = _best_matches([e.word_vectors for e in encoded], only.words, budget)
        matched = np.add.reduceat(best * only.word_scale, only.word_starts, axis=1)
        z = (vectors @ only.matrix.T) * only.vector_scale + matched - only.offset
        return np.asarray(z, np.float32)
    most_classes = max(len(s) for s in sets)
    word_class, word_scale, class_words = _padded_words(sets, most_classes)
    vector_scale, offset, matrix = _padded_classes(sets, most_classes)
    best = _best_matches([e.word_vectors for e in encoded], class_words, budget, which)
    cosines = np.matmul(vectors[:, None, :], matrix[which].transpose(0, 2, 1))[:, 0, :]
    # Sum each class's weighted best matches: one bincount over (text, class) cells.
    cells = word_class[which] + (most_classes + 1) * np.arange(len(encoded))[:, None]
    matched = np.bincount(
        cells.ravel(),
        weights=(best * word_scale[which]).ravel(),
        minlength=len(encoded) * (most_classes + 1),
    ).reshape(len(encoded), most_classes + 1)[:, :most_classes]
    return np.asarray(cosines * vector_scale[which] + matched - offset[which], np.float32)


def _best_matches(
    text_words: Sequence[npt.NDArray[np.float32]],
    class_words: npt.NDArray[np.float32],
    budget: int,
    which: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.float32]:
    """For each text and each class word, the best cosine among the text's words.

    ``text_words`` holds each text's word vectors (words x dim). ``class_words`` is one matrix
    (words x dim) shared by every text, or one per set (sets x words x dim) with ``which``
    naming each text's set. Texts go in blocks, and the class words in slices, so that the
    cosines of one step stay within about ``budget`` bytes.
    """
    size, dim = class_words.shape[-2], class_words.shape[-1]
    longest = max(len(w) for w in text_words)
    gathered = dim if which is not None else 0  # each text's own copy of its class words
    per_text = 4 * (longest * dim + size * (longest + gathered))
    step = max(1, budget // per_text)
    span = size if per_text <= budget else max(1, budget // (4 * (longest + gathered)))
    best = np.empty((len(text_words), size), np.float32)
    for start in range(0, len(text_words), step):
        block = text_words[start : start + step]
        # Shorter texts repeat their first word: a repeated word never changes a maximum.
        words = np.stack([np.concatenate([w] + [w[:1]] * (longest - len(w))) for w in block])
        for first in range(0, size, span):
            if which is None:
                cosines = words @ class_words[first : first + span].T
            else:
                own = class_words[which[start : start + step], first : first + span]
                cosines = np.matmul(words, own.transpose(0, 2, 1))
            best[start : start + len(block), first : first + span] = cosines.max(axis=1)
    return best


def _padded_words(
    sets: list[ClassSet], spare: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The sets' class words stacked, padded to the largest: each word's class, weight, vector.

    Padding words belong to the ``spare`` class column and weigh nothing.
    """
    size = max(len(s.words) for s in sets)
    word_class = np.full((len(sets), size), spare, np.intp)
    word_scale = np.zeros((len(sets), size), np.float32)
    words = np.zeros((len(sets), size, sets[0].words.shape[1]), np.float32)
    for j, s in enumerate(sets):
        word_class[j, : len(s.words)] = s.word_class
        word_scale[j, : len(s.words)] = s.word_scale
        words[j, : len(s.words)] = s.words
    return word_class, word_scale, words


def _padded_classes(
    sets: list[ClassSet], size: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The sets' classes stacked, padded to ``size``: scale, offset, vector.

    Padding classes have an infinite offset: they score -inf and are never ranked.
    """
    vector_scale = np.zeros((len(sets), size), np.float32)
    offset = np.full((len(sets), size), np.inf, np.float32)
    matrix = np.zeros((len(sets), size, sets[0].matrix.shape[1]), np.float32)
    for j, s in enumerate(sets):
        vector_scale[j, : len(s)] = s.vector_scale
        offset[j, : len(s)] = s.offset
        matrix[j, : len(s)] = s.matrix
    return vector_scale, offset, matrix


def _top(z: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Per row, the columns of the ``k`` highest scores, best first (ties: the earlier class)."""
    if z.shape[1] <= 1000:
        return np.argsort(-z, axis=1, kind="stable")[:, :k]
    # Selecting before sorting keeps 10,000 classes cheap.
    candidates = np.argpartition(-z, k - 1, axis=1)[:, :k]
    rows = np.arange(len(z))[:, None]
    return candidates[rows, np.lexsort((candidates, -z[rows, candidates]))]


def _evidence(encoded: Encoded, classes: ClassSet, winner: int, count: int) -> tuple[str, ...]:
    """Text words closest to the winning class's own words, weighted by their rarity."""
    start = classes.word_starts[winner]
    stop = classes.word_starts[winner + 1] if winner + 1 < len(classes) else len(classes.words)
    similarity = encoded.word_vectors @ classes.words[start:stop].T
    pull = encoded.weights * similarity.max(axis=1)
    strongest = float(pull.max())
    best: dict[str, float] = {}
    for word, value in zip(encoded.words, pull.tolist(), strict=True):
        # Words far weaker than the strongest are noise, not evidence.
        if value > 0.25 * strongest and value > best.get(word.lower(), 0.0):
            best[word.lower()] = value
    return tuple(sorted(best, key=lambda w: -best[w])[:count])
