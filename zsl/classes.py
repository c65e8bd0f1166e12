"""Class definitions (validated input) and ClassSet, the immutable per-guild snapshot."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from zsl.embedding import Encoder, Matrix
from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    InvalidClassError,
    UnknownWordsError,
)
from zsl.store.base import ClassDefinition, name_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every size limit of the registry, each a setting (see ``bot.settings``)."""

    name_length: int = 50
    description_length: int = 300
    text_length: int = 2000
    classes_per_guild: int = 100


def _clean(value: str, field_name: str) -> str:
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise InvalidClassError(f"The {field_name} contains broken characters. Type it again.")
    # Invisible format characters (zero-width spaces, direction marks) would make two names
    # that look the same differ; they carry no meaning, so they go.
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
class ClassVector:
    """A class as the classifier sees it: a unit vector and its background statistics."""

    definition: ClassDefinition
    vector: npt.NDArray[np.float32]
    background_mean: float
    background_std: float
    unknown_words: tuple[str, ...] = ()


def embed_class(encoder: Encoder, definition: ClassDefinition) -> ClassVector:
    """Turn a definition into a class vector: name and description count equally.

    Raises:
        UnknownWordsError: neither the name nor the description has a known word.
    """
    parts = []
    unknown: list[str] = []
    for text in (definition.name, definition.description):
        if not text:
            continue
        try:
            encoded = encoder.encode(text, what="class")
        except UnknownWordsError as exc:
            unknown.extend(exc.words)
            continue
        parts.append(encoded.vector)
        unknown.extend(encoded.unknown_words)
    if not parts:
        raise UnknownWordsError(unknown, what="class")
    vector = np.sum(parts, axis=0)
    vector = (vector / np.linalg.norm(vector)).astype(np.float32)
    # How this class scores on ordinary text: a "central" class scores high on everything,
    # and the classifier compares a text's score with this baseline, not in absolute terms.
    background = encoder.background @ vector
    return ClassVector(
        definition,
        vector,
        float(background.mean()),
        float(max(background.std(), 1e-6)),
        tuple(dict.fromkeys(unknown)),
    )


@dataclass(frozen=True, eq=False)
class ClassSet:
    """An immutable snapshot of one guild's classes, ready for scoring.

    Writers build a new ClassSet and swap the reference; readers never see a half-built one.
    """

    classes: tuple[ClassVector, ...] = ()
    threshold: float | None = None
    matrix: Matrix = field(init=False, repr=False)
    background_mean: npt.NDArray[np.float32] = field(init=False, repr=False)
    background_std: npt.NDArray[np.float32] = field(init=False, repr=False)

    EMPTY: ClassVar[ClassSet]

    def __post_init__(self) -> None:
        dim = self.classes[0].vector.shape[0] if self.classes else 0
        matrix = np.array([c.vector for c in self.classes], dtype=np.float32).reshape(
            len(self.classes), dim
        )
        mean = np.array([c.background_mean for c in self.classes], dtype=np.float32)
        std = np.array([c.background_std for c in self.classes], dtype=np.float32)
        for array in (matrix, mean, std):
            array.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "background_mean", mean)
        object.__setattr__(self, "background_std", std)

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def definitions(self) -> tuple[ClassDefinition, ...]:
        return tuple(c.definition for c in self.classes)

    def find(self, name: str) -> int | None:
        """Position of the class called ``name`` (ignoring case and spacing), if any."""
        key = name_key(name)
        return next((i for i, c in enumerate(self.classes) if c.definition.key == key), None)

    def get(self, name: str) -> ClassDefinition:
        """The definition of ``name``. Raises ClassNotFoundError."""
        index = self.find(name)
        if index is None:
            raise ClassNotFoundError(name)
        return self.classes[index].definition

    def check_can_add(self, definition: ClassDefinition, limits: Limits) -> None:
        """Raises DuplicateClassError or ClassLimitError if ``definition`` cannot be added."""
        if self.find(definition.name) is not None:
            raise DuplicateClassError(definition.name)
        if len(self.classes) >= limits.classes_per_guild:
            raise ClassLimitError(limits.classes_per_guild)

    def added(self, cls: ClassVector) -> ClassSet:
        return ClassSet((*self.classes, cls), self.threshold)

    def replaced(self, old_name: str, cls: ClassVector) -> ClassSet:
        index = self.find(old_name)
        if index is None:
            raise ClassNotFoundError(old_name)
        return ClassSet((*self.classes[:index], cls, *self.classes[index + 1 :]), self.threshold)

    def removed(self, name: str) -> ClassSet:
        index = self.find(name)
        if index is None:
            raise ClassNotFoundError(name)
        return ClassSet(self.classes[:index] + self.classes[index + 1 :], self.threshold)

    def with_threshold(self, threshold: float | None) -> ClassSet:
        return ClassSet(self.classes, threshold)


ClassSet.EMPTY = ClassSet()
