"""Text -> unit vector: frequency-weighted word vectors with the common component removed.

Plain averaging lets frequent, meaningless words ("the", "i", "feel") dominate, and every
GloVe vector shares a large common direction, so all texts look alike. We therefore

1. weight each word by ``a / (a + p(w))`` (smooth inverse frequency, Arora et al. 2017), with
   ``p(w)`` from the model's counts, or estimated from its frequency rank by Zipf's law;
2. remove the common direction: the first principal component of "ordinary text", which we
   simulate with pseudo-documents drawn from the model's own word frequencies (no corpus);
3. normalise to unit length, so a dot product is a cosine.

The same background pseudo-documents later calibrate class scores (see ``zsl.classes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from zsl.errors import UnknownWordsError
from zsl.text import tokenize
from zsl.vectors import WordVectors

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """How texts become vectors. The defaults are general; nothing here is fitted to a dataset."""

    sif_a: float = 1e-3
    """SIF smoothing: a word as frequent as ``a`` gets half weight."""
    background_vocabulary: int = 50_000
    """Pseudo-documents draw from this many most frequent words."""
    background_documents: int = 2_000
    background_length: int = 20
    common_components: int = 1
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Encoded:
    """A text as the classifier sees it."""

    vector: npt.NDArray[np.float32]
    """Unit vector of the whole text."""
    words: tuple[str, ...]
    """Known words in text order (as they were looked up)."""
    word_vectors: Matrix
    """One unit row per known word, common component removed."""
    weights: npt.NDArray[np.float32]
    """Frequency weight of each known word."""
    unknown_words: tuple[str, ...]


class Encoder:
    """Turns text into vectors with one shared, read-only :class:`WordVectors` model."""

    def __init__(self, vectors: WordVectors, config: EncoderConfig | None = None) -> None:
        self.vectors = vectors
        self.config = config or EncoderConfig()
        self._probability = _word_probabilities(vectors)
        self._common = np.zeros((0, vectors.dim), dtype=np.float32)
        self.background = self._background_documents()
        self._common = _principal_components(self.background, self.config.common_components)
        self.background = _normalise_rows(self._remove_common(self.background))

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def encode(self, text: str, *, what: str = "text") -> Encoded:
        """Encode ``text``.

        Raises:
            UnknownWordsError: no word of the text is in the model (``what`` names it).
        """
        words: list[str] = []
        rows: list[npt.NDArray[np.float32]] = []
        weights: list[float] = []
        unknown: list[str] = []
        for token in tokenize(text):
            for word, row, weight in self._lookup(token):
                if row is None:
                    unknown.append(word)
                else:
                    words.append(word)
                    rows.append(row)
                    weights.append(weight)
        if not rows:
            raise UnknownWordsError(unknown, what=what)
        word_vectors = _normalise_rows(self._remove_common(np.vstack(rows)))
        weight_array = np.asarray(weights, dtype=np.float32)
        vector = _normalise(weight_array @ word_vectors)
        return Encoded(vector, tuple(words), word_vectors, weight_array, tuple(unknown))

    def _lookup(self, token: str) -> list[tuple[str, npt.NDArray[np.float32] | None, float]]:
        index = self.vectors.index(token)
        if index is not None:
            return [(token, self._unit_row(index), self._weight(index))]
        parts = [p for p in token.replace("'", "-").split("-") if p]
        if len(parts) > 1:  # "e-sports", "don't": the parts may be known on their own
            return [found for part in parts for found in self._lookup(part)]
        if self.vectors.subword_vector is not None:  # fastText builds unknown words from n-grams
            row = self.vectors.subword_vector(token)
            if np.any(row):
                # An unseen word is rare: give it the weight of the rarest known word.
                return [(token, _normalise(row), self._weight(len(self.vectors) - 1))]
        return [(token, None, 0.0)]

    def _unit_row(self, index: int) -> npt.NDArray[np.float32]:
        return _normalise(np.asarray(self.vectors.vectors[index], dtype=np.float32))

    def _weight(self, index: int) -> float:
        a = self.config.sif_a
        return float(a / (a + self._probability[index]))

    def _remove_common(self, matrix: Matrix) -> Matrix:
        if not len(self._common):
            return matrix
        return (matrix - (matrix @ self._common.T) @ self._common).astype(np.float32)

    def _background_documents(self) -> Matrix:
        """SIF vectors of pseudo-documents sampled from the model's word frequencies."""
        cfg = self.config
        size = min(cfg.background_vocabulary, len(self.vectors))
        p = self._probability[:size] / self._probability[:size].sum()
        rng = np.random.default_rng(cfg.seed)
        picks = rng.choice(size, size=(cfg.background_documents, cfg.background_length), p=p)
        units = _normalise_rows(np.asarray(self.vectors.vectors[:size], dtype=np.float32))
        weights = (cfg.sif_a / (cfg.sif_a + self._probability[:size])).astype(np.float32)
        docs: Matrix = np.einsum("dl,dlk->dk", weights[picks], units[picks]).astype(np.float32)
        return docs


def _word_probabilities(vectors: WordVectors) -> npt.NDArray[np.float64]:
    """p(w) from real counts, else Zipf's law over the frequency rank: p(r) = 1 / (r * H_n)."""
    if vectors.counts is not None:
        weights = vectors.counts
    else:
        weights = 1.0 / np.arange(1, len(vectors) + 1, dtype=np.float64)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _principal_components(matrix: Matrix, count: int) -> Matrix:
    if count <= 0:
        return np.zeros((0, matrix.shape[1]), dtype=np.float32)
    # Uncentred, as in SIF: the shared direction is the mean itself, and it is what we remove.
    _, _, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    return vt[:count].astype(np.float32)


def _normalise(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


def _normalise_rows(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(matrix / norms, dtype=np.float32)
