"""Text -> vectors: frequency-weighted word vectors with the common component removed.

Plain averaging lets frequent, meaningless words ("the", "i", "feel") dominate, and every
GloVe vector shares a large common direction, so all texts look alike. We therefore

1. weight each word by ``a / (a + p(w))`` (smooth inverse frequency, Arora et al. 2017), with
   ``p(w)`` from the model's counts, or estimated from its frequency rank by Zipf's law;
2. simulate "ordinary text" with pseudo-documents drawn from the model's own word
   frequencies (no corpus needed), and subtract their mean and their first principal
   component from every text and every word: what is left is what makes a text particular;
3. normalise to unit length, so a dot product is a cosine.

The same pseudo-documents later calibrate class scores (see ``zsl.classes``).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from zsl.errors import UnknownWordsError
from zsl.text import tokenize
from zsl.vectors import WordVectors

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]

_SHOWN_UNKNOWN = 50
"""At most this many unknown words of a text are reported."""


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    """How texts become vectors. The defaults are general; nothing here is fitted to a dataset."""

    sif_a: float = 1e-3
    """SIF smoothing: a word as frequent as ``a`` gets half weight."""
    background_vocabulary: int = 50_000
    """Pseudo-documents draw from this many most frequent words."""
    background_documents: int = 4_000
    background_min_length: int = 10
    background_max_length: int = 40
    common_components: int = 1
    seed: int = 0
    expansion_words: int = 10
    """A class defined by its name alone also listens for this many of its nearest words."""
    expansion_vocabulary: int = 50_000
    """... chosen among this many most frequent words."""
    max_text_words: int = 256
    """A text contributes at most this many distinct words (the first ones): the bound on what
    one text can cost, whatever its length; ordinary messages have far fewer."""
    max_word_length: int = 60
    """Longer tokens are not looked up: no model has such words."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """A text as the classifier sees it."""

    vector: Vector
    """Unit vector of the whole text."""
    words: tuple[str, ...]
    """Distinct known words in text order (as first looked up)."""
    word_vectors: Matrix
    """One unit row per known word, in the same transformed space as ``vector``."""
    weights: npt.NDArray[np.float32]
    """Each known word's frequency weight times its occurrences in the text."""
    unknown_words: tuple[str, ...]
    raw: Matrix
    """The words' vectors as the model has them (to re-weigh or extend the bag)."""


@dataclass(frozen=True, slots=True)
class Background:
    """Pseudo-documents of ordinary text, for calibrating class scores."""

    vectors: Matrix
    """One unit row per document."""
    word_vectors: Matrix
    """Unit rows of the distinct words the documents use."""
    tokens: npt.NDArray[np.intp]
    """The documents' words, as rows of ``word_vectors``, one document after another."""
    starts: npt.NDArray[np.intp]
    """Where each document begins in ``tokens``."""

    def best_matches(self, words: Matrix) -> Matrix:
        """For every document and every given unit word vector: the best cosine in the document."""
        similarity = self.word_vectors @ words.T  # distinct words x given words
        # np.take: the same rows as similarity[self.tokens], gathered about twice as fast.
        tokens = np.take(similarity, self.tokens, axis=0)
        result: Matrix = np.maximum.reduceat(tokens, self.starts, axis=0)
        return result


class _Bag:
    """One text's distinct known words as they are found: each once, with its occurrences."""

    __slots__ = ("counts", "limit", "rows", "slots", "words")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slots: dict[int | str, int] = {}  # model row (or unseen word) -> place in the bag
        self.words: list[str] = []
        self.rows: list[int] = []
        self.counts: list[int] = []

    def add(self, key: int | str, word: str, row: int) -> int | None:
        """Count one more occurrence; returns the word's place if it is new to the bag."""
        place = self.slots.get(key)
        if place is not None:
            self.counts[place] += 1
            return None
        if len(self.words) >= self.limit:
            return None
        self.slots[key] = len(self.words)
        self.words.append(word)
        self.rows.append(row)
        self.counts.append(1)
        return len(self.words) - 1


class Encoder:
    """Turns text into vectors with one shared, read-only :class:`WordVectors` model."""

    def __init__(self, vectors: WordVectors, config: EncoderConfig | None = None) -> None:
        self.vectors = vectors
        self.config = config or EncoderConfig()
        probability = _word_probabilities(vectors)
        a = self.config.sif_a
        self._weights = (a / (a + probability)).astype(np.float32)
        self._projection = np.eye(vectors.dim, dtype=np.float32)
        self._offset = np.zeros(vectors.dim, dtype=np.float32)
        self.background = self._fit_background(probability)

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def encode(self, text: str, *, what: str = "text") -> Encoded:
        """Encode ``text``.

        Raises:
            UnknownWordsError: no word of the text is in the model (``what`` names it).
        """
        encoded = self.encode_many([text], what=what)[0]
        if isinstance(encoded, UnknownWordsError):
            raise encoded
        return encoded

    def encode_many(
        self, texts: Sequence[str], *, what: str = "text"
    ) -> list[Encoded | UnknownWordsError]:
        """Encode several texts at once; a text with no known word gets its error instead.

        One pass of array operations serves the whole batch, which is most of the saving:
        per text, the cost left is looking its words up. A word that occurs several times is
        kept once with its weight multiplied (the same average, and word matching takes the
        best match anyway), and a text contributes at most ``max_text_words`` distinct words,
        so no text can make the arrays of a batch large, whatever it repeats.
        """
        bags: list[tuple[tuple[str, ...], list[int], list[int], tuple[str, ...]]] = []
        errors: list[UnknownWordsError | None] = []  # per text: None when it has known words
        subwords: list[tuple[int, Vector]] = []  # (row in the batch, vector built by fastText)
        offset = 0
        lookup, longest = self.vectors.index, self.config.max_word_length
        for text in texts:
            bag = _Bag(self.config.max_text_words)
            unknown: dict[str, None] = {}
            for token in tokenize(text):
                # Most tokens are words of the model as they are: no need for the general path.
                row = lookup(token) if len(token) <= longest else None
                if row is not None:
                    bag.add(row, token, row)
                    continue
                for word, found in self._known_words(token, unknown):
                    if isinstance(found, int):
                        bag.add(found, word, found)
                    elif (place := bag.add(word, word, len(self.vectors) - 1)) is not None:
                        # An unseen word is rare: it takes the place (and weight) of the rarest.
                        subwords.append((offset + place, found))
            words, rows, counts = bag.words, bag.rows, bag.counts
            shown_unknown = tuple(itertools.islice(unknown, _SHOWN_UNKNOWN))
            if not words:
                errors.append(UnknownWordsError(shown_unknown, what=what))
                continue
            errors.append(None)
            bags.append((tuple(words), rows, counts, shown_unknown))
            offset += len(words)
        encoded: list[Encoded] = []
        if bags:
            index = np.fromiter(
                itertools.chain.from_iterable(rows for _, rows, _, _ in bags), np.intp, offset
            )
            counts_all = np.fromiter(
                itertools.chain.from_iterable(c for _, _, c, _ in bags), np.float32, offset
            )
            raw = self.vectors.rows(index)
            for position, vector in subwords:
                raw[position] = vector
            encoded = self._bags(
                [(words, unknown) for words, _, _, unknown in bags],
                raw,
                self._weights[index] * counts_all,
            )
        known = iter(encoded)
        return [next(known) if error is None else error for error in errors]

    def _bags(
        self,
        texts: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
        raw: Matrix,
        weights: npt.NDArray[np.float32],
    ) -> list[Encoded]:
        """Encoded texts from their words' raw vectors and weights, one text after another."""
        lengths = [len(words) for words, _ in texts]
        starts = np.cumsum([0, *lengths[:-1]], dtype=np.intp)
        weighted = np.add.reduceat(raw * weights[:, None], starts, axis=0)
        means = np.asarray(weighted / np.add.reduceat(weights, starts)[:, None], dtype=np.float32)
        vectors = _normalise_rows(self._transform_rows(means))
        word_vectors = _normalise_rows(self._transform_rows(raw))
        return [
            Encoded(
                vectors[i],
                words,
                word_vectors[start : start + length],
                weights[start : start + length],
                unknown,
                raw[start : start + length],
            )
            for i, ((words, unknown), start, length) in enumerate(
                zip(texts, starts.tolist(), lengths, strict=True)
            )
        ]

    def expand(self, encoded: Encoded, count: int) -> Encoded:
        """Add the ``count`` frequent words nearest to ``encoded`` to its bag of words.

        A class named only "sports" then also listens for "football", "league", ... The
        neighbours together weigh as much as the original words, shared by similarity.
        """
        if count <= 0:
            return encoded
        words, vectors = self._neighbour_table
        similarity = vectors @ encoded.vector
        own = {w.lower() for w in encoded.words}
        candidates = np.argpartition(-similarity, count + len(own))[: count + len(own)]
        candidates = candidates[np.argsort(-similarity[candidates], kind="stable")]
        chosen = [int(i) for i in candidates if words[i].lower() not in own][:count]
        strength = np.clip(similarity[chosen], 1e-6, None)
        added = (strength / strength.sum() * encoded.weights.sum()).astype(np.float32)
        rows = np.asarray([self.vectors.key_to_index[words[i]] for i in chosen], dtype=np.intp)
        return self._bags(
            [(encoded.words + tuple(words[i] for i in chosen), encoded.unknown_words)],
            np.vstack([encoded.raw, self.vectors.rows(rows)]),
            np.concatenate([encoded.weights, added]),
        )[0]

    @functools.cached_property
    def _neighbour_table(self) -> tuple[list[str], Matrix]:
        """Candidate neighbours: the frequent alphabetic words, as unit transformed vectors."""
        size = min(self.config.expansion_vocabulary, len(self.vectors))
        words = [""] * size
        # Vocabularies iterate in row order, so the first `size` words are the frequent ones.
        for word in itertools.islice(self.vectors.key_to_index, size):
            index = self.vectors.key_to_index[word]
            if index < size:
                words[index] = word
        keep = [i for i, w in enumerate(words) if w.isalpha()]
        rows = np.asarray(keep, dtype=np.intp)
        matrix = _normalise_rows(self._transform_rows(self.vectors.rows(rows)))
        return [words[i] for i in keep], matrix

    def _known_words(
        self, token: str, unknown: dict[str, None]
    ) -> Iterator[tuple[str, int | Vector]]:
        """The known words a token stands for, in order: each with its model row, or with a
        vector built from subwords (fastText). What cannot be known goes into ``unknown``.

        A loop over a work list, never recursion: a token may hold a thousand apostrophes.
        """
        pending: list[tuple[str, bool]] = [(token, False)]  # (word, only if known: a clitic)
        while pending:
            word, optional = pending.pop()
            too_long = len(word) > self.config.max_word_length  # no model has such words
            index = None if too_long else self.vectors.index(word)
            if index is not None:
                yield word, index
                continue
            if optional or not word:  # a model without clitics loses nothing that matters
                continue
            if "'" in word:  # split clitics as GloVe's tokenizer did: do n't, it 's
                head, _, tail = word.rpartition("'")
                stem, clitic = (
                    (head[:-1], "n't") if tail == "t" and head.endswith("n") else (head, "'" + tail)
                )
                pending += [(clitic, True), (stem, False)]  # the stem comes out first
                continue
            parts = [p for p in word.split("-") if p]
            if len(parts) > 1:  # "e-sports": the parts may be known on their own
                pending += [(part, False) for part in reversed(parts)]
                continue
            if self.vectors.subword_vector is not None and not too_long:
                row = self.vectors.subword_vector(word)  # fastText builds it from n-grams
                if np.any(row):
                    yield word, row
                    continue
            if len(unknown) < _SHOWN_UNKNOWN:
                unknown[word[: self.config.max_word_length]] = None

    def _transform_rows(self, matrix: Matrix) -> Matrix:
        # (x - mean) minus its common components, as one affine map: x @ P - mean @ P.
        return np.asarray(matrix @ self._projection - self._offset, dtype=np.float32)

    def _fit_background(self, probability: npt.NDArray[np.float64]) -> Background:
        """Draw pseudo-documents from the word frequencies; learn the mean and common direction."""
        cfg = self.config
        size = min(cfg.background_vocabulary, len(self.vectors))
        rng = np.random.default_rng(cfg.seed)
        lengths = rng.integers(
            cfg.background_min_length, cfg.background_max_length + 1, cfg.background_documents
        )
        p = probability[:size] / probability[:size].sum()
        picks = rng.choice(size, size=int(lengths.sum()), p=p)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
        distinct, tokens = np.unique(picks, return_inverse=True)
        raw = self.vectors.rows(distinct)
        weights = self._weights[distinct][tokens]
        weighted = np.add.reduceat(raw[tokens] * weights[:, None], starts, axis=0)
        documents = weighted / np.add.reduceat(weights, starts)[:, None]
        mean = documents.mean(axis=0)
        common = _principal_components(documents - mean, cfg.common_components)
        self._projection = (np.eye(self.dim) - common.T @ common).astype(np.float32)
        self._offset = (mean @ self._projection).astype(np.float32)
        return Background(
            vectors=_normalise_rows(self._transform_rows(documents.astype(np.float32))),
            word_vectors=_normalise_rows(self._transform_rows(raw)),
            tokens=tokens.astype(np.intp),
            starts=starts,
        )


def _word_probabilities(vectors: WordVectors) -> npt.NDArray[np.float64]:
    """p(w) from real counts, else Zipf's law over the frequency rank: p(r) = 1 / (r * H_n)."""
    if vectors.counts is not None:
        weights = vectors.counts
    else:
        weights = 1.0 / np.arange(1, len(vectors) + 1, dtype=np.float64)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _principal_components(matrix: npt.NDArray[np.floating], count: int) -> Matrix:
    if count <= 0:
        return np.zeros((0, matrix.shape[1]), dtype=np.float32)
    # The eigenvectors of the small d x d scatter matrix are the principal directions; this
    # is far cheaper than an SVD of the documents, and does not fight other threads for BLAS.
    values = matrix.astype(np.float64)
    _, vectors = np.linalg.eigh(values.T @ values)
    return np.asarray(vectors[:, ::-1][:, :count].T, dtype=np.float32)


def _normalise_rows(matrix: Matrix) -> Matrix:
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms[norms == 0] = 1.0
    return np.asarray(matrix / norms[:, None], dtype=np.float32)
