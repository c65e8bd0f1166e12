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

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, cast

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
_ROW_BLOCK = 1024
"""Rows transformed at a time (1 MB of temporaries at 256 dimensions)."""
_FOUND_SIZE = 1 << 15
"""At most this many tokens' rows are remembered by an encoder (a few MB)."""


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


SIMILARITY_BLOCK = 8
"""Vectors compared with a table go in as a multiple of this many columns (zeros fill the
rest), so that one vector or many always make the same kind of BLAS call: never a
matrix-vector product, never a kernel's edge tile, each of which sums in its own order. A
vector's similarities are then the same bit for bit alone or among others (see
:func:`similarities`), and a guild's classes can be embedded together."""
MATCH_COLUMNS = 32
"""Given words whose best matches are gathered at once: their similarities to the background
words (21,000 rows x 32 x 4 bytes, under 3 MB) stay in cache while every document reads them."""
MATCH_GROUP = 256
"""Given words compared with the background words in one product (about 20 MB of
similarities), so that a large batch never holds hundreds of MB at once."""
EXPAND_GROUP = 64
"""Texts compared with the neighbour table in one product (50,000 rows x 64: 13 MB)."""


def similarities(table: Matrix, vectors: Matrix) -> Matrix:
    """``table @ vectors.T``: each column the same bit for bit, whatever other vectors are given
    with it (see SIMILARITY_BLOCK)."""
    count = len(vectors)
    padded = np.zeros(
        (-(-max(count, 1) // SIMILARITY_BLOCK) * SIMILARITY_BLOCK, table.shape[1]), dtype=np.float32
    )
    padded[:count] = vectors
    product: Matrix = (table @ padded.T)[:, :count]
    return product


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
    _tokens_by_position: tuple[npt.NDArray[np.intp], ...] = field(init=False, repr=False)
    """The same words position by position, documents longest first: entry p holds the p-th
    word of every document that has one."""
    _document_order: npt.NDArray[np.intp] = field(init=False, repr=False)
    """Where each document is among the longest-first ones."""

    def __post_init__(self) -> None:
        lengths = np.diff(np.append(self.starts, len(self.tokens)))
        longest_first = np.argsort(-lengths, kind="stable")
        ordered = lengths[longest_first]
        first_words = self.starts[longest_first]
        by_position = tuple(
            self.tokens[first_words[: int(np.count_nonzero(ordered > p))] + p]
            for p in range(int(ordered[0]) if len(ordered) else 0)
        )
        object.__setattr__(self, "_tokens_by_position", by_position)
        object.__setattr__(self, "_document_order", np.argsort(longest_first).astype(np.intp))

    def best_matches(self, words: Matrix) -> Matrix:
        """For every document and every given unit word vector: the best cosine in the document.

        Each column depends on its own word only, bit for bit (see :func:`similarities`).
        """
        result = np.empty((len(self.starts), len(words)), dtype=np.float32)
        for group in range(0, len(words), MATCH_GROUP):
            similarity = similarities(self.word_vectors, words[group : group + MATCH_GROUP])
            for start in range(0, similarity.shape[1], MATCH_COLUMNS):
                block = np.ascontiguousarray(similarity[:, start : start + MATCH_COLUMNS])
                end = group + start + block.shape[1]
                result[:, group + start : end] = self._document_maxima(block)
        return result

    def _document_maxima(self, similarity: Matrix) -> Matrix:
        """Each document's maximum of each column of ``similarity`` (one row per background
        word). Position by position, with every document at once: a few dozen calls over
        contiguous rows, instead of a reduction per document and column (np.maximum.reduceat
        over the 100,000 tokens: 51 ms for 32 columns, against 0.9 ms here, side by side)."""
        if not self._tokens_by_position:
            return np.zeros((0, similarity.shape[1]), dtype=np.float32)
        best = np.take(similarity, self._tokens_by_position[0], axis=0)
        for rows in self._tokens_by_position[1:]:
            head = best[: len(rows)]
            np.maximum(head, np.take(similarity, rows, axis=0), out=head)
        maxima: Matrix = np.take(best, self._document_order, axis=0)
        return maxima


class Encoder:
    """Turns text into vectors with one shared, read-only :class:`WordVectors` model."""

    def __init__(self, vectors: WordVectors, config: EncoderConfig | None = None) -> None:
        self.vectors = vectors
        self.config = config or EncoderConfig()
        probability = _word_probabilities(vectors)
        self._weights = _sif_weights(probability, self.config.sif_a)
        self._common = np.zeros((0, vectors.dim), dtype=np.float32)
        self._offset = np.zeros(vectors.dim, dtype=np.float32)
        self._found: dict[str, int] = {}
        """Tokens met before that are words of the model as they are, with their rows: most
        tokens are, and one dictionary read each (for a whole text at once) is all they cost."""
        folder = (
            None
            if vectors.tables_dir is None
            else vectors.tables_dir / f"encoder-v{_TABLES_VERSION}-{_digest(self.config)}"
        )
        kept = None if folder is None else _read_tables(folder, vectors.dim)
        if kept is None:
            self.background = self._fit_background(probability)
            if folder is not None:
                _write_tables(folder, self._tables())
        else:
            self._common, self._offset = kept.common, kept.offset
            self.background = Background(
                kept.documents, kept.word_vectors, kept.tokens, kept.starts
            )

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def _tables(self) -> _Tables:
        """What the background fit computes."""
        background = self.background
        return _Tables(
            self._common,
            self._offset,
            background.vectors,
            background.word_vectors,
            background.tokens,
            background.starts,
        )

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
        keys: list[int] = []  # every text's known words in order: model rows (see _keys)
        words: list[str] = []  # the word each key was found as
        lengths: list[int] = []  # how many keys each text has
        unknowns: list[tuple[str, ...]] = []
        built: dict[str, tuple[int, Vector]] = {}  # words built from subwords (see _keys)
        found = self._found.get
        for text in texts:
            tokens = tokenize(text)
            remembered = list(map(found, tokens))
            if None in remembered:  # a token not met before, or not a word of the model as is
                unknown: dict[str, None] = {}
                rows, tokens = self._keys(tokens, remembered, unknown, built)
                unknowns.append(tuple(itertools.islice(unknown, _SHOWN_UNKNOWN)))
            else:
                rows = cast("list[int]", remembered)
                unknowns.append(())
            keys += rows
            words += tokens
            lengths.append(len(rows))
        place, counts, distinct = self._distinct(keys, lengths, len(self.vectors) + len(built))
        bags = [i for i, count in enumerate(distinct) if count]
        encoded: list[Encoded] = []
        if bags:
            distinct_keys = np.asarray(keys, dtype=np.intp)[place]
            # A word built from subwords is rare: it takes the place (and weight) of the rarest.
            index = np.minimum(distinct_keys, len(self.vectors) - 1)
            raw = self.vectors.rows(index)
            for position in np.flatnonzero(distinct_keys >= len(self.vectors)).tolist():
                raw[position] = built[words[place[position]]][1]
            kept = [words[i] for i in place.tolist()]
            ends = itertools.accumulate(distinct[i] for i in bags)
            encoded = self._bags(
                [
                    (tuple(kept[end - distinct[i] : end]), unknowns[i])
                    for i, end in zip(bags, ends, strict=True)
                ],
                raw,
                self._weights[index] * counts.astype(np.float32),
            )
        known = iter(encoded)
        return [
            next(known) if count else UnknownWordsError(unknown, what=what)
            for count, unknown in zip(distinct, unknowns, strict=True)
        ]

    def _keys(
        self,
        tokens: list[str],
        rows: list[int | None],
        unknown: dict[str, None],
        built: dict[str, tuple[int, Vector]],
    ) -> tuple[list[int], list[str]]:
        """A text's known words and their keys, where ``rows`` (the remembered rows of
        ``tokens``) has gaps: the word's model row, or for a word built from subwords (fastText),
        a number past the model's rows, one per distinct such word of the batch, its vector
        kept in ``built``. What cannot be known goes into ``unknown``."""
        keys: list[int] = []
        words: list[str] = []
        longest = self.config.max_word_length
        for token, row in zip(tokens, rows, strict=True):
            if row is None and len(token) <= longest:
                row = self.vectors.index(token)
                if row is not None:
                    if len(self._found) >= _FOUND_SIZE:  # at worst a token is looked up twice
                        self._found.clear()
                    self._found[token] = row
            if row is not None:
                keys.append(row)
                words.append(token)
                continue
            for word, known in self._known_words(token, unknown):
                if not isinstance(known, int):
                    known = built.setdefault(word, (len(self.vectors) + len(built), known))[0]
                keys.append(known)
                words.append(word)
        return keys, words

    def _distinct(
        self, keys: list[int], lengths: list[int], span: int
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], list[int]]:
        """Each text's distinct keys, as ``keys`` holds the texts one after another: where each
        first occurs, how often it occurs in its text, and how many each text keeps (at most
        ``max_text_words``, the first ones). Array operations for the whole batch: a stable
        sort groups each text's occurrences of a key, its first occurrence first."""
        if not keys:  # not one known word in the batch
            nothing = np.zeros(0, dtype=np.intp)
            return nothing, nothing, [0] * len(lengths)
        # ndarray methods rather than numpy's functions: one text's batch costs a few calls.
        text_of = np.arange(len(lengths), dtype=np.intp).repeat(lengths)
        combined = text_of * span + np.array(keys, dtype=np.intp)
        order = combined.argsort(kind="stable")
        ordered = combined[order]
        new = np.empty(len(ordered), dtype=bool)
        new[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        runs = new.nonzero()[0]
        occurrences = np.zeros(len(ordered), dtype=np.intp)
        occurrences[order[runs]] = np.concatenate((runs[1:], [len(ordered)])) - runs
        place = occurrences.nonzero()[0]  # first occurrences, in text order
        distinct = np.bincount(text_of[place], minlength=len(lengths))
        limit = self.config.max_text_words
        if max(lengths, default=0) > limit:
            # Each first occurrence's rank among its text's distinct words.
            rank = np.arange(len(place)) - (distinct.cumsum() - distinct).repeat(distinct)
            place = place[rank < limit]
            distinct = np.minimum(distinct, limit)
        return place, occurrences[place], distinct.tolist()

    def _bags(
        self,
        texts: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
        raw: Matrix,
        weights: npt.NDArray[np.float32],
    ) -> list[Encoded]:
        """Encoded texts from their words' raw vectors and weights, one text after another."""
        lengths = [len(words) for words, _ in texts]
        starts = np.cumsum([0, *lengths[:-1]], dtype=np.intp)
        weighted = _reduceat_rows(raw * weights[:, None], starts, np.asarray(lengths, np.intp))
        means = np.asarray(weighted / np.add.reduceat(weights, starts)[:, None], dtype=np.float32)
        # The texts and their words in one pass: each row's arithmetic is its own.
        transformed = _normalise_rows(self._transform_rows(np.concatenate([means, raw])))
        vectors, word_vectors = transformed[: len(texts)], transformed[len(texts) :]
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

    def expand(self, texts: Sequence[Encoded], count: int) -> list[Encoded]:
        """Add to each text's bag of words the ``count`` frequent words nearest to it.

        A class named only "sports" then also listens for "football", "league", ... The
        neighbours together weigh as much as the original words, shared by similarity. The
        neighbour table (50,000 rows) is read once for many texts, and a text's neighbours do
        not depend on the texts expanded with it (see :func:`similarities`).
        """
        if count <= 0 or not texts:  # the table (50 MB) is made on first use: only if needed
            return list(texts)
        words, table = self._neighbour_table
        expanded: list[Encoded] = []
        for group in range(0, len(texts), EXPAND_GROUP):
            batch = texts[group : group + EXPAND_GROUP]
            # One contiguous row per text: selecting from a strided column is several times
            # slower.
            similarity = np.ascontiguousarray(
                similarities(table, np.array([text.vector for text in batch])).T
            )
            for text, row in zip(batch, similarity, strict=True):
                expanded.append(self._expanded(text, words, row, count))
        return expanded

    def _expanded(
        self, encoded: Encoded, words: list[str], similarity: Vector, count: int
    ) -> Encoded:
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
        """Each row minus the mean of ordinary text and its common components.

        The components are a few orthonormal rows c, so x - (x . c) c for each, not a product
        with a d x d matrix: d times less work (a 256-dimension table's 21,000 background words
        took 68 ms), and each row's dot products are its own sums, the same bit for bit
        whatever rows come with it (a matrix product may sum a batch's rows in another order).
        """
        result = self._without_common(matrix)
        result -= self._offset
        return result

    def _without_common(self, matrix: Matrix) -> Matrix:
        """A new array: ``matrix`` minus its projection on each common component in turn.

        Worked out a block of rows at a time: a block's temporaries stay in the cache and
        their memory is reused, where whole-table temporaries (21 MB each for the background's
        documents) cost a fresh process more in page faults than in arithmetic (the encoder's
        first start 0.23 s against 0.11 s for a second one). Each row's numbers are its own,
        so the blocks change no bit.
        """
        result = np.array(matrix, dtype=np.float32)
        for first in range(0, len(result), _ROW_BLOCK):
            rows = matrix[first : first + _ROW_BLOCK]
            block = result[first : first + _ROW_BLOCK]
            for component in self._common:
                block -= np.einsum("ij,j->i", rows, component)[:, None] * component
        return result

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
        weighted = _weighted_sums(raw, tokens, weights, starts, lengths)
        documents = weighted / np.add.reduceat(weights, starts)[:, None]
        mean = documents.mean(axis=0)
        self._common = _principal_components(documents - mean, cfg.common_components)
        self._offset = self._without_common(mean.astype(np.float32)[None, :])[0]
        return Background(
            vectors=_normalise_rows(self._transform_rows(documents.astype(np.float32))),
            word_vectors=_normalise_rows(self._transform_rows(raw)),
            tokens=tokens.astype(np.intp),
            starts=starts,
        )


_TABLES_VERSION = 1
"""Bump when the encoder's tables change meaning, so kept ones are computed again."""


def _digest(config: EncoderConfig) -> str:
    """Names kept tables after every setting, so another configuration gets its own."""
    return hashlib.sha256(repr(config).encode()).hexdigest()[:16]


class _Tables(NamedTuple):
    """What an encoder computes from its model and settings alone, kept between processes."""

    common: Matrix
    offset: Vector
    documents: Matrix
    word_vectors: Matrix
    tokens: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]


def _read_tables(folder: Path, dim: int) -> _Tables | None:
    """The tables kept in ``folder``, memory-mapped (shared with every process that maps
    them), or None when they are not all there and consistent: then they are computed again."""
    try:
        tables = _Tables(
            *(
                np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                for name in _Tables._fields
            )
        )
    except (OSError, ValueError, EOFError):
        return None
    common, offset, documents, words, tokens, starts = tables
    consistent = (
        all(t.dtype == np.float32 for t in (common, offset, documents, words))
        and tokens.dtype == starts.dtype == np.intp
        and common.ndim == documents.ndim == words.ndim == 2
        and common.shape[1] == offset.shape[0] == documents.shape[1] == words.shape[1] == dim
        and offset.ndim == tokens.ndim == starts.ndim == 1
        and len(starts) == len(documents)
        and (len(tokens) == 0 or 0 <= int(tokens.min()) <= int(tokens.max()) < len(words))
        and (len(starts) == 0 or (starts[0] == 0 and bool(np.all(np.diff(starts) > 0))))
        and (len(starts) == 0 or int(starts[-1]) < len(tokens))
    )
    if not consistent:
        log.warning("the encoder's tables in %s are not consistent; computing them again", folder)
        return None
    return tables


def _write_tables(folder: Path, tables: _Tables) -> None:
    """Keep the tables for the next process. Each file is written aside, then renamed into
    place: a reader sees a whole file or none, and two processes writing at once write the same
    bits. A folder that cannot be written only costs the next process the computation."""
    aside = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in tables._asdict().items():
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as fh:
                aside = fh.name
                np.save(fh, table, allow_pickle=False)
            os.chmod(aside, 0o644)  # other users' processes may map them too (a shared cache)
            os.replace(aside, folder / f"{name}.npy")
            aside = None
    except OSError as exc:
        log.info("the encoder's tables cannot be kept in %s (%s)", folder, exc.strerror)
        if aside is not None:  # a full disk, say: leave no part of a file behind
            with contextlib.suppress(OSError):
                os.unlink(aside)


def _weighted_sums(
    raw: Matrix,
    tokens: npt.NDArray[np.intp],
    weights: npt.NDArray[np.float32],
    starts: npt.NDArray[np.intp],
    lengths: npt.NDArray[np.integer],
) -> Matrix:
    """Each document's sum of ``raw[token] * weight`` over its tokens, added first to last (as
    ``np.add.reduce`` adds them), a position at a time for all documents: ``np.add.reduceat``
    over every token's row took 170 ms of the encoder's 300 ms start with 256 dimensions, and
    held every token's row at once (100 MB)."""
    sums = raw[tokens[starts]] * weights[starts, None]
    for position in range(1, int(lengths.max(initial=0))):
        longer = np.flatnonzero(lengths > position)
        at = starts[longer] + position
        sums[longer] += raw[tokens[at]] * weights[at, None]
    return sums


FEW_SEGMENTS = 8
"""With fewer segments than this to add up position by position (a text or two), numpy's own
calls cost less than laying the segments out (see ``_by_position``)."""


def segment_sums(
    values: npt.NDArray[np.float32], starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """``values[start : start + length].sum()`` for each segment of a 1-D array (the segments
    one after another, covering it), bit for bit, with a few calls for all of them instead of
    one per segment: how a class's weights are summed, alone or among a batch's. numpy adds
    fewer than 8 numbers one after another from -0.0 (see ``_by_position``), then adds that to
    0.0; longer segments are summed by numpy, each."""
    short = lengths < 8
    if np.count_nonzero(short) < FEW_SEGMENTS:
        ends = (starts + lengths).tolist()
        return np.array(
            [values[start:end].sum() for start, end in zip(starts.tolist(), ends, strict=True)],
            dtype=np.float32,
        )
    width = min(7, int(lengths.max()))
    by_position = _by_position(values, starts, lengths, width)
    total = np.full(len(starts), -0.0, dtype=np.float32)
    for position in range(width):
        total += by_position[position]
    sums: npt.NDArray[np.float32] = np.float32(0.0) + total
    for i in np.flatnonzero(~short).tolist():
        sums[i] = values[starts[i] : starts[i] + lengths[i]].sum()
    return sums


def _reduceat_rows(
    values: Matrix, starts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]
) -> Matrix:
    """``np.add.reduceat(values, starts, axis=0)`` for segments one after another covering
    ``values``, bit for bit. reduceat takes a segment's first row and adds numpy's sum of the
    others, column by column: one call of its loop per segment and column (42 us for 20 texts
    of 4 words and 256 dimensions). Up to 8 rows, that sum adds the others one after another
    from -0.0, so it is done here position by position for all such segments at once (16 us;
    0.4 ms instead of 2.2 for 1,000 texts); longer ones go through reduceat together."""
    short = lengths <= 8
    if np.count_nonzero(short) < FEW_SEGMENTS:
        summed: Matrix = np.add.reduceat(values, starts, axis=0)
        return summed
    width = min(8, int(lengths.max()))
    by_position = _by_position(values, starts, lengths, width)
    others = np.full((len(starts), *values.shape[1:]), -0.0, dtype=np.float32)
    for position in range(1, width):
        others += by_position[position]
    sums: Matrix = by_position[0] + others
    if not short.all():  # each segment is reduced on its own: the long ones, side by side
        long = lengths[~short]
        sums[~short] = np.add.reduceat(
            values[np.repeat(~short, lengths)], np.cumsum(long) - long, axis=0
        )
    return sums


def _by_position(
    values: npt.NDArray[np.float32],
    starts: npt.NDArray[np.intp],
    lengths: npt.NDArray[np.intp],
    width: int,
) -> npt.NDArray[np.float32]:
    """The first ``width`` rows of every segment, position by position (width x segments x
    ...), -0.0 where a segment is shorter: the one number whose addition changes nothing, not
    even a zero's sign, so that every segment can be added up position by position the way
    numpy adds up fewer than 8 numbers (numpy/_core/src/umath/loops_utils.h.src, pairwise_sum:
    one after another from -0.0). tests/zsl/test_batch_encoding.py checks the sums against
    numpy's own."""
    segment = np.repeat(np.arange(len(starts), dtype=np.intp), lengths)
    position = np.arange(len(values), dtype=np.intp) - np.repeat(starts, lengths)
    result = np.full((width, len(starts), *values.shape[1:]), -0.0, dtype=np.float32)
    if int(lengths.max(initial=0)) <= width:
        result[position, segment] = values
    else:
        within = position < width
        result[position[within], segment[within]] = values[within]
    return result


def frequency_weights(vectors: WordVectors, sif_a: float) -> npt.NDArray[np.float32]:
    """Each row's smooth inverse frequency weight, ``a / (a + p(w))``: what a word weighs in a
    text's average (``zsl distill`` refines a table with the same weights)."""
    return _sif_weights(_word_probabilities(vectors), sif_a)


def _sif_weights(probability: npt.NDArray[np.float64], sif_a: float) -> npt.NDArray[np.float32]:
    return (sif_a / (sif_a + probability)).astype(np.float32)


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
