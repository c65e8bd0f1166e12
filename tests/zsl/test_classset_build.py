"""A ClassSet holds exactly what the straightforward construction gives, bit for bit.

The set is built on every rebuild of a guild, so its construction is tuned for speed (each
class made once, holding views of the set's arrays). ``reference`` below is the plain way the
arrays were first computed (numpy over lists of the classes' fields, then each class replaced
by a copy holding views): every array, number and class of a set must equal it byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from zsl import ClassSet, Encoder, UnknownWordsError, WordVectors
from zsl.bench import bench_classes
from zsl.classes import (
    CLASS_ENTRY_BYTES,
    CalibrationCache,
    ClassVector,
    embed_classes,
    model_identity,
)
from zsl.records import ClassDefinition

ARRAYS = (
    "matrix",
    "words",
    "word_starts",
    "word_class",
    "vector_scale",
    "word_weights",
    "word_scale",
    "offset",
)


def reference(classes: tuple[ClassVector, ...]) -> dict[str, Any]:
    """What a set of ``classes`` holds, computed the plain way (the first implementation)."""
    dim = classes[0].vector.shape[0] if classes else 0
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
                for c in classes
            ],
            dtype=np.float64,
        )
        .reshape(len(classes), 6)
        .T
    )
    lengths = [len(c.word_weights) for c in classes]
    words_factor = (1 - share) / (words_std * combined_std)
    arrays: dict[str, npt.NDArray[Any]] = {
        "matrix": np.array([c.vector for c in classes], dtype=np.float32).reshape(
            len(classes), dim
        ),
        "words": np.concatenate(
            [c.word_vectors for c in classes] or [np.zeros((0, dim), np.float32)]
        ).astype(np.float32),
        "word_starts": np.cumsum([0, *lengths[:-1]]).astype(np.intp)[: len(classes)],
        "word_class": np.repeat(np.arange(len(classes), dtype=np.intp), lengths),
        "vector_scale": (share / (vector_std * combined_std)).astype(np.float32),
        "word_weights": np.concatenate(
            [c.word_weights for c in classes] or [np.zeros(0, np.float32)]
        ).astype(np.float32),
        "offset": (
            (share * vector_mean / vector_std + (1 - share) * words_mean / words_std) / combined_std
        ).astype(np.float32),
    }
    arrays["word_scale"] = (arrays["word_weights"] * np.repeat(words_factor, lengths)).astype(
        np.float32
    )
    starts = arrays["word_starts"].tolist()
    views = tuple(
        dataclasses.replace(
            c,
            vector=arrays["matrix"][i],
            word_vectors=arrays["words"][start : start + length],
            word_weights=arrays["word_weights"][start : start + length],
        )
        for i, (c, start, length) in enumerate(zip(classes, starts, lengths, strict=True))
    )
    shortlisted = (
        len(arrays["words"]) > ClassSet.SHORTLIST_ABOVE and dim >= 2 * ClassSet.SHORTLIST_DIMS
    )
    heads = ClassSet.unit_heads(arrays["words"], ClassSet.SHORTLIST_DIMS) if shortlisted else None
    own = sum(array.nbytes for array in arrays.values()) + (0 if heads is None else heads.nbytes)
    return {
        **{name: exact(array) for name, array in arrays.items()},
        "heads": None if heads is None else exact(heads),
        "nbytes": own + CLASS_ENTRY_BYTES * len(classes),
        "names": tuple(c.definition.name for c in classes),
        "classes": [exactly(c) for c in views],
    }


def held(classes: ClassSet) -> dict[str, Any]:
    """What ``classes`` holds, in the form of ``reference``."""
    return {
        **{name: exact(getattr(classes, name)) for name in ARRAYS},
        "heads": None if classes.heads is None else exact(classes.heads),
        "nbytes": classes.nbytes,
        "names": classes.names,
        "classes": [exactly(c) for c in classes.classes],
    }


def exact(array: npt.NDArray[Any]) -> tuple[str, tuple[int, ...], bytes]:
    """An array as its type, shape and bytes: equal only if bit for bit."""
    return (array.dtype.str, array.shape, array.tobytes())


def exactly(cls: ClassVector) -> tuple[object, ...]:
    """Every field of a class, arrays as ``exact``."""
    return tuple(
        exact(value) if isinstance(value, np.ndarray) else value
        for value in (getattr(cls, f.name) for f in dataclasses.fields(cls))
    )


def assert_views(classes: ClassSet) -> None:
    """Each class's arrays are its own rows of the set's arrays, not copies."""
    for i, (cls, start) in enumerate(zip(classes.classes, classes.word_starts, strict=True)):
        end = start + len(cls.word_weights)
        assert np.shares_memory(cls.vector, classes.matrix)
        assert np.shares_memory(cls.word_vectors, classes.words)
        assert np.shares_memory(cls.word_weights, classes.word_weights)
        assert place(cls.vector) == place(classes.matrix[i])
        assert place(cls.word_vectors) == place(classes.words[start:end])
        assert place(cls.word_weights) == place(classes.word_weights[start:end])


def place(array: npt.NDArray[Any]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """Where an array's data lies: its address, shape and strides."""
    return (array.__array_interface__["data"][0], array.shape, array.strides)


def usable(embedded: list[ClassVector | UnknownWordsError]) -> list[ClassVector]:
    assert all(isinstance(c, ClassVector) for c in embedded)
    return [c for c in embedded if isinstance(c, ClassVector)]


def guild(vectors: WordVectors) -> list[ClassDefinition]:
    """Classes of every kind: described, taught by examples, bare names (expanded), with a
    word GloVe does not know (the default model builds it from subwords)."""
    common = [w for w in list(vectors.key_to_index)[1000:1100] if w.isalpha()][:6]
    return [
        ClassDefinition("sports", "football match team goal"),
        ClassDefinition("music", "song album band", examples=("a new single from the band",)),
        ClassDefinition("weather", examples=("rain and snow tomorrow", "sunny and warm")),
        ClassDefinition("politics", "election vote zzqxv"),
        *(ClassDefinition(word) for word in common),
    ]


DORMANT = (ClassDefinition("retired", "a class no word of which the model knows"),)


@pytest.mark.parametrize("model", ["default_model", "glove"])
class TestSameAsReference:
    def test_a_guild_rebuilt_from_kept_calibrations(
        self, request: pytest.FixtureRequest, model: str
    ) -> None:
        encoder = Encoder(request.getfixturevalue(model))
        definitions = guild(encoder.vectors)
        calibrations = CalibrationCache(encoder, 1 << 20)
        first = tuple(usable(embed_classes(encoder, definitions, calibrations)))  # calibrated

        rebuilt = tuple(usable(embed_classes(encoder, definitions, calibrations)))
        classes = ClassSet(rebuilt, threshold=0.25, dormant=DORMANT)

        assert len(calibrations) == len(rebuilt) == len(definitions)
        assert classes.dormant == DORMANT
        assert classes.threshold == 0.25
        assert held(classes) == reference(rebuilt)
        assert held(ClassSet(first)) == reference(rebuilt)
        assert_views(classes)

    def test_sets_made_from_another_sets_classes(
        self, request: pytest.FixtureRequest, model: str
    ) -> None:
        # What a write or a rebuild does: unchanged classes come from the set before (views of
        # its arrays), new ones from embedding.
        encoder = Encoder(request.getfixturevalue(model))
        before = ClassSet(tuple(usable(embed_classes(encoder, guild(encoder.vectors)))))
        extra = usable(embed_classes(encoder, [ClassDefinition("cooking", "recipe oven")]))[0]

        changed = [
            before.added(extra),
            before.removed("music"),
            before.replaced("weather", extra),
            before.with_threshold(0.5),
            ClassSet((extra, *before.classes[::-1])),
        ]

        for after in changed:
            assert held(after) == reference(after.classes)
            assert_views(after)
        assert held(before) == reference(before.classes)  # left as it was

    def test_a_set_past_the_shortlist_threshold(
        self, request: pytest.FixtureRequest, model: str
    ) -> None:
        vectors: WordVectors = request.getfixturevalue(model)
        encoder = Encoder(vectors)
        definitions = [ClassDefinition(n, d) for n, d in bench_classes(vectors, 1_100)]
        embedded = tuple(usable(embed_classes(encoder, definitions)))

        classes = ClassSet(embedded, dormant=DORMANT)

        assert len(classes.words) > ClassSet.SHORTLIST_ABOVE
        assert (classes.heads is not None) == (model == "default_model")  # GloVe: too narrow
        assert held(classes) == reference(embedded)
        assert_views(classes)


def test_the_empty_set() -> None:
    assert held(ClassSet()) == reference(())
    assert held(ClassSet.EMPTY) == reference(())


def test_classes_stay_frozen(glove: WordVectors) -> None:
    encoder = Encoder(glove)
    classes = ClassSet(tuple(usable(embed_classes(encoder, [ClassDefinition("sports")]))))
    cls = classes.classes[0]

    with pytest.raises(dataclasses.FrozenInstanceError):
        cls.combined_std = 1.0  # type: ignore[misc]  # the point: refused
    with pytest.raises(ValueError, match="read-only"):
        cls.vector[0] = 1.0


def test_calibrations_are_kept_under_the_model_keyed_digest_of_the_definition(
    glove: WordVectors,
) -> None:
    # The key is hashed from a copy of a hasher that has taken the model's key already: the
    # digest of a keyed blake2b, and the same for the same definition however often asked.
    encoder = Encoder(glove)
    calibrations = CalibrationCache(encoder, 1 << 20)
    definitions = [
        ClassDefinition("sports", "football match"),
        ClassDefinition("music", examples=("a new single",)),
    ]

    keys = [calibrations._key(d) for d in [*definitions, *definitions]]

    assert keys == 2 * [
        hashlib.blake2b(
            repr((d.name, d.description, d.examples)).encode(),
            digest_size=16,
            key=model_identity(encoder),
        ).digest()
        for d in definitions
    ]
