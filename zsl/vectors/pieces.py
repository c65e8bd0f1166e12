"""Vectors for words a table does not hold, built from its WordPiece pieces (as model2vec does).

A distilled table keeps, besides its words, the continuation pieces of its teacher's WordPiece
vocabulary (``##zone``, ``##mon``), each encoded once by the teacher. A word the table lacks is
split the way the teacher's tokenizer would split it (lower case, accents stripped, longest
known piece first) and gets the mean of its pieces' vectors: "timezone" is "time" + "##zone".
A word that falls apart into letters ("qwzxv" is q + ##w + ##z + ##x + ##v) is noise, not a
word: when more than half of its pieces are single characters it stays unknown, as does a word
with a character no piece covers (an emoji, a rare script).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

MAX_PIECE_CHARS = 24
"""Longer pieces are not tried: WordPiece vocabularies hold none, and the bound keeps a hostile
word's cost at a few dozen dictionary lookups per character."""


def normalise(word: str) -> str:
    """The word as an uncased WordPiece tokenizer sees it: lower case, accents stripped."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def split(
    word: str, words: Mapping[str, int], continuations: Mapping[str, int]
) -> list[tuple[int, int]] | None:
    """``word``'s pieces as (row, length), longest match first; ``None`` if a part has none.

    ``words`` answers for a word's first piece, ``continuations`` (without the ``##``) for
    the rest. At most :data:`MAX_PIECE_CHARS` lookups per piece; a loop, never recursion.
    """
    pieces: list[tuple[int, int]] = []
    start = 0
    while start < len(word):
        table = words if start == 0 else continuations
        for end in range(min(len(word), start + MAX_PIECE_CHARS), start, -1):
            row = table.get(word[start:end])
            if row is not None:
                pieces.append((row, end - start))
                start = end
                break
        else:
            return None
    return pieces


def piece_rows(
    word: str, words: Mapping[str, int], continuations: Mapping[str, int]
) -> list[int] | None:
    """The rows of ``word``'s pieces, as the teacher's tokenizer splits it; ``None`` when it is
    not a word (a part no piece covers, or more than half single characters)."""
    pieces = split(normalise(word), words, continuations)
    if not pieces or 2 * sum(length == 1 for _, length in pieces) > len(pieces):
        return None
    return [row for row, _ in pieces]


def wordpiece_vector(
    rows: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float32]],
    words: Mapping[str, int],
    continuations: Mapping[str, int],
    word: str,
) -> npt.NDArray[np.float32]:
    """The mean of ``word``'s pieces' vectors, read-only; empty when it is not a word."""
    pieces = piece_rows(word, words, continuations)
    if pieces is None:
        return np.zeros(0, dtype=np.float32)
    index = np.asarray(pieces, dtype=np.intp)
    vector = np.asarray(rows(index).mean(axis=0), dtype=np.float32)
    vector.flags.writeable = False  # callers may share it (it is remembered)
    return vector
