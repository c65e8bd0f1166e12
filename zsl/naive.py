"""The baseline every change is measured against: plain averaging of raw word vectors.

Lowercase word tokens, the mean of the raw vectors of the known words for the text and for
the class text, highest cosine wins. Used only by ``zsl eval`` and ``zsl bench``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from zsl.vectors import WordVectors

_TOKEN = re.compile(r"[a-z0-9]+")


class NaiveClassifier:
    """Average raw vectors; highest cosine wins. A text with no known word gets no answer."""

    def __init__(self, vectors: WordVectors, class_texts: Sequence[str]) -> None:
        self.vectors = vectors
        rows = [self.embed(text) for text in class_texts]
        dim = vectors.dim
        self.matrix = np.array(
            [row if row is not None else np.zeros(dim, np.float32) for row in rows],
            dtype=np.float32,
        )

    def embed(self, text: str) -> npt.NDArray[np.float32] | None:
        rows = [
            i
            for w in _TOKEN.findall(text.lower())
            if (i := self.vectors.key_to_index.get(w)) is not None
        ]
        if not rows:
            return None
        mean = self.vectors.rows(np.asarray(rows, dtype=np.intp)).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm else None

    def predict(self, text: str) -> int | None:
        """Index of the best class, or None when the text has no known word."""
        vector = self.embed(text)
        return None if vector is None else int(np.argmax(self.matrix @ vector))
