"""Class definitions (validated input) and ClassSet, the immutable per-guild snapshot."""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
import unicodedata
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from zsl.embedding import Background, Encoded, Encoder, Matrix, segment_sums, similarities
from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    InvalidClassError,
    UnknownWordsError,
)
from zsl.records import ClassDefinition, check_not_look_alike, name_key, strip_invisible

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every size limit of the registry, each a setting (see ``bot.settings``)."""

    name_length: int = 50
    description_length: int = 300
    text_length: int = 2000
    classes_per_guild: int = 100
    examples_per_class: int = 20
    votes_per_guild: int = 500

    @classmethod
    def unlimited(cls) -> Limits:
        """Limits for evaluation and benchmarks: outside data sets may have more classes, or
        longer definitions, than a chat server should allow."""
        return cls(
            name_length=10_000,
            description_length=100_000,
            text_length=1_000_000,
            classes_per_guild=100_000,
            examples_per_class=1_000,
        )


def _clean(value: str, field_name: str) -> str:
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise InvalidClassError(f"The {field_name} contains broken characters. Type it again.")
    # Invisible characters (zero-width spaces, direction marks, variation selectors, Hangul
    # fillers) would make two names that look the same differ; they carry no meaning, so they
    # go, and blank-looking ones count as spaces.
    value = strip_invisible(value)
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cf")


def validate_class(name: str, description: str, limits: Limits) -> ClassDefinition:
    """Check a class definition against the rules and return it cleaned.

    Raises:
        InvalidClassError: a rule is broken; the message says which and how to fix it.
    """
    name = _clean(name, "class name")
    description = _clean(description or "", "description")
    if any(ch in name for ch in "\r\n\u2028\u2029"):
        raise InvalidClassError("A class name must fit on one line. Remove the line breaks.")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidClassError("A class name cannot contain control characters. Remove them.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in description):
        raise InvalidClassError("The description cannot contain control characters. Remove them.")
    name = " ".join(name.split())
    description = " ".join(description.split())
    if not name:
        raise InvalidClassError("A class needs a name. Give it one, e.g. 'sports'.")
    if not name_key(name):  # only private-use or unassigned characters: nothing to tell apart
        raise InvalidClassError(
            "A class name needs at least one visible letter, digit or symbol. Pick another name."
        )
    if len(name) > limits.name_length:
        raise InvalidClassError(
            f"A class name can have at most {limits.name_length} characters; this one has "
            f"{len(name)}. Shorten it and put the details in the description."
        )
    if len(description) > limits.description_length:
        raise InvalidClassError(
            f"A description can have at most {limits.description_length} characters; this one "
            f"has {len(description)}. Keep the few words that matter most."
        )
    return ClassDefinition(name=name, description=description)


@dataclass(frozen=True, slots=True)
class Calibration:
    """How a score behaves on ordinary text: its mean and standard deviation there."""

    mean: float
    std: float

    @classmethod
    def of(cls, scores: npt.NDArray[np.float32]) -> Calibration:
        return cls(float(scores.mean()), float(max(scores.std(), 1e-6)))


@dataclass(frozen=True, slots=True)
class ClassVector:
    """A class as the classifier sees it.

    Two views of the class: its whole vector (what the class is about) and its words (which
    exact words should appear). Each score is calibrated against ordinary text: a "central"
    class that scores high on everything is judged against its own baseline.
    """

    definition: ClassDefinition
    vector: npt.NDArray[np.float32]
    word_vectors: Matrix
    word_weights: npt.NDArray[np.float32]
    vector_calibration: Calibration
    words_calibration: Calibration
    combined_std: float
    """Standard deviation on ordinary text of the two z-scores' mix (its mean is 0)."""
    vector_share: float
    """The averaged vector's z-score's share of the mix; word matching's is the rest."""
    unknown_words: tuple[str, ...] = ()
    related_words: tuple[str, ...] = ()
    """Words added to a class defined by its name alone (its nearest words in the model)."""


# ClassVector(...) sets each field through object.__setattr__ by name, the way a frozen
# dataclass initialises; the slots' own setters take half the time, and a rebuild makes two
# ClassVectors a class (embedded, then holding views of its set's arrays). Every field is set
# (tests/zsl/test_classset_build.py).
(
    _set_definition,
    _set_vector,
    _set_word_vectors,
    _set_word_weights,
    _set_vector_calibration,
    _set_words_calibration,
    _set_combined_std,
    _set_vector_share,
    _set_unknown_words,
    _set_related_words,
) = (
    getattr(ClassVector, name).__set__
    for name in (
        "definition",
        "vector",
        "word_vectors",
        "word_weights",
        "vector_calibration",
        "words_calibration",
        "combined_std",
        "vector_share",
        "unknown_words",
        "related_words",
    )
)


def _class_vector(
    definition: ClassDefinition,
    vector: npt.NDArray[np.float32],
    word_vectors: Matrix,
    word_weights: npt.NDArray[np.float32],
    vector_calibration: Calibration,
    words_calibration: Calibration,
    combined_std: float,
    vector_share: float,
    unknown_words: tuple[str, ...],
    related_words: tuple[str, ...],
) -> ClassVector:
    """``ClassVector(...)``, every field given, at half the cost."""
    made = object.__new__(ClassVector)
    _set_definition(made, definition)
    _set_vector(made, vector)
    _set_word_vectors(made, word_vectors)
    _set_word_weights(made, word_weights)
    _set_vector_calibration(made, vector_calibration)
    _set_words_calibration(made, words_calibration)
    _set_combined_std(made, combined_std)
    _set_vector_share(made, vector_share)
    _set_unknown_words(made, unknown_words)
    _set_related_words(made, related_words)
    return made


@dataclass(frozen=True, slots=True)
class ClassCalibration:
    """A class's scores on ordinary text, six numbers: the costly part of embedding a class
    (each of its words against every background document), and all that a rebuild needs kept."""

    vector: Calibration
    words: Calibration
    combined_std: float
    vector_share: float
    """The averaged vector's share of the class's score (the model's ``vector_share``; word
    matching has the rest): ``combined_std`` is the spread of that mix."""


def embed_class(
    encoder: Encoder, definition: ClassDefinition, calibrations: CalibrationCache | None = None
) -> ClassVector:
    """Turn a definition (its name and description read as one text) into a class vector:
    :func:`embed_classes` with one class.

    Raises:
        UnknownWordsError: neither the name nor the description has a known word.
    """
    embedded = embed_classes(encoder, [definition], calibrations)[0]
    if isinstance(embedded, UnknownWordsError):
        raise embedded
    return embedded


def embed_classes(
    encoder: Encoder,
    definitions: Sequence[ClassDefinition],
    calibrations: CalibrationCache | None = None,
) -> list[ClassVector | UnknownWordsError]:
    """Turn definitions into class vectors, together; a definition with no known word gets
    its error instead.

    The costly passes, over the neighbour table (a bare name's nearest words) and over the
    ordinary-text background (calibration), read tables of 20-50 MB: made once for all the
    classes instead of once per class, a guild of 20 costs a fourth to a fifth of what it did.
    A class comes out the same bit for bit whatever classes are embedded with it (see
    ``zsl.embedding.similarities``).

    With ``calibrations``, a class calibrated before (same definition, same model) takes its
    calibration from there instead of computing it again: the same numbers, so the same class.
    """
    shaped = _uncalibrated(encoder, definitions)
    usable = [c for c in shaped if isinstance(c, _Uncalibrated)]
    kept = (
        [None] * len(usable)
        if calibrations is None
        else calibrations.get_many([c.definition for c in usable])
    )
    # Only the classes to calibrate are told apart by definition (the same class in two
    # guilds is calibrated once); a rebuild finds them all kept.
    fresh = {c.definition: c for c, found in zip(usable, kept, strict=True) if found is None}
    share = encoder.vectors.vector_share
    computed = dict(
        zip(fresh, _calibrate(encoder.background, list(fresh.values()), share), strict=True)
    )
    if calibrations is not None:
        for definition, calibration in computed.items():
            calibrations.put(definition, calibration)
    embedded = iter(
        [
            cls.calibrated(computed[cls.definition] if found is None else found)
            for cls, found in zip(usable, kept, strict=True)
        ]
    )
    return [c if isinstance(c, UnknownWordsError) else next(embedded) for c in shaped]


class _Uncalibrated(NamedTuple):
    """A class vector but for its calibration (the part computed for many classes at once).
    A named tuple: made for every class of every rebuild, at a third of a dataclass's cost."""

    definition: ClassDefinition
    vector: npt.NDArray[np.float32]
    word_vectors: Matrix
    word_weights: npt.NDArray[np.float32]
    unknown_words: tuple[str, ...]
    related_words: tuple[str, ...]

    def calibrated(self, calibration: ClassCalibration) -> ClassVector:
        return _class_vector(
            self.definition,
            self.vector,
            self.word_vectors,
            self.word_weights,
            calibration.vector,
            calibration.words,
            calibration.combined_std,
            calibration.vector_share,
            self.unknown_words,
            self.related_words,
        )


def _uncalibrated(
    encoder: Encoder, definitions: Sequence[ClassDefinition]
) -> list[_Uncalibrated | UnknownWordsError]:
    """Each definition (its name and description read as one text) as a class vector but for
    its calibration, or the error of a definition with no known word."""
    # Together: a text encodes the same bit for bit alone or in a batch.
    texts = encoder.encode_many(
        [f"{definition.name}\n{definition.description}" for definition in definitions],
        what="class",
    )
    # A bare name ("sports") is a thin definition; its nearest words fill it out. A
    # description is the admin's own expansion and is used as it is.
    bare = {
        i: text
        for i, (definition, text) in enumerate(zip(definitions, texts, strict=True))
        if isinstance(text, Encoded) and not definition.description
    }
    expanded = dict(
        zip(bare, encoder.expand(list(bare.values()), encoder.config.expansion_words), strict=True)
    )
    known = [
        (definition, expanded.get(i, text), len(text.words))
        for i, (definition, text) in enumerate(zip(definitions, texts, strict=True))
        if isinstance(text, Encoded)
    ]
    moved = [_with_examples(encoder, definition, encoded) for definition, encoded, _ in known]
    # Each class's weights over their sum, for all the classes at once: the same bit for bit as
    # one class's weights / weights.sum() (see segment_sums).
    lengths = np.fromiter((len(weights) for _, _, weights in moved), np.intp, len(moved))
    starts = np.cumsum(lengths) - lengths
    weights = np.concatenate([w for _, _, w in moved]) if moved else np.zeros(0, np.float32)
    sums = np.repeat(segment_sums(weights, starts, lengths), lengths)
    shares = np.divide(weights, sums, dtype=np.float32)
    built = iter(
        [
            _Uncalibrated(
                definition,
                vector,
                word_vectors,
                shares[start : start + length],  # the word weights
                encoded.unknown_words,  # distinct already
                encoded.words[own_words:],  # the related words
            )
            for (definition, encoded, own_words), (vector, word_vectors, _), start, length in zip(
                known, moved, starts.tolist(), lengths.tolist(), strict=True
            )
        ]
    )
    return [text if isinstance(text, UnknownWordsError) else next(built) for text in texts]


def _with_examples(
    encoder: Encoder, definition: ClassDefinition, encoded: Encoded
) -> tuple[npt.NDArray[np.float32], Matrix, npt.NDArray[np.float32]]:
    """The vector, words and word weights of ``encoded`` (its definition's text, expanded or
    not), moved towards the definition's examples if it has any."""
    if not definition.examples:
        return encoded.vector, encoded.word_vectors, encoded.weights
    examples = [
        e for e in (_encode_example(encoder, t) for t in definition.examples) if e is not None
    ]
    if not examples:
        return encoded.vector, encoded.word_vectors, encoded.weights
    return _learn(
        examples,
        encoded.vector,
        encoded.word_vectors,
        encoded.weights,
        described=bool(definition.description),
    )


def _calibrate(
    background: Background, classes: Sequence[_Uncalibrated], vector_share: float
) -> list[ClassCalibration]:
    """Each class's scores on the background documents, summed up. One pass of all the
    classes' vectors, and one of all their words, over the background; each class's columns
    are then taken on their own, so its numbers do not depend on the other classes."""
    if not classes:
        return []
    vector_scores = similarities(background.vectors, np.array([c.vector for c in classes]))
    best = background.best_matches(np.concatenate([c.word_vectors for c in classes]))
    ends = np.cumsum([len(c.word_weights) for c in classes]).tolist()
    calibrations = []
    for column, (cls, end) in enumerate(zip(classes, ends, strict=True)):
        # Contiguous copies: a class's sums run over the same memory layout alone or among
        # other classes.
        own_vector = np.ascontiguousarray(vector_scores[:, column])
        own_words = np.ascontiguousarray(best[:, end - len(cls.word_weights) : end])
        calibrations.append(_summed_up(own_vector, own_words @ cls.word_weights, vector_share))
    return calibrations


def _summed_up(
    vector_scores: npt.NDArray[np.float32],
    word_scores: npt.NDArray[np.float32],
    vector_share: float,
) -> ClassCalibration:
    vector_calibration = Calibration.of(vector_scores)
    words_calibration = Calibration.of(word_scores)
    combined = (
        vector_share * (vector_scores - vector_calibration.mean) / vector_calibration.std
        + (1 - vector_share) * (word_scores - words_calibration.mean) / words_calibration.std
    )
    spread = float(max(combined.std(), 1e-6))
    return ClassCalibration(vector_calibration, words_calibration, spread, vector_share)


CALIBRATION_ENTRY_BYTES = 256
"""What one class's entry costs in a CalibrationCache (its key, its five numbers, the dict's
slot and links): measured with tracemalloc, rounded up (tests/zsl/test_guild_cache.py)."""
_NUMBERS = struct.Struct("<6d")  # exact: a Python float is a double


class CalibrationCache:
    """Calibrations of classes embedded before, least recently used out first, within a budget
    in bytes: a guild read again after its eviction is then embedded without the background
    pass, a twentieth of the work or less, for a few hundred bytes a class.

    Entries are keyed by the model's identity (its name, shape and a fingerprint of its rows),
    the encoder's settings and the definition's name, description and examples, so a changed
    class or another model never meets a stale calibration. Safe to share between threads.
    """

    def __init__(self, encoder: Encoder, budget: int) -> None:
        self.budget = budget
        # Keyed by the model: a keyed blake2b first digests a block holding the key, done here
        # once and copied for each definition (the same digests, at 60% of the cost).
        self._keyed = hashlib.blake2b(digest_size=16, key=model_identity(encoder))
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return len(self._entries) * CALIBRATION_ENTRY_BYTES

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, definition: ClassDefinition) -> ClassCalibration | None:
        return self.get_many([definition])[0]

    def get_many(self, definitions: Sequence[ClassDefinition]) -> list[ClassCalibration | None]:
        """Each definition's kept calibration, or None: :meth:`get` for many, the lock taken
        once."""
        keys = [self._key(definition) for definition in definitions]
        with self._lock:
            found = [self._entries.get(key) for key in keys]
            for key, packed in zip(keys, found, strict=True):
                if packed is not None:
                    self._entries.move_to_end(key)
        return [None if packed is None else _unpacked(packed) for packed in found]

    def put(self, definition: ClassDefinition, calibration: ClassCalibration) -> None:
        packed = _NUMBERS.pack(
            calibration.vector.mean,
            calibration.vector.std,
            calibration.words.mean,
            calibration.words.std,
            calibration.combined_std,
            calibration.vector_share,
        )
        key = self._key(definition)
        with self._lock:
            self._entries[key] = packed
            self._entries.move_to_end(key)
            while self._entries and len(self._entries) * CALIBRATION_ENTRY_BYTES > self.budget:
                self._entries.popitem(last=False)

    def _key(self, definition: ClassDefinition) -> bytes:
        # The parts' repr: unambiguous where they meet (each is a quoted literal, read back the
        # same), and a fifth of json.dumps's time. Lone surrogates come out escaped.
        text = repr((definition.name, definition.description, tuple(definition.examples)))
        keyed = self._keyed.copy()
        keyed.update(text.encode())
        return keyed.digest()


def _unpacked(packed: bytes) -> ClassCalibration:
    vector_mean, vector_std, words_mean, words_std, combined_std, share = _NUMBERS.unpack(packed)
    return ClassCalibration(
        Calibration(vector_mean, vector_std),
        Calibration(words_mean, words_std),
        combined_std,
        share,
    )


def model_identity(encoder: Encoder) -> bytes:
    """A short digest of what decides a class's calibration besides its definition: the
    model's name, shape, a fingerprint of its rows and counts, its vector share, and the
    encoder's settings. Cheap: a few dozen rows are read, not the whole (memory-mapped) table."""
    vectors = encoder.vectors
    matrix = np.asarray(vectors.vectors)
    sample = matrix[:: max(1, len(matrix) // 64)]
    fingerprint = zlib.crc32(sample.tobytes())
    # A quantised model's row factors and a model's counts change what its rows mean too.
    for extra in (getattr(vectors, "scales", None), vectors.counts):
        if extra is not None:
            extra = np.asarray(extra)
            fingerprint = zlib.crc32(extra[:: max(1, len(extra) // 64)].tobytes(), fingerprint)
    text = json.dumps(
        [
            vectors.name,
            list(matrix.shape),
            str(matrix.dtype),
            fingerprint,
            vectors.vector_share,
            repr(encoder.config),
        ]
    )
    return hashlib.blake2b(text.encode(), digest_size=32).digest()


EXAMPLE_WORDS = 10
"""How many of its examples' most telling words a class also listens for."""


def _learn(
    examples: list[Encoded],
    vector: npt.NDArray[np.float32],
    word_vectors: Matrix,
    weights: npt.NDArray[np.float32],
    *,
    described: bool,
) -> tuple[npt.NDArray[np.float32], Matrix, npt.NDArray[np.float32]]:
    """Move a class towards its examples (texts an admin confirmed as belonging to it).

    The definition counts as one example (two when it has a description: the name and the
    description), so k examples take the share k / (k + n) of the class, Rocchio-style. The
    examples' most telling words (frequency weight times occurrences) join the class's words
    with the same share of the weight.
    """
    share = len(examples) / (len(examples) + (2 if described else 1))
    centre = np.mean([e.vector for e in examples], axis=0)
    moved = (1 - share) * vector + share * centre / np.linalg.norm(centre)
    strength: dict[str, float] = {}
    rows: dict[str, npt.NDArray[np.float32]] = {}
    for example in examples:
        for word, row, weight in zip(
            example.words, example.word_vectors, example.weights.tolist(), strict=True
        ):
            key = word.lower()
            strength[key] = strength.get(key, 0.0) + weight
            rows.setdefault(key, row)
    telling = sorted(strength, key=lambda w: -strength[w])[:EXAMPLE_WORDS]
    added = np.array([strength[w] for w in telling], dtype=np.float32)
    added *= share * float(weights.sum()) / float(added.sum())
    return (
        np.asarray(moved / np.linalg.norm(moved), dtype=np.float32),
        np.vstack([word_vectors, *(rows[w][None, :] for w in telling)]).astype(np.float32),
        np.concatenate([weights, added]).astype(np.float32),
    )


def _encode_example(encoder: Encoder, text: str) -> Encoded | None:
    try:
        return encoder.encode(text, what="example")
    except UnknownWordsError:
        return None  # refused when it was added; a later model may not know its words


def find_class(definitions: Sequence[ClassDefinition], name: str) -> int | None:
    """Position of the class called ``name`` (ignoring case and spacing), if any."""
    key = name_key(name)
    return next((i for i, d in enumerate(definitions) if d.key == key), None)


CLASS_ENTRY_BYTES = 1024
"""What one class costs in a ClassSet besides its share of the arrays (its definition and
names, its ClassVector and array views): measured with tracemalloc, rounded up
(tests/zsl/test_classes.py)."""


@dataclass(frozen=True, eq=False)
class ClassSet:
    """An immutable snapshot of one guild's classes, ready for scoring.

    Writers build a new ClassSet and swap the reference; readers never see a half-built one.
    """

    classes: tuple[ClassVector, ...] = ()
    threshold: float | None = None
    dormant: tuple[ClassDefinition, ...] = ()
    """Stored classes with no word this model knows (after a model change): listed, kept,
    editable and removable, but never a prediction."""
    names: tuple[str, ...] = field(init=False, repr=False)
    matrix: Matrix = field(init=False, repr=False)
    """One unit row per class."""
    words: Matrix = field(init=False, repr=False)
    """Every class's word vectors, class after class."""
    word_starts: npt.NDArray[np.intp] = field(init=False, repr=False)
    """Where each class's words begin in ``words``."""
    word_class: npt.NDArray[np.intp] = field(init=False, repr=False)
    """The class of each of ``words``."""
    vector_scale: npt.NDArray[np.float32] = field(init=False, repr=False)
    word_weights: npt.NDArray[np.float32] = field(init=False, repr=False)
    """Each of ``words``' weight within its class (a class's weights sum to 1)."""
    word_scale: npt.NDArray[np.float32] = field(init=False, repr=False)
    offset: npt.NDArray[np.float32] = field(init=False, repr=False)
    """The calibration folded into three arrays, so that a text's score for class c is
    ``cosine[c] * vector_scale[c] + sum(best_match[w] * word_scale[w] for w of c) - offset[c]``:
    each channel z-scored against ordinary text, averaged, and standardised again."""

    heads: Matrix | None = field(init=False, repr=False)
    """The leading ``SHORTLIST_DIMS`` dimensions of ``words``, each word normalised on them,
    one column per word (dims x words, contiguous): what the classifier's shortlist estimates
    scores with, in one product per text. Kept only by a set the default scoring shortlists
    (see ``heads_on``); None otherwise."""

    nbytes: int = field(init=False, repr=False)
    """Bytes this snapshot keeps alive (its arrays, which its classes' vectors are views of, and
    ``CLASS_ENTRY_BYTES`` a class): what a cache of snapshots counts against its budget."""

    EMPTY: ClassVar[ClassSet]
    SHORTLIST_ABOVE: ClassVar[int] = 4_000
    """A set with more class words than this is ranked through a shortlist by default
    (``zsl.classifier.ScoringConfig.shortlist_above``): below it, exact scoring is as fast."""
    SHORTLIST_DIMS: ClassVar[int] = 48
    """The leading dimensions a shortlist estimates with by default
    (``zsl.classifier.ScoringConfig.shortlist_dims``); a model needs twice as many."""

    def __post_init__(self) -> None:
        count = len(self.classes)
        dim = self.classes[0].vector.shape[0] if count else 0
        vector_mean, vector_std, words_mean, words_std, combined_std, share = (
            np.array(
                [
                    (
                        c.vector_calibration.mean,
                        c.vector_calibration.std,
                        c.words_calibration.mean,
                        c.words_calibration.std,
                        c.combined_std,
                        c.vector_share,
                    )
                    for c in self.classes
                ],
                dtype=np.float64,
            )
            .reshape(count, 6)
            .T
        )
        lengths = np.fromiter((len(c.word_weights) for c in self.classes), np.intp, count)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        word_weights = np.concatenate(
            [c.word_weights for c in self.classes] or [np.zeros(0, np.float32)]
        ).astype(np.float32, copy=False)  # a new array already: concatenate always copies
        words_factor = (1 - share) / (words_std * combined_std)
        arrays: dict[str, npt.NDArray[Any]] = {
            "matrix": np.array([c.vector for c in self.classes], dtype=np.float32).reshape(
                count, dim
            ),
            "words": np.concatenate(
                [c.word_vectors for c in self.classes] or [np.zeros((0, dim), np.float32)]
            ).astype(np.float32, copy=False),
            "word_starts": starts,
            "word_class": np.repeat(np.arange(count, dtype=np.intp), lengths),
            "vector_scale": (share / (vector_std * combined_std)).astype(np.float32),
            "word_weights": word_weights,
            "offset": (
                (share * vector_mean / vector_std + (1 - share) * words_mean / words_std)
                / combined_std
            ).astype(np.float32),
            "word_scale": (word_weights * np.repeat(words_factor, lengths)).astype(np.float32),
        }
        for name, array in arrays.items():
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        # The classes keep views of these arrays instead of arrays of their own: a guild's
        # vectors are held once, which halves what a cached guild takes. Made by _class_vector:
        # dataclasses.replace took a tenth of a guild's rebuild.
        matrix, words = arrays["matrix"], arrays["words"]
        classes = tuple(
            _class_vector(
                c.definition,
                row,
                words[start:end],
                word_weights[start:end],
                c.vector_calibration,
                c.words_calibration,
                c.combined_std,
                c.vector_share,
                c.unknown_words,
                c.related_words,
            )
            for c, row, start, end in zip(
                self.classes, matrix, starts.tolist(), ends.tolist(), strict=True
            )
        )
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "names", tuple(c.definition.name for c in classes))
        shortlisted = len(words) > self.SHORTLIST_ABOVE and dim >= 2 * self.SHORTLIST_DIMS
        # 7.7 MB at 10,000 classes, under a fifth of the words: kept, the estimate reads it as one
        # contiguous matrix instead of normalising strided slices of the words on every call.
        heads = self.unit_heads(words, self.SHORTLIST_DIMS) if shortlisted else None
        object.__setattr__(self, "heads", heads)
        own = sum(array.nbytes for array in arrays.values())
        own += 0 if heads is None else heads.nbytes
        object.__setattr__(self, "nbytes", own + CLASS_ENTRY_BYTES * count)

    def __len__(self) -> int:
        return len(self.classes)

    def heads_on(self, dims: int) -> Matrix:
        """``heads`` on ``dims`` leading dimensions: the kept copy if it has them, else made now."""
        if self.heads is not None and len(self.heads) == dims:
            return self.heads
        return self.unit_heads(self.words, dims)

    @staticmethod
    def unit_heads(words: Matrix, dims: int) -> Matrix:
        """The ``dims`` leading dimensions of each row of ``words``, normalised there, one
        column per row (dims x rows, contiguous): class words and text words alike."""
        lead = words[:, :dims]
        norms = np.sqrt(np.einsum("ij,ij->i", lead, lead))
        norms[norms == 0] = 1.0  # a zero head stays zero: it matches nothing
        heads = np.ascontiguousarray((lead / norms[:, None]).T, dtype=np.float32)
        heads.setflags(write=False)
        return heads

    @property
    def definitions(self) -> tuple[ClassDefinition, ...]:
        """Every class: the usable ones, then the dormant ones."""
        return tuple(c.definition for c in self.classes) + self.dormant

    def find(self, name: str) -> int | None:
        """Position of the class called ``name`` (ignoring case and spacing), if any."""
        return find_class(self.definitions, name)

    def get(self, name: str) -> ClassDefinition:
        """The definition of ``name``. Raises ClassNotFoundError."""
        index = self.find(name)
        if index is None:
            raise ClassNotFoundError(name)
        return self.definitions[index]

    def check_can_add(self, definition: ClassDefinition, limits: Limits) -> None:
        """Refuse ``definition`` if it cannot be added, checked in the order the stores use.

        Raises:
            DuplicateClassError: the name is taken (ConfusableClassError: it looks the same as
                an existing class's name).
            ClassLimitError: the guild is full.
        """
        if self.find(definition.name) is not None:
            raise DuplicateClassError(definition.name)
        check_not_look_alike(definition.name, (d.name for d in self.definitions))
        if len(self.classes) + len(self.dormant) >= limits.classes_per_guild:
            raise ClassLimitError(limits.classes_per_guild)

    def added(self, cls: ClassVector) -> ClassSet:
        return ClassSet((*self.classes, cls), self.threshold, self.dormant)

    def replaced(self, old_name: str, cls: ClassVector) -> ClassSet:
        """``cls`` in place of ``old_name`` (a dormant class that became usable joins the end)."""
        index = self.find(old_name)
        if index is None:
            raise ClassNotFoundError(old_name)
        rest = self.removed(old_name)
        position = min(index, len(rest.classes))
        classes = (*rest.classes[:position], cls, *rest.classes[position:])
        return ClassSet(classes, self.threshold, rest.dormant)

    def removed(self, name: str) -> ClassSet:
        index = self.find(name)
        if index is None:
            raise ClassNotFoundError(name)
        if index < len(self.classes):
            return ClassSet(
                self.classes[:index] + self.classes[index + 1 :], self.threshold, self.dormant
            )
        index -= len(self.classes)
        return ClassSet(
            self.classes, self.threshold, self.dormant[:index] + self.dormant[index + 1 :]
        )

    def with_threshold(self, threshold: float | None) -> ClassSet:
        return ClassSet(self.classes, threshold, self.dormant)


ClassSet.EMPTY = ClassSet()
